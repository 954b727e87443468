"""GLUE (HF glue metric definitions), SAMSum ROUGE and MNLI-as-generation: hand-worked cases."""
from __future__ import annotations

import math

import pytest

from experiments.metrics import MetricInputError, normalise_label, score_glue, score_mnli_generation, score_samsum


def test_accuracy_and_f1_for_mrpc():
    # labels 1 0 0 1, preds 1 0 1 1: 3/4 right; TP 2, FP 1, FN 0 -> F1 = 4/5
    assert score_glue("mrpc", [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 0.75, "f1": 0.8}
    assert score_glue("QQP", [0, 0], [0, 0]) == {"accuracy": 1.0, "f1": 0.0}  # no positive: F1 0


def test_matthews_binary_and_multiclass():
    # TP 2, TN 1, FP 1, FN 0: (2*1 - 1*0) / sqrt(3*2*2*1)
    assert score_glue("cola", [1, 0, 1, 1], [1, 0, 0, 1])["matthews_correlation"] == pytest.approx(2 / math.sqrt(12))
    assert score_glue("cola", [1, 1, 1], [1, 0, 1])["matthews_correlation"] == 0.0  # constant predictions
    # 3 classes, confusion [[2,0,0],[0,0,1],[0,0,1]]: (3*4 - 6) / sqrt((16-6)(16-8))
    from experiments.metrics.glue import matthews_corrcoef

    assert matthews_corrcoef([0, 1, 2, 0], [0, 2, 2, 0]) == pytest.approx(6 / math.sqrt(80))


def test_pearson_and_spearman_for_stsb():
    # deviations (-1, 0, 1) and (-4/3, -1/3, 5/3): cov 3, sums of squares 2 and 42/9
    out = score_glue("sts-b", [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    assert out["pearson"] == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert out["spearmanr"] == pytest.approx(1.0)
    assert set(out) == {"pearson", "spearmanr"}


@pytest.mark.parametrize("task", ["sst-2", "SST2", "mnli", "mnli-mm", "qnli", "rte", "wnli"])
def test_accuracy_only_tasks(task):
    assert score_glue(task, [0, 1, 2], [0, 1, 1]) == {"accuracy": pytest.approx(2 / 3)}


def test_glue_errors():
    with pytest.raises(MetricInputError, match="unknown GLUE task"):
        score_glue("squad", [1], [1])
    with pytest.raises(MetricInputError, match="2 outputs in predictions but 3 reference groups in labels"):
        score_glue("rte", [1, 0], [1, 0, 1])


def test_samsum_rouge_hand_case():
    # unigrams: P 3/3, R 3/6 -> F 2/3; bigrams: P 2/2, R 2/5 -> F 4/7; LCS 3 -> as unigrams
    out = score_samsum(["the cat sat"], ["the cat sat on the mat"])
    assert out == {"ROUGE-1": pytest.approx(200 / 3), "ROUGE-2": pytest.approx(400 / 7), "ROUGE-L": pytest.approx(200 / 3)}


def test_samsum_stemming_is_on_by_default():
    assert score_samsum(["cats running"], ["cat run"])["ROUGE-1"] == pytest.approx(100.0)
    assert score_samsum(["cats running"], ["cat run"], use_stemmer=False)["ROUGE-1"] == 0.0
    # mean over summaries, not pooled counts
    assert score_samsum(["a b", "c"], ["a b", "d"])["ROUGE-1"] == pytest.approx(50.0)


def test_mnli_label_normalisation():
    assert normalise_label("  Entailment. The premise says so") == "entailment"
    assert normalise_label("NEUTRAL,") == "neutral"
    assert normalise_label("") == ""


def test_mnli_generation_accuracy():
    preds = ["entailment", "Neutral.", "contradiction!", "maybe", ""]
    out = score_mnli_generation(preds, [0, 1, "entailment", 2, 0])
    assert out == {"accuracy": 2 / 5, "n": 5, "unrecognised": 2}
    words = ("yes", "maybe", "no")
    assert score_mnli_generation(["Yes", "no"], [0, 2], label_words=words)["accuracy"] == 1.0
    with pytest.raises(MetricInputError, match="outside"):
        score_mnli_generation(["yes"], [3])
