"""SAMSum summarisation scores: ROUGE-1/2/L F-measure (rouge-score), as in the paper's GPT-3 table.
Owns score_samsum (0-100 scale, mean of per-summary F-measures, Porter stemming on)."""
from __future__ import annotations

from typing import Sequence

from ._io import MetricInputError, check_counts

_KEYS = (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"))


def score_samsum(hyps: Sequence[str], refs: Sequence, *, use_stemmer: bool = True) -> dict:
    """ROUGE-1, ROUGE-2, ROUGE-L F-measures (0-100) of ``hyps`` against ``refs``.

    Google's rouge-score package: its default tokeniser (lowercase, non-alphanumerics removed),
    Porter stemming ON by default (``use_stemmer=True``, the common choice for SAMSum), ROUGE-L
    as sentence-level LCS (`rougeL`, not the newline-split `rougeLsum`). The corpus score is the
    plain mean of per-summary F-measures: deterministic, unlike a bootstrap aggregate.
    A reference may be one string or a list of strings (then the best F per summary counts).
    """
    from rouge_score import rouge_scorer

    check_counts(len(hyps), len(refs), "summaries", "references")
    scorer = rouge_scorer.RougeScorer([k for k, _ in _KEYS], use_stemmer=use_stemmer)
    totals = {k: 0.0 for k, _ in _KEYS}
    for i, (hyp, ref) in enumerate(zip(hyps, refs)):
        if not isinstance(hyp, str):
            raise MetricInputError(f"summary {i} is {type(hyp).__name__}, expected str")
        if isinstance(ref, str):
            scores = scorer.score(ref, hyp)
        elif ref and all(isinstance(r, str) for r in ref):
            scores = scorer.score_multi(list(ref), hyp)
        else:
            raise MetricInputError(f"reference {i} must be a str or a non-empty list of str")
        for k, _ in _KEYS:
            totals[k] += scores[k].fmeasure
    n = len(hyps)
    return {name: 100.0 * totals[k] / n for k, name in _KEYS}
