"""The claims ledger on evidence beyond seed means: timing artifacts (paired rounds), analysis
JSONs of trained adapters, one seed a side read from saved outputs (GLUE classes, CoLA's MCC)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from experiments.claims.convergence import ConvergenceRule
from experiments.claims.evidence import MissingEvidence, gather
from experiments.claims.spec import LedgerError, parse_claim
from experiments.tables.collect import scan
from experiments.claims.stats import (INCONCLUSIVE, NOT_RUN, REFUTED, REPRODUCED)

from .claims_fixtures import FT, LORA, artifact_claim, claim, judge, seeds, write_record


# --- artifacts: bench timings and analysis JSONs ------------------------------------------

def test_timing_trials_in_a_bench_file_get_welchs_interval(tmp_path):
    (tmp_path / "bench").mkdir()
    base, adapter = [10.0, 10.2, 9.9, 10.1], [12.0, 12.3, 11.8, 12.1]
    (tmp_path / "bench" / "latency.json").write_text(json.dumps(
        {"cells": [{"base": base, "adapter": adapter}]}))
    side = {"file": "bench/latency.json", "command": "make table1"}
    c = artifact_claim({**side, "key": "cells.0.adapter"}, {**side, "key": "cells.0.base"},
                       "greater")
    result = judge(tmp_path, c)
    ci = sps.ttest_ind(adapter, base, equal_var=False).confidence_interval(0.95)
    comp = result.comparisons[0]
    assert (comp.interval.low, comp.interval.high) == pytest.approx((ci.low, ci.high))
    assert result.verdict == REPRODUCED


def test_paired_rounds_cancel_drift_that_leaves_welchs_interval_wide(tmp_path):
    """Load that drifts between rounds hits both variants of a round: the per-round differences
    (0.1 ms each, up to rounding) are tight, the two lists themselves spread over 4 ms."""
    (tmp_path / "bench").mkdir()
    drift = [10.0, 14.0, 11.0, 13.0, 10.5, 12.0]
    base = drift
    merged = [t + 0.1 + 0.01 * (i % 2) for i, t in enumerate(drift)]
    (tmp_path / "bench" / "latency.json").write_text(json.dumps(
        {"cells": [{"base": base, "merged": merged}]}))
    side = {"file": "bench/latency.json", "command": "make table1"}
    sides = ({**side, "key": "cells.0.merged"}, {**side, "key": "cells.0.base"})
    welch = judge(tmp_path, artifact_claim(*sides, "greater"))
    assert welch.verdict == INCONCLUSIVE      # the drift swamps a 0.1 ms difference
    paired = judge(tmp_path, artifact_claim(*sides, "greater", paired=True))
    comp = paired.comparisons[0]
    diffs = np.subtract(merged, base)
    ci = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
    assert comp.interval.method == "paired_t"
    assert comp.interval.difference == pytest.approx(diffs.mean())
    assert (comp.interval.low, comp.interval.high) == pytest.approx((ci.low, ci.high))
    assert paired.verdict == REPRODUCED
    # within 5% of the base mean, both ways: merged adds no latency that matters
    same = judge(tmp_path, artifact_claim(*sides, "equivalent", relative_margin=0.05, paired=True))
    assert same.verdict == REPRODUCED


def test_paired_needs_artifacts_of_equal_length(tmp_path):
    with pytest.raises(LedgerError, match="paired"):
        claim("greater", paired=True)
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "latency.json").write_text(json.dumps(
        {"cells": [{"base": [1.0, 2.0, 3.0], "merged": [1.0, 2.0]}]}))
    side = {"file": "bench/latency.json", "command": "make table1"}
    with pytest.raises(ValueError, match="2 values"):
        judge(tmp_path, artifact_claim({**side, "key": "cells.0.merged"},
                                       {**side, "key": "cells.0.base"}, "greater", paired=True))


def test_an_analysis_of_unconverged_adapters_is_under_trained(tmp_path):
    write_record(tmp_path, "table6_smollm2/sst2_gen/qv_r4", 1, [0.7], task="sst2_gen")
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "table7.json").write_text(json.dumps(
        {"ours": {"4": {"amplification": 20.0}},
         "runs": [{"experiment": "table6_smollm2/sst2_gen/qv_r4", "seed": 1}]}))
    c = artifact_claim({"file": "analysis/table7.json", "key": "ours.4.amplification",
                        "runs_key": "runs", "command": "make table7"}, {"value": 1.0},
                       "greater", point_decides=True)
    result = judge(tmp_path, c)
    comp = result.comparisons[0]
    assert result.verdict == INCONCLUSIVE and comp.statistic_says == REPRODUCED
    assert comp.gates[0].startswith("runs/table6_smollm2/sst2_gen/qv_r4/seed1/record.json")
    (tmp_path / "analysis" / "table7.json").unlink()
    missing = judge(tmp_path, c)
    assert missing.verdict == NOT_RUN and "make table7" in missing.reason


def test_one_clear_failure_refutes_the_conjunction(tmp_path):
    seeds(tmp_path, LORA, [0.801, 0.803, 0.802])          # clearly below FT
    seeds(tmp_path, FT, [0.850, 0.852, 0.851])
    seeds(tmp_path, "table2_minilm/lora_mrpc", [0.70, 0.80, 0.75], task="mrpc")
    seeds(tmp_path, "table2_minilm/ft_mrpc", [0.74, 0.76, 0.75], task="mrpc")
    c = parse_claim({"id": "x", "statement": "s", "where": "w", "comparisons": [
        {"label": task, "relation": "at_least", "margin": 1.0,
         "a": {"experiment": f"table2_minilm/lora_{task}", "table": 2, "column": col},
         "b": {"experiment": f"table2_minilm/ft_{task}", "table": 2, "column": col}}
        for task, col in (("sst2", "SST-2"), ("mrpc", "MRPC"))]}, Path("x.yaml"))
    result = judge(tmp_path, c)
    assert [r.verdict for r in result.comparisons] == [REFUTED, INCONCLUSIVE]
    assert result.verdict == REFUTED


def test_a_record_without_the_metric_asks_for_a_new_run_directory(tmp_path):
    seeds(tmp_path, LORA, [0.90, 0.91, 0.92], metric="dev/f1")
    with pytest.raises(MissingEvidence, match=r"hold no such value.*run.new_dir=true"):
        gather(claim("greater").comparisons[0].a, scan(tmp_path)[0], tmp_path,
               ConvergenceRule())


def test_one_seed_a_side_on_glue_reads_the_class_indices_a_classification_run_saves(tmp_path):
    refs = ["1", "0"] * 50
    flip = {"0": "1", "1": "0"}
    lora_preds = refs[:70] + [flip[r] for r in refs[70:]]
    ft_preds = refs[:75] + [flip[r] for r in refs[75:]]
    write_record(tmp_path, LORA, 1, [0.68, 0.70, 0.69, 0.69], predictions=lora_preds, references=refs)
    write_record(tmp_path, FT, 1, [0.74, 0.75, 0.73, 0.73], predictions=ft_preds, references=refs)
    comp = judge(tmp_path, claim("at_least", margin=1.0)).comparisons[0]
    assert comp.interval.method == "paired_bootstrap"
    assert comp.interval.difference == pytest.approx(-5.0)  # 70 vs 75 right of 100
    assert comp.interval.high < -1.0 and comp.verdict == "refuted"


def test_one_seed_a_side_on_cola_resamples_items_and_recomputes_mcc(tmp_path):
    """MCC is no mean over items: the paired bootstrap resamples the items of both runs
    together and recomputes each run's MCC (the interval must bracket the difference)."""
    from experiments.metrics.glue import score_glue

    rng = np.random.default_rng(0)
    refs = [str(x) for x in rng.integers(0, 2, 400)]
    good = [r if rng.random() < 0.85 else str(1 - int(r)) for r in refs]
    poor = [r if rng.random() < 0.60 else str(1 - int(r)) for r in refs]
    mcc = lambda p: score_glue("cola", [int(x) for x in p], [int(x) for x in refs])[  # noqa: E731
        "matthews_correlation"]
    col = "dev/matthews_correlation"
    write_record(tmp_path, "table2_minilm/lora_cola", 1, [mcc(good) - 0.1, mcc(good)],
                 task="cola", metric=col, predictions=good, references=refs)
    write_record(tmp_path, "table2_minilm/ft_cola", 1, [mcc(poor) - 0.1, mcc(poor)],
                 task="cola", metric=col, predictions=poor, references=refs)
    c = parse_claim({"id": "x", "statement": "s", "where": "w", "comparisons": [
        {"label": "CoLA", "relation": "at_least", "margin": 1.0,
         "a": {"experiment": "table2_minilm/lora_cola", "table": 2, "column": "CoLA"},
         "b": {"experiment": "table2_minilm/ft_cola", "table": 2, "column": "CoLA"}}]},
        Path("x.yaml"))
    comp = judge(tmp_path, c).comparisons[0]
    assert comp.interval.method == "paired_corpus_bootstrap"
    d = 100 * (mcc(good) - mcc(poor))
    assert comp.interval.difference == pytest.approx(d)
    assert comp.interval.low < d < comp.interval.high and comp.interval.low > 20


def test_budget_lines_summarise_each_run_once_by_model():
    from experiments.claims.report import budget_lines
    ft = {"record": "runs/a/seed1/record.json", "model": "MiniLM",
          "train_examples": 2490, "steps": 308, "epochs": 4, "max_epochs": 10,
          "stopped_early": True}
    lora = dict(ft, record="runs/b/seed1/record.json", train_examples=10000, steps=1560,
                epochs=7, stopped_early=False)
    other = dict(ft, record="runs/c/seed1/record.json", model="SmolLM2", epochs=None,
                 max_epochs=1, stopped_early=None)
    # ft appears under two comparisons: counted once
    assert budget_lines([ft, lora, ft, other]) == [
        "MiniLM, 2,490-10,000 training examples, 308-1,560 steps, 4-7 epoch(s) "
        "trained of up to 10, 1 of 2 runs stopped once the dev metric stopped improving",
        "SmolLM2, 2,490 training examples, 308 steps, 1 epoch(s)"]
