"""Scorer inputs, the best-epoch rule and the table build's reading of records at their
boundaries (issue #24): bad input is an error, a NaN never wins, nothing vanishes silently."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from experiments.best_epoch import best_epoch
from experiments.run_record import Record
from experiments.metrics import MetricInputError, score_glue, score_mnli_generation, score_wikisql
from experiments.tables.collect import RunRecord, scan


@pytest.mark.parametrize("task, preds, match", [
    ("rte", ["1", "0"], r"GLUE rte: prediction 0 is '1' \(str\)"),
    ("sst2", [1, None], r"prediction 1 is None"),
    ("mrpc", [1.5, 0], r"prediction 0 is 1.5 .*class ids"),
    ("cola", [True, False], r"prediction 0 is True \(bool\)"),
    ("stsb", [0.5, float("nan")], r"prediction 1 is nan .*finite numbers"),
    ("stsb", ["high", 0.2], r"prediction 0 is 'high'"),
])
def test_glue_scorer_refuses_non_numeric_predictions(task, preds, match):
    with pytest.raises(MetricInputError, match=match):
        score_glue(task, preds, [1, 0])


def test_glue_scorer_still_takes_numbers_of_any_numeric_type():
    assert score_glue("rte", np.array([1, 0, 1]), [1, 0, 0]) == {"accuracy": pytest.approx(2 / 3)}
    assert score_glue("sst2", [1.0, 0.0], [np.int64(1), np.int64(1)]) == {"accuracy": 0.5}
    with pytest.raises(MetricInputError, match=r"label 1 is 'x'"):
        score_glue("rte", [1, 0], [1, "x"])


def test_generation_scorers_refuse_non_text_predictions():
    with pytest.raises(MetricInputError, match=r"generation 1 is int 2"):
        score_mnli_generation(["entailment", 2], [0, 2])
    gold = {"sel": 0, "agg": 0, "conds": []}
    with pytest.raises(MetricInputError, match=r"generation 0 is NoneType"):
        score_wikisql([None], [gold], [["Name"]])


def test_nan_epoch_never_wins():
    history = [{"epoch": 1, "dev/pearson": float("nan")}, {"epoch": 2, "dev/pearson": 0.3},
               {"epoch": 3, "dev/pearson": 0.7}, {"epoch": 4, "dev/pearson": float("inf")},
               {"epoch": 5, "dev/pearson": 0.7}]
    # plain max() returns epoch 1 here: comparisons with NaN are all False
    assert max(history, key=lambda h: h["dev/pearson"])["epoch"] == 1
    assert best_epoch(history, "dev/pearson")["epoch"] == 3  # first of the tied best
    assert best_epoch([{"epoch": 1, "k": float("nan")}, {"epoch": 2}], "k") is None


def test_classification_job_reports_a_finite_best_epoch():
    from experiments.classification_job import ClassificationJob

    job = object.__new__(ClassificationJob)  # finish() needs only the metric it watches
    job.monitor = ("dev/pearson", "higher")
    job._predictions = {}  # no epoch evaluated here: no outputs to write
    history = [{"epoch": 1, "dev/pearson": math.nan}, {"epoch": 2, "dev/pearson": 0.4}]
    record = Record("adhoc/stsb")
    assert job.finish(None, None, record, history) == {"dev/pearson": 0.4}
    assert record.best_epoch == 2 and record.best_epoch_note is None
    record = Record("adhoc/stsb")
    all_nan = [{"epoch": 1, "dev/pearson": math.nan}, {"epoch": 2, "dev/pearson": math.nan}]
    job.finish(None, None, record, all_nan)
    assert record.best_epoch == 2 and "no epoch has a finite" in record.best_epoch_note


def _write_record(results, experiment, **fields):
    path = results / "runs" / experiment / "seed1" / "record.json"
    path.parent.mkdir(parents=True)
    record = {"experiment": experiment, "row": "LoRA", "model": "gpt2_m", "profile": "smoke",
              "seed": 1, "status": "complete", "metrics": {"BLEU": 1.0}, **fields}
    path.write_text(json.dumps(record))
    return path


def test_records_of_an_unknown_table_are_reported_not_dropped(tmp_path):
    _write_record(tmp_path, "table99/gpt2_m_lora")
    _write_record(tmp_path, "adhoc/thing", table=42)
    _write_record(tmp_path, "table3/gpt2_m_lora")
    accepted, skipped = scan(tmp_path)
    assert [r.path for r in accepted if isinstance(r, RunRecord)] == [
        "runs/table3/gpt2_m_lora/seed1/record.json"]
    reasons = {s.path: (s.table, s.reason) for s in skipped}
    assert reasons["runs/table99/gpt2_m_lora/seed1/record.json"][0] == 99
    assert "names Table 99, which has no paper numbers" in \
        reasons["runs/table99/gpt2_m_lora/seed1/record.json"][1]
    assert "names Table 42" in reasons["runs/adhoc/thing/seed1/record.json"][1]


def test_table_build_lists_the_unknown_table_record(tmp_path, capsys):
    from experiments.tables.cli import main

    _write_record(tmp_path / "results", "table99/gpt2_m_lora")
    report = main(["table=3", "--results", str(tmp_path / "results"), "--out",
                   str(tmp_path / "out"), "--no-wandb"])
    assert [s.path for s in report.skipped] == ["runs/table99/gpt2_m_lora/seed1/record.json"]
    assert "names Table 99" in capsys.readouterr().err


def test_webnlg_scorer_refuses_non_text_inputs():
    from experiments.metrics import score_webnlg

    with pytest.raises(MetricInputError, match=r"output 1 is NoneType"):
        score_webnlg(["a b", None], [["a b"], ["c"]], metrics=("BLEU",))
    with pytest.raises(MetricInputError, match=r"reference group 0 must be a list of str"):
        score_webnlg(["a b"], ["a b"], metrics=("BLEU",))
    assert score_webnlg(["a b c d"], [["a b c d"]], metrics=("BLEU",))["BLEU"] == pytest.approx(100)
