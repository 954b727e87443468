"""E2E: parity with the official scorer on the shared cases, and hand-worked mteval BLEU/NIST cases."""
from __future__ import annotations

import json
import math

import pytest

from experiments.metrics import score_e2e
from experiments.metrics._io import read_grouped_refs, read_lines
from experiments.metrics.mteval import mteval_bleu_nist, pad_ref_sets, tokenize_13a

CASES = ("first_ref", "drop_third_word", "no_punct")
TOL = {"BLEU": 5e-4, "METEOR": 5e-4, "ROUGE_L": 5e-4, "NIST": 5e-3, "CIDEr": 5e-3}


@pytest.fixture(scope="module")
def parity(e2e_cases, java):
    """All three cases scored once (one METEOR JVM shared across them)."""
    expected = json.loads((e2e_cases / "expected.json").read_text())
    refs = read_grouped_refs(e2e_cases / "test_refs.txt")
    out = {}
    for case in CASES:
        hyps = read_lines(e2e_cases / expected[case]["system_output"])
        out[case] = (score_e2e(hyps, refs), {**expected[case]["official_cli"], **expected[case]["full_precision"]})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("metric", sorted(TOL))
def test_parity_with_official_scorer(parity, case, metric):
    ours, official = parity[case]
    assert abs(ours[metric] - official[metric]) <= TOL[metric], (case, metric, ours[metric], official[metric])


@pytest.mark.slow
def test_scores_are_plain_floats_with_the_official_keys(parity):
    ours, _ = parity["first_ref"]
    assert list(ours) == ["BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"]
    assert all(type(v) is float for v in ours.values())


def test_bleu_equals_sacrebleu_lowercased(e2e_cases):
    sacrebleu = pytest.importorskip("sacrebleu")
    refs = read_grouped_refs(e2e_cases / "test_refs.txt")
    hyps = read_lines(e2e_cases / "drop_third_word.txt")
    width = max(map(len, refs))
    streams = [[g[i] if i < len(g) else "" for g in refs] for i in range(width)]
    expected = sacrebleu.corpus_bleu(hyps, streams, lowercase=True).score / 100
    assert mteval_bleu_nist(hyps, refs)["BLEU"] == pytest.approx(expected, abs=1e-12)


def test_13a_tokeniser_matches_sacrebleu_on_ascii():
    pytest.importorskip("sacrebleu")
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tok = Tokenizer13a()
    for text in ["Hello, World.", "It's 5-6 p.m. (approx.) -- see www.x.com/a?b=c&d",
                 'He said "no"; 1,000.50 $ and 3.5%', "a.b,c 1.2 x,1 -3 4-", "&quot;q&quot; &amp; &lt;b&gt;"]:
        assert tokenize_13a(text) == tok(text.lower()).split()


def test_13a_lowercases_ascii_only_as_perl_tr():
    assert tokenize_13a("ÉCOLE Café ABC") == ["École", "café", "abc"]  # É is not ASCII: kept


def test_mteval_hand_case_short_hypothesis():
    # hyp "a b", ref "a b c". BLEU: p1 = p2 = 1; no 3/4-grams in the hypothesis, which mteval
    # scores as precision 1 (not 0); BP = exp(1 - 3/2). NIST: info(a) = info(b) = log2(3),
    # info("a b") = log2(1/1) = 0, so 2*log2(3)/2; length ratio 2/3 = 1/1.5 gives penalty 0.5.
    out = mteval_bleu_nist(["a b"], [["a b c"]])
    assert out["BLEU"] == pytest.approx(math.exp(-0.5), abs=1e-12)
    assert out["NIST"] == pytest.approx(math.log2(3) * 0.5, abs=1e-12)


def test_mteval_nist_keeps_perls_zero_prefix_quirk():
    # ref "0 x 0 y" (4 words), hyp "0 x". info(0) = -log2(2/4) = 1, info(x) = -log2(1/4) = 2.
    # info("0 x") should be -log2(1/2) = 1, but Perl tests the prefix string "0" for truth, finds
    # it false and divides by the 4 words: 2. Unigram part (1+2)/2, bigram part 2/1 -> 3.5;
    # length ratio 2/4: penalty exp(-beta ln(.5)^2), beta = -ln(.5)/ln(1.5)^2.
    beta = -math.log(0.5) / math.log(1.5) ** 2
    penalty = math.exp(-beta * math.log(0.5) ** 2)
    assert mteval_bleu_nist(["0 x"], [["0 x 0 y"]])["NIST"] == pytest.approx(3.5 * penalty, abs=1e-12)


def test_reference_sets_follow_mtevals_sorted_names():
    groups = [[f"r{i}" for i in range(12)], ["only"]]
    padded = pad_ref_sets(groups)
    assert padded[0][:4] == ["r0", "r1", "r10", "r11"]  # ref_0, ref_1, ref_10, ref_11, ref_2, ...
    assert padded[1][0] == "only" and padded[1][1:] == [""] * 11


def test_empty_padded_reference_is_never_the_closest_length():
    # MR 1 has one reference, so its second reference set holds ''. For the 1-word hypothesis
    # '' (0 words) would be closer than "a b c" (3 words), but mteval skips 0-length references:
    # reference length 3 + 2, hypothesis 1 + 2, BP = exp(1 - 5/3); 1- and 2-gram precisions are 1
    # and there are no 3/4-grams (precision 1 in mteval). Counting '' would give BLEU 1.
    out = mteval_bleu_nist(["a", "p q"], [["a b c"], ["p q", "p q r s"]])
    assert out["BLEU"] == pytest.approx(math.exp(1 - 5 / 3), abs=1e-12)


@pytest.mark.slow
def test_parallel_meteor_driver_gives_the_jars_stdio_numbers(e2e_cases, java):
    """Our multi-threaded METEOR driver (when javac is there) against the jar's own -stdio mode.
    The driver loads only the paraphrase entries a batch's words can use: the second half brings
    words the first lacked (a re-filter), the whole then needs none; all three must be equal."""
    from experiments.metrics.java import Meteor, start_ptb_tokenizer

    refs = read_grouped_refs(e2e_cases / "test_refs.txt")[:150]
    hyps = read_lines(e2e_cases / "drop_third_word.txt")[:150]
    tokens = start_ptb_tokenizer(hyps + [r for g in refs for r in g]).result()
    tok_hyps, rest = tokens[:150], iter(tokens[150:])
    tok_refs = [[next(rest) for _ in g] for g in refs]
    words = [set(" ".join(tok_hyps[a:b] + [r for g in tok_refs[a:b] for r in g]).split())
             for a, b in ((0, 75), (75, 150))]
    assert words[1] - words[0]  # the second half does need a re-filter
    with Meteor() as driver, Meteor(parallel=False) as plain:
        if not driver.parallel:
            pytest.skip("no javac here: METEOR runs in the jar's -stdio mode only")
        for a, b in ((0, 75), (75, 150), (0, 150)):
            assert driver.score(tok_hyps[a:b], tok_refs[a:b]) == plain.score(tok_hyps[a:b], tok_refs[a:b])


def test_speed_benchmark_times_a_call_and_records_the_machine():
    """The metrics benchmark's helpers (the script itself runs minutes, outside the suite)."""
    from experiments.bench import metrics_speed

    runs, value = metrics_speed.timed(lambda: 42, 2)
    assert value == 42 and len(runs) == 2 and all(t >= 0 for t in runs)
    info = metrics_speed.machine_info()
    assert info["cpu_count"] >= 1 and "java" in info
