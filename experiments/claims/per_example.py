"""Per-example scores of one run from the outputs saved beside its record (`predictions.txt`,
`references.txt`), for a paired bootstrap over evaluation items. Owns `per_example_scores`."""
from __future__ import annotations

# Only where the corpus metric is a plain mean of per-item scores can items be resampled:
# label-word accuracy (mnli_gen, rte_gen, sst2_gen: first word, lower-cased, punctuation
# stripped, as experiments/metrics/mnli.py scores it) and SAMSum ROUGE (the mean of
# per-summary F-measures). Corpus BLEU, NIST, CIDEr are not, and get none. The per-item mean
# must give back the record's own value, or the outputs are not the epoch the claim reads.

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..metrics._io import MetricInputError, read_grouped_refs, read_lines
from ..metrics.mnli import normalise_label
from ..paper_numbers import Column
from ..tables.collect import RunRecord

LABEL_TASKS = ("mnli_gen", "rte_gen", "sst2_gen")
# GLUE classification (ClassificationJob writes the best epoch's class indices, one per line):
# accuracy is a mean of per-item hits; MCC (CoLA), F1 and Pearson (STS-B) are not
GLUE_ACCURACY_TASKS = ("sst2", "mrpc", "rte", "qnli", "qqp", "mnli", "wnli")
ROUGE_KEYS = {"ROUGE-1": "rouge1", "ROUGE-2": "rouge2", "ROUGE-L": "rougeL"}


@dataclass(frozen=True)
class CorpusOutputs:
    """A run's saved outputs where the metric is not a mean over items (CoLA's MCC, STS-B's
    Pearson): the items are resampled together and the metric recomputed on each resample
    (stats.paired_corpus_bootstrap)."""
    predictions: np.ndarray
    references: np.ndarray
    task: str
    metric: str
    scale: float

    def value(self, index: np.ndarray | None = None) -> float:
        from ..metrics.glue import score_glue

        p = self.predictions if index is None else self.predictions[index]
        r = self.references if index is None else self.references[index]
        kind = float if self.task == "stsb" else int
        scores = score_glue(self.task, [kind(x) for x in p], [kind(x) for x in r])
        return self.scale * float(scores[self.metric])


def _label_scores(hyps: list[str], refs: list[list[str]]) -> np.ndarray:
    return np.array([float(normalise_label(h) == normalise_label(r[0])) for h, r in
                     zip(hyps, refs)])


def _rouge_scores(hyps: list[str], refs: list[list[str]], name: str) -> np.ndarray:
    from rouge_score import rouge_scorer

    key = ROUGE_KEYS[name]
    # The same scorer settings as experiments/metrics/samsum.py (stemming on, rougeL).
    scorer = rouge_scorer.RougeScorer([key], use_stemmer=True)
    return np.array([100.0 * (scorer.score(r[0], h) if len(r) == 1 else
                              scorer.score_multi(r, h))[key].fmeasure
                     for h, r in zip(hyps, refs)])


def per_example_scores(record: RunRecord, results: Path, column: Column, value: float,
                       epoch) -> tuple[tuple[np.ndarray, str] | None, str | None]:
    """((scores on the column's scale, an id of the evaluated items), None), or (None, why)."""
    run_dir = (Path(results) / record.path).parent
    pred_path, ref_path = run_dir / "predictions.txt", run_dir / "references.txt"
    if not pred_path.is_file() or not ref_path.is_file():
        return None, "no predictions.txt/references.txt beside the record"
    saved_epoch = record.data.get("predictions_epoch")
    if epoch is not None and saved_epoch is not None and saved_epoch != epoch:
        return None, (f"the saved outputs are epoch {saved_epoch}'s, the claim reads epoch "
                      f"{epoch}")
    try:
        hyps = read_lines(pred_path, allow_empty=True)
        refs = read_grouped_refs(ref_path)
    except MetricInputError as err:
        return None, str(err)
    if len(hyps) != len(refs):
        return None, f"{len(hyps)} predictions for {len(refs)} references in {run_dir}"
    metric = next((m for m in column.metrics if m in (record.data.get("metrics") or {})
                   or "/" in m), column.metrics[0] if column.metrics else "")
    name = metric.split("/")[-1]
    if record.task in LABEL_TASKS:
        scores = _label_scores(hyps, refs) * column.scale
    elif record.task in GLUE_ACCURACY_TASKS and name == "accuracy":
        scores = np.array([float(h.strip() == r[0].strip()) for h, r in zip(hyps, refs)]) \
            * column.scale
    elif (record.task, name) in (("cola", "matthews_correlation"), ("stsb", "pearson")):
        scores = CorpusOutputs(np.array([float(h) for h in hyps]),
                               np.array([float(r[0]) for r in refs]), record.task, name,
                               column.scale)
        if not np.isclose(scores.value(), value, rtol=0, atol=1e-6 * max(1.0, abs(value))):
            return None, (f"the saved outputs score {scores.value():.6g}, the record says "
                          f"{value:.6g}: not the outputs of the value read")
        return (scores, hashlib.sha256(ref_path.read_bytes()).hexdigest()[:16]), None
    elif record.task == "samsum" and name in ROUGE_KEYS:
        scores = _rouge_scores(hyps, refs, name) * column.scale
    else:
        return None, f"{record.task} {name} is not a mean of per-example scores"
    if not np.isclose(scores.mean(), value, rtol=0, atol=1e-6 * max(1.0, abs(value))):
        return None, (f"the saved outputs score {scores.mean():.6g}, the record says "
                      f"{value:.6g}: not the outputs of the value read")
    items = hashlib.sha256(ref_path.read_bytes()).hexdigest()[:16]
    return (scores, items), None
