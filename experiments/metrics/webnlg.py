"""WebNLG and DART scores (BLEU, METEOR, TER) as the official LoRA code gets them from the WebNLG GenerationEval eval.py.
Owns the decode-side post-processing, the 6-reference layout, the trailing-segment quirk (faithful mode) and seen/unseen splits."""
from __future__ import annotations

import math
import re
from typing import Sequence

from ._io import MetricInputError, check_counts
from .mteval import multi_bleu_detok
from .ter import pyter_ter

NUM_REFS = 6
# The 10 categories the official decode script (gpt2_decode.py) treats as seen in training.
SEEN_CATEGORIES = frozenset({
    "Airport", "Astronaut", "Building", "City", "ComicsCharacter",
    "Food", "Monument", "SportsTeam", "University", "WrittenWork",
})
MODES = ("corrected", "faithful")
FAITHFUL_METEOR_NOTE = (
    "METEOR is not available in faithful mode: the official eval.py reads one extra empty segment "
    "from files ending in a newline, the METEOR jar then gets 6N+5 reference lines for N outputs, "
    "stops ('test and reference not same length') and the script reports -1 (microsoft/LoRA #138). "
    "Use mode='corrected' for a real METEOR."
)

_NON_WORD = re.compile(r"(\W)")


def post_process(text: str) -> str:
    """The LoRA decode script's `--tokenize --lower`: lowercase, split around every non-word
    character (each punctuation mark becomes a token), rejoin with single spaces. Idempotent."""
    return " ".join(" ".join(_NON_WORD.split(text.lower())).split())


def is_seen_category(category: str) -> bool:
    return category in SEEN_CATEGORIES


def reference_streams(refs: Sequence[Sequence[str]], num_refs: int = NUM_REFS) -> list[list[str]]:
    """The decode script's reference files: stream k holds each example's k-th reference, a
    group with fewer refs repeats its *first* one, references past ``num_refs`` are dropped."""
    streams = [[] for _ in range(num_refs)]
    for i, group in enumerate(refs):
        if not group:
            raise MetricInputError(f"reference group {i} is empty")
        for k in range(num_refs):
            streams[k].append(group[k] if k < len(group) else group[0])
    return streams


_nltk_tokenizer = None


def nltk_tokenize(text: str) -> str:
    """eval.py's `' '.join(nltk.word_tokenize(text))` on post-processed text.

    word_tokenize = Punkt sentence split + NLTKWordTokenizer per sentence. Punkt only splits at
    spaces, and on post-processed text (every non-word character already stands alone) the word
    tokenizer's rules act within a token or on its neighbours (`"` becomes ``, "cannot" becomes
    "can not", ...), so tokenising the whole line gives the same tokens without Punkt's model data.
    """
    global _nltk_tokenizer
    if _nltk_tokenizer is None:
        from nltk.tokenize.destructive import NLTKWordTokenizer

        _nltk_tokenizer = NLTKWordTokenizer()
    return " ".join(_nltk_tokenizer.tokenize(text))


def _segment_ter(hyp: str, refs: Sequence[str], cache: dict) -> float:
    """eval.py's ter_score for one segment: min over references; an empty reference, or any
    error in pyter, counts 1."""
    candidates = []
    hyp_words = tuple(hyp.split())
    for ref in refs:
        if len(ref) == 0:
            candidates.append(1)
            continue
        key = (hyp_words, ref)
        value = cache.get(key)
        if value is None:
            try:
                value = pyter_ter(hyp_words, ref.split())
            except Exception:
                value = 1
            cache[key] = value
        candidates.append(value)
    return min(candidates)


