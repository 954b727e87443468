"""WebNLG/DART: decode-side post-processing, multi-bleu-detok BLEU, pyter-exact TER, faithful vs corrected modes."""
from __future__ import annotations

import random

import pytest

from experiments.metrics import MetricInputError, post_process, score_dart, score_webnlg, score_webnlg_splits
from experiments.metrics.mteval import multi_bleu_detok
from experiments.metrics.ter import pyter_ter
from experiments.metrics.webnlg import SEEN_CATEGORIES, nltk_tokenize, reference_streams


def test_post_process_lowercases_and_splits_non_word_characters():
    assert post_process("Hello, World! It's 5.5 km (Aarhus_Airport).") == \
        "hello , world ! it ' s 5 . 5 km ( aarhus_airport ) ."
    assert post_process(post_process("A-B  c")) == post_process("A-B  c") == "a - b c"


def test_reference_streams_repeat_the_first_and_drop_beyond_six():
    streams = reference_streams([["a"], [str(i) for i in range(8)]])
    assert [s[0] for s in streams] == ["a"] * 6
    assert [s[1] for s in streams] == ["0", "1", "2", "3", "4", "5"]


def test_ten_seen_categories():
    assert len(SEEN_CATEGORIES) == 10 and "Astronaut" in SEEN_CATEGORIES and "Athlete" not in SEEN_CATEGORIES


def test_multi_bleu_detok_hand_cases():
    # p1..p4 = 4/5, 3/4, 2/3, 1/2: geometric mean (1/5)^(1/4); no brevity penalty.
    assert multi_bleu_detok(["a b c d e"], [["a b c d x"]]) == pytest.approx(100 * 0.2 ** 0.25, abs=1e-9)
    # No smoothing: a corpus without any 4-gram scores 0 even when every word matches.
    assert multi_bleu_detok(["a b c"], [["a b c"]]) == 0.0
    # Closest reference length (ties -> shorter): 2-word hyp, refs of 4 and 6 words -> ref len 4.
    bp = multi_bleu_detok(["a b c d"], [["a b c d e f"], ["a b c d"]])
    assert bp == pytest.approx(100.0)


def test_nltk_tokenisation_of_post_processed_text():
    assert nltk_tokenize(post_process('He said "cannot" go')) == "he said `` can not `` go"


@pytest.mark.parametrize("hyp,ref,expected", [
    ("a b c", "a b c", 0.0),
    ("b a", "a b", 0.5),  # one shift ("b" to the end), no edits: 1/2
    ("", "a b", 1.0),
    ("THIS WEEK THE SAUDIS denied information published in the new york times",
     "SAUDI ARABIA denied THIS WEEK information published in the AMERICAN new york times", 4 / 13),
])
def test_ter_hand_cases(hyp, ref, expected):
    assert pyter_ter(hyp.split(), ref.split()) == pytest.approx(expected, abs=1e-12)


def test_ter_equals_pyter3_on_random_cases():
    pyter = pytest.importorskip("pyter", reason="pyter3 not installed")
    rng = random.Random(7)
    for _ in range(400):
        vocab = rng.choice(["ab", "abcd", "abcdefgh"])
        ref = [rng.choice(vocab) for _ in range(rng.randint(1, 16))]
        if rng.random() < 0.5:
            hyp = ref[:] + [rng.choice(vocab)]
            rng.shuffle(hyp)
        else:
            hyp = [rng.choice(vocab) for _ in range(rng.randint(0, 16))]
        assert pyter_ter(hyp, ref) == pyter.ter(hyp, ref), (hyp, ref)


def test_faithful_mode_adds_the_empty_segment_and_has_no_meteor():
    hyps, refs = ["a b c", "x y"], [["a b c"], ["x z"]]
    corrected = score_webnlg(hyps, refs, metrics=["BLEU", "TER"])
    faithful = score_webnlg(hyps, refs, mode="faithful")
    assert corrected["TER"] == pytest.approx((0 + 0.5) / 2)
    assert faithful["TER"] == pytest.approx((0 + 0.5 + 1.0) / 3)
    assert faithful["METEOR"] is None and "-1" in faithful["notes"][0]
    assert faithful["BLEU"] == corrected["BLEU"]
    assert (corrected["mode"], corrected["segments"], faithful["segments"]) == ("corrected", 2, 3)


def test_default_mode_is_corrected_and_dart_is_the_same_scorer():
    out = score_dart(["a b c d"], [["a b c d"]], metrics=["BLEU", "TER"])
    assert out["mode"] == "corrected" and out["BLEU"] == pytest.approx(100.0) and out["TER"] == 0.0


def test_seen_unseen_all_are_scored_separately():
    hyps = ["a b c d e", "p q r s", "u v w x y"]
    refs = [["a b c d x"], ["p q r s"], ["u v w x y"]]
    seen = [True, False, True]
    out = score_webnlg_splits(hyps, refs, seen, metrics=["BLEU", "TER"])
    assert out["unseen"] == score_webnlg([hyps[1]], [refs[1]], metrics=["BLEU", "TER"])
    assert out["seen"] == score_webnlg([hyps[0], hyps[2]], [refs[0], refs[2]], metrics=["BLEU", "TER"])
    assert out["all"] == score_webnlg(hyps, refs, metrics=["BLEU", "TER"])


@pytest.mark.slow
def test_meteor_in_corrected_mode(java):
    out = score_webnlg(["the cat sat on the mat", "zzz"], [["the cat sat on the mat"], ["a b c"]],
                       metrics=["METEOR"])
    assert 0 < out["METEOR"] < 1
    assert score_webnlg(["the cat sat on the mat"], [["the cat sat on the mat"]], metrics=["METEOR"])["METEOR"] == 1.0


def test_bad_mode_and_counts():
    with pytest.raises(MetricInputError, match="mode"):
        score_webnlg(["a"], [["a"]], mode="official")
    with pytest.raises(MetricInputError, match="2 outputs .* 1 reference groups"):
        score_webnlg(["a", "b"], [["a"]])
