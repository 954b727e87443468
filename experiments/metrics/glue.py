"""GLUE dev-set metrics with the names and definitions of Hugging Face's `glue` metric.
Owns score_glue: accuracy, F1 (MRPC/QQP), Matthews correlation (CoLA), Pearson/Spearman (STS-B)."""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from ._io import MetricInputError, check_counts

# HF config names, plus the spellings used elsewhere (GLUE folder names, mnli-m/-mm).
_ALIASES = {
    "cola": "cola", "sst2": "sst2", "sst-2": "sst2", "mrpc": "mrpc", "qqp": "qqp",
    "stsb": "stsb", "sts-b": "stsb", "mnli": "mnli", "mnli_matched": "mnli", "mnli-m": "mnli",
    "mnli_mismatched": "mnli", "mnli-mm": "mnli", "qnli": "qnli", "rte": "rte", "wnli": "wnli",
    "hans": "hans",
}
TASKS = tuple(sorted(set(_ALIASES.values())))
# What each task returns (HF glue metric) and the value the paper's Table 2 reports.
RETURNS = {
    "cola": ("matthews_correlation",), "stsb": ("pearson", "spearmanr"),
    "mrpc": ("accuracy", "f1"), "qqp": ("accuracy", "f1"),
}
PAPER_METRIC = {"cola": "matthews_correlation", "stsb": "pearson"}


def main_metric(task: str) -> str:
    """The metric Table 2 reports for ``task`` (and the one that picks a run's best epoch):
    Matthews correlation for CoLA, Pearson for STS-B, accuracy for the others."""
    return PAPER_METRIC.get(normalise_task(task), "accuracy")


def normalise_task(task: str) -> str:
    key = task.strip().lower().replace(" ", "")
    if key not in _ALIASES:
        raise MetricInputError(f"unknown GLUE task {task!r}; choose from {', '.join(TASKS)}")
    return _ALIASES[key]


def accuracy(preds, labels) -> float:
    return float((np.asarray(preds) == np.asarray(labels)).mean())


def f1_binary(preds, labels) -> float:
    """F1 of the positive class 1 (sklearn's f1_score default); 0.0 when there is no positive at all."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    tp = int(np.sum((preds == 1) & (labels == 1)))
    fp = int(np.sum((preds == 1) & (labels != 1)))
    fn = int(np.sum((preds != 1) & (labels == 1)))
    denom = 2 * tp + fp + fn
    return 0.0 if denom == 0 else float(2 * tp / denom)


def matthews_corrcoef(labels, preds) -> float:
    """sklearn's multiclass MCC from the confusion matrix; 0.0 when either side is constant."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    classes, codes = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    k = len(classes)
    y_true, y_pred = codes[: len(labels)], codes[len(labels):]
    conf = np.zeros((k, k), dtype=np.float64)
    np.add.at(conf, (y_true, y_pred), 1)
    t_sum, p_sum = conf.sum(axis=1), conf.sum(axis=0)
    n_correct, n = np.trace(conf), conf.sum()
    cov_ytyp = n_correct * n - np.dot(t_sum, p_sum)
    cov_ypyp = n * n - np.dot(p_sum, p_sum)
    cov_ytyt = n * n - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp))


def _check_values(values: Sequence, what: str, task: str, class_ids: bool) -> None:
    """Each value a finite real number, and a whole number where it is a class id: a string
    or None compared with the labels would silently score 0.0, so it is an error instead."""
    for i, v in enumerate(values):
        number = isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))
        if not number or not math.isfinite(v) or (class_ids and float(v) != int(v)):
            kind = "class ids (whole numbers)" if class_ids else "finite numbers"
            raise MetricInputError(f"GLUE {task}: {what} {i} is {v!r} ({type(v).__name__}); "
                                   f"{what}s must be {kind}; map label words to ids first")


def score_glue(task: str, preds: Sequence, labels: Sequence) -> dict:
    """HF `glue` metric for ``task``: cola -> matthews_correlation; stsb -> pearson, spearmanr;
    mrpc/qqp -> accuracy, f1; the others -> accuracy. All on the 0-1 scale, as HF returns them.

    ``preds`` are class ids (argmax of the logits), or floats for STS-B; ``labels`` the gold ones.
    """
    name = normalise_task(task)
    check_counts(len(preds), len(labels), "predictions", "labels")
    _check_values(preds, "prediction", name, class_ids=name != "stsb")
    _check_values(labels, "label", name, class_ids=name != "stsb")
    if name == "cola":
        return {"matthews_correlation": matthews_corrcoef(labels, preds)}
    if name == "stsb":
        from scipy.stats import pearsonr, spearmanr

        p, y = np.asarray(preds, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        return {"pearson": float(pearsonr(p, y)[0]), "spearmanr": float(spearmanr(p, y)[0])}
    if name in ("mrpc", "qqp"):
        return {"accuracy": accuracy(preds, labels), "f1": f1_binary(preds, labels)}
    return {"accuracy": accuracy(preds, labels)}
