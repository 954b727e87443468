"""MNLI-matched scored as text generation (the paper's GPT-3 setup): accuracy of the generated label word.
Owns normalise_label and score_mnli_generation."""
from __future__ import annotations

import numbers
import string
from typing import Sequence

from ._io import MetricInputError, check_counts

LABEL_WORDS = ("entailment", "neutral", "contradiction")  # GLUE MNLI label ids 0, 1, 2


def normalise_label(text: str) -> str:
    """strip, lowercase, keep the first word, strip punctuation around it ("Entailment." -> "entailment")."""
    words = str(text).strip().lower().split()
    return words[0].strip(string.punctuation) if words else ""


def score_mnli_generation(
    preds: Sequence[str], labels: Sequence, *, label_words: Sequence[str] = LABEL_WORDS
) -> dict:
    """Accuracy (0-1) of generated labels. A gold label is an int id into ``label_words`` or a
    word; a generation whose normalised first word is not a label word counts as wrong and is
    counted in ``unrecognised``."""
    check_counts(len(preds), len(labels), "generations", "labels")
    words = [normalise_label(w) for w in label_words]
    if len(set(words)) != len(words) or "" in words:
        raise MetricInputError(f"label words must be distinct non-empty words, got {list(label_words)}")
    correct = unrecognised = 0
    for i, (pred, gold) in enumerate(zip(preds, labels)):
        if not isinstance(pred, str):
            raise MetricInputError(f"generation {i} is {type(pred).__name__} {pred!r}, "
                                   "expected the generated text")
        if isinstance(gold, numbers.Integral) and not isinstance(gold, bool):
            if not 0 <= gold < len(words):
                raise MetricInputError(f"label {i} is id {gold}, outside 0..{len(words) - 1}")
            gold_word = words[gold]
        else:
            gold_word = normalise_label(gold)
            if gold_word not in words:
                raise MetricInputError(f"label {i} {gold!r} is not one of {words}")
        word = normalise_label(pred)
        if word not in words:
            unrecognised += 1
        correct += word == gold_word
    return {"accuracy": correct / len(preds), "n": len(preds), "unrecognised": unrecognised}