def score_webnlg(
    hyps: Sequence[str],
    refs: Sequence[Sequence[str]],
    *,
    mode: str = "corrected",
    num_refs: int = NUM_REFS,
    metrics: Sequence[str] = ("BLEU", "METEOR", "TER"),
) -> dict:
    """BLEU (0-100), METEOR (0-1) and TER (0-1) as the LoRA code's copy of the WebNLG
    GenerationEval eval.py (`-nr 6 -m bleu,meteor,ter`) scores the decode script's files.

    ``hyps``: one output per example; ``refs``: that example's references (any number: they are
    laid out as the decode script does, first reference repeated up to 6, extra ones dropped).
    Both go through ``post_process`` (lowercase, split on non-word characters) as the decode
    script writes them; it is idempotent, so already processed text is fine.

    - BLEU: multi-bleu-detok.perl over the 6 reference streams.
    - METEOR: METEOR 1.5 `-l en -norm -r 6` on NLTK-tokenised text (corpus score). Needs Java.
    - TER: per segment the minimum pyter TER over the 6 references, on NLTK tokens, averaged.

    ``mode`` (default "corrected", the one for tables):
    - "corrected": N segments; METEOR as the jar computes it without the stray segment.
    - "faithful": what eval.py really returns on the decode script's files, which end with a
      newline and so give one extra empty segment: TER averages over N+1 segments, the empty one
      scoring 1.0; METEOR is reported as None (the script prints -1), explained in ``notes``.
      BLEU is the same in both modes.
    """
    if mode not in MODES:
        raise MetricInputError(f"mode must be one of {MODES}, not {mode!r}")
    check_counts(len(hyps), len(refs))
    for i, hyp in enumerate(hyps):
        if not isinstance(hyp, str):
            raise MetricInputError(f"output {i} is {type(hyp).__name__}, expected str")
    for i, group in enumerate(refs):
        if isinstance(group, str) or not all(isinstance(r, str) for r in group):
            raise MetricInputError(f"reference group {i} must be a list of str")
    wanted = {m.upper() for m in metrics}
    unknown = wanted - {"BLEU", "METEOR", "TER"}
    if unknown:
        raise MetricInputError(f"unknown metric(s) {sorted(unknown)}; choose from BLEU, METEOR, TER")
    hyps_pp = [post_process(h) for h in hyps]
    streams = [[post_process(r) for r in s] for s in reference_streams(refs, num_refs)]
    out: dict = {"mode": mode, "segments": len(hyps_pp) + (mode == "faithful")}
    notes = []

    meteor = None
    if "METEOR" in wanted and mode == "corrected":
        from .java import shared_meteor

        meteor = shared_meteor()  # start the JVM first: it starts while we tokenise and run TER

    hyps_tok = [nltk_tokenize(h) for h in hyps_pp]
    refs_tok = [[nltk_tokenize(s[i]) for s in streams] for i in range(len(hyps_pp))]

    if "BLEU" in wanted:
        out["BLEU"] = multi_bleu_detok(hyps_pp, streams)
    if "TER" in wanted:
        cache: dict = {}
        ter_scores = [_segment_ter(h, r, cache) for h, r in zip(hyps_tok, refs_tok)]
        if mode == "faithful":
            ter_scores.append(1)  # the empty trailing segment: every reference empty -> 1
        out["TER"] = sum(ter_scores) / len(ter_scores)
    if "METEOR" in wanted:
        if mode == "faithful":
            out["METEOR"] = None
            notes.append(FAITHFUL_METEOR_NOTE)
        else:
            out["METEOR"] = meteor.score(hyps_tok, refs_tok)[0]
    if notes:
        out["notes"] = notes
    return out


def score_dart(hyps: Sequence[str], refs: Sequence[Sequence[str]], **kwargs) -> dict:
    """DART is scored by the same script with the same settings (6 references); see score_webnlg."""
    return score_webnlg(hyps, refs, **kwargs)


def score_webnlg_splits(
    hyps: Sequence[str], refs: Sequence[Sequence[str]], seen: Sequence[bool], **kwargs
) -> dict:
    """Scores for the Unseen / Seen / All columns of the paper's WebNLG table: each subset is
    scored on its own (as the decode script's `--filter seen|unseen|all` writes separate files),
    not averaged from the others. ``seen[i]``: example i's category is one of SEEN_CATEGORIES."""
    if len(seen) != len(hyps):
        raise MetricInputError(f"{len(seen)} seen flags for {len(hyps)} outputs")
    out = {}
    for name, keep in (("unseen", lambda s: not s), ("seen", lambda s: s), ("all", lambda s: True)):
        idx = [i for i, s in enumerate(seen) if keep(bool(s))]
        if not idx:
            out[name] = None  # nothing in this split
            continue
        out[name] = score_webnlg([hyps[i] for i in idx], [refs[i] for i in idx], **kwargs)
    return out


def is_missing(value) -> bool:
    """True for a METEOR that faithful mode could not compute (None) or a NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))
