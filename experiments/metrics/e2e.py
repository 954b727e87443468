"""E2E NLG Challenge scores equal to tuetschek/e2e-metrics `measure_scores.py` at its defaults.
Owns score_e2e: BLEU/NIST of mteval-v13a, METEOR 1.5, MS-COCO ROUGE-L and CIDEr-D, in one pass."""
from __future__ import annotations

import threading
from typing import Sequence

from ._io import MetricInputError, check_counts
from .coco import cider_d, rouge_l
from .java import Meteor, shared_meteor, start_ptb_tokenizer
from .mteval import mteval_bleu_nist


def _clean(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    check_counts(len(hyps), len(refs))
    for i, hyp in enumerate(hyps):
        if not isinstance(hyp, str):
            raise MetricInputError(f"output {i} is {type(hyp).__name__}, expected str")
    clean_refs = []
    for i, group in enumerate(refs):
        if isinstance(group, str) or not all(isinstance(r, str) for r in group):
            raise MetricInputError(f"reference group {i} must be a list of str")
        if not group:
            raise MetricInputError(f"reference group {i} is empty")
        clean_refs.append([r.strip() for r in group])
    # The official reader strips every line; stripping here makes a list call equal a file call.
    return [h.strip() for h in hyps], clean_refs


def score_e2e(hyps: Sequence[str], refs: Sequence[Sequence[str]], *, keep_java: bool = True) -> dict:
    """BLEU, NIST, METEOR, ROUGE_L, CIDEr of ``hyps`` (one per MR) against ``refs`` (a list of
    references per MR), equal to the official E2E scorer (its default Perl mteval path).

    BLEU, METEOR and ROUGE_L are on the 0-1 scale the official scorer prints; NIST and CIDEr raw.

    - BLEU/NIST: mteval-v13a (lowercased 13a tokens; BLEU 4-gram with closest reference length;
      NIST 5-gram, brevity penalty on the average reference length), see ``mteval.py``.
    - METEOR/ROUGE_L/CIDEr: PTB tokens (lowercased, punctuation dropped), then METEOR 1.5
      `-l en -norm` (corpus score from summed statistics), ROUGE-L (beta 1.2, best reference),
      CIDEr-D (document frequencies from these references), as pycocoevalcap 1.2 computes them.

    Needs Java (MetricInputError if missing). The PTB tokenizer runs once on all sentences; the
    METEOR JVM starts at once, scores while Python computes the rest and, with ``keep_java`` (default), stays up
    for the next call in this process (see ``java.shared_meteor``).
    """
    hyps, refs = _clean(hyps, refs)
    meteor = shared_meteor() if keep_java else Meteor()  # its JVM starts now
    try:
        flat_refs = [r for group in refs for r in group]
        tokens = start_ptb_tokenizer(list(hyps) + flat_refs).result()  # one JVM for everything
        tok_hyps = tokens[: len(hyps)]
        it = iter(tokens[len(hyps):])
        tok_refs = [[next(it) for _ in group] for group in refs]

        meteor_out: dict = {}

        def run_meteor() -> None:
            try:
                meteor_out["score"] = meteor.score(tok_hyps, tok_refs)[0]
            except Exception as exc:  # re-raised below, in the caller's thread
                meteor_out["error"] = exc

        thread = threading.Thread(target=run_meteor, daemon=True)
        thread.start()  # METEOR works in its JVM while Python does the rest
        scores = mteval_bleu_nist(hyps, refs)
        scores["ROUGE_L"] = rouge_l(tok_hyps, tok_refs)[0]
        scores["CIDEr"] = cider_d(tok_hyps, tok_refs)[0]
        thread.join()
        if "error" in meteor_out:
            raise meteor_out["error"]
    finally:
        if not keep_java:
            meteor.close()
    return {k: float(v) for k, v in (
        ("BLEU", scores["BLEU"]), ("NIST", scores["NIST"]), ("METEOR", meteor_out["score"]),
        ("ROUGE_L", scores["ROUGE_L"]), ("CIDEr", scores["CIDEr"]),
    )}
