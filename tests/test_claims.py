"""The claims ledger: verdict rules on constructed records, missing records refused with their
command, the paired bootstrap on cases with a known answer, the convergence test, the CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from experiments.claims.__main__ import main
from experiments.claims.convergence import ConvergenceRule, check_convergence
from experiments.claims.evidence import MissingEvidence, gather
from experiments.claims.spec import LedgerError, load_ledger, parse_claim
from experiments.tables.collect import scan
from experiments.claims.stats import (INCONCLUSIVE, NOT_RUN, REFUTED, REPRODUCED, Interval,
                                      paired_bootstrap, seed_mean_difference, verdict_for)

from .claims_fixtures import FT, LORA, claim, judge, plateau, seeds, write_record


# --- verdict rules on constructed records -------------------------------------------------

def test_reproduced_when_the_interval_clears_zero(tmp_path):
    seeds(tmp_path, LORA, [0.901, 0.903, 0.902])
    seeds(tmp_path, FT, [0.850, 0.852, 0.851])
    result = judge(tmp_path, claim("greater"))
    comp = result.comparisons[0]
    assert result.verdict == REPRODUCED, result.reason
    # best epoch of each seed (the second) on the paper's scale: 90.2 vs 85.1
    assert comp.a.values == pytest.approx([90.1, 90.3, 90.2])
    assert comp.interval.difference == pytest.approx(5.1)
    ci = sps.ttest_ind([90.1, 90.3, 90.2], [85.0, 85.2, 85.1], equal_var=False) \
        .confidence_interval(0.95)
    assert (comp.interval.low, comp.interval.high) == pytest.approx((ci.low, ci.high))
    assert comp.interval.method == "welch_t" and comp.interval.low > 0


def test_refuted_when_the_interval_lies_below(tmp_path):
    seeds(tmp_path, LORA, [0.801, 0.803, 0.802])
    seeds(tmp_path, FT, [0.850, 0.852, 0.851])
    result = judge(tmp_path, claim("at_least", margin=1.0))
    assert result.verdict == REFUTED, result.reason
    assert result.comparisons[0].interval.high < -1.0


def test_inconclusive_at_equal_means_with_wide_intervals(tmp_path):
    seeds(tmp_path, LORA, [0.80, 0.90, 0.85])
    seeds(tmp_path, FT, [0.84, 0.86, 0.85])
    result = judge(tmp_path, claim("greater"))
    comp = result.comparisons[0]
    assert comp.interval.difference == pytest.approx(0.0, abs=1e-9)
    assert comp.interval.low < 0 < comp.interval.high
    assert result.verdict == INCONCLUSIVE and "contains 0" in comp.reason


def _lora_beats_ft_ledger(tmp_path: Path) -> Path:
    """A ledger folder holding one claim: LoRA beats FT on SST-2."""
    ledger = tmp_path / "ledger"
    ledger.mkdir()
    (ledger / "c.yaml").write_text(
        f"id: lora_beats_ft\nstatement: LoRA beats FT\nwhere: Table 2\ncomparisons:\n"
        f"  - {{label: SST-2, relation: greater, a: {{experiment: {LORA}, table: 2, "
        f"column: SST-2}}, b: {{experiment: {FT}, table: 2, column: SST-2}}}}\n")
    return ledger


def test_seeds_without_spread_decide_nothing(tmp_path):
    """Two seeds a side that agree to the measure's resolution (46.0 and 46.0 on 200 items) give
    Welch's t no variance: the interval is undefined, not the point, and no verdict rests on it."""
    iv = seed_mean_difference([0.5, 0.5], [-1.5, -1.5])
    assert iv.undefined and iv.difference == pytest.approx(2.0)
    verdict, why = verdict_for("less", iv)
    assert verdict == INCONCLUSIVE and "no spread" in why
    assert seed_mean_difference([0.5, 0.5 + 1e-15], [-1.5, -1.5]).undefined   # float rounding
    assert not seed_mean_difference([0.5, 0.6], [-1.5, -1.5]).undefined   # one side varies
    ledger = _lora_beats_ft_ledger(tmp_path)
    seeds(tmp_path, LORA, [0.90, 0.90])
    seeds(tmp_path, FT, [0.85, 0.85])
    assert main(["--results", str(tmp_path), "--ledger", str(ledger)]) == 0
    text = (tmp_path / "claims.json").read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"claims.json holds {c}"))
    diff = doc["claims"][0]["comparisons"][0]["difference"]
    assert diff["undefined"] and diff["low"] is None and diff["high"] is None
    assert doc["claims"][0]["verdict"] == INCONCLUSIVE
    assert "no interval" in (tmp_path / "CLAIMS.md").read_text()


def test_equivalence_needs_the_whole_interval_inside_the_margin(tmp_path):
    seeds(tmp_path, LORA, [0.851, 0.852, 0.850])
    seeds(tmp_path, FT, [0.850, 0.851, 0.852])
    assert judge(tmp_path, claim("equivalent", margin=0.5)).verdict == REPRODUCED
    assert judge(tmp_path, claim("equivalent", margin=0.01)).verdict == INCONCLUSIVE


def test_under_trained_runs_make_the_claim_inconclusive_whatever_the_interval(tmp_path):
    for s, (a, b) in enumerate([(0.90, 0.85), (0.91, 0.86), (0.92, 0.84)], start=1):
        write_record(tmp_path, LORA, s, [a])          # one evaluation: no plateau shown
        write_record(tmp_path, FT, s, [b - 0.1, b])   # still improving at its last epoch
    result = judge(tmp_path, claim("greater"))
    comp = result.comparisons[0]
    assert result.verdict == INCONCLUSIVE and result.reason.startswith("under-trained")
    assert comp.statistic_says == REPRODUCED          # the interval alone would have said so
    assert len(comp.gates) == 6


def test_a_record_that_says_it_converged_is_believed(tmp_path):
    for s, (a, b) in enumerate([(0.90, 0.85), (0.91, 0.86), (0.92, 0.84)], start=1):
        write_record(tmp_path, LORA, s, [a], converged=True)
        write_record(tmp_path, FT, s, [b], converged=True)
    assert judge(tmp_path, claim("greater")).verdict == REPRODUCED


def test_a_mean_below_the_trained_floor_is_under_trained(tmp_path):
    seeds(tmp_path, LORA, [0.701, 0.703, 0.702])
    seeds(tmp_path, FT, [0.650, 0.652, 0.651])
    result = judge(tmp_path, claim("greater", trained_floor=85))
    assert result.verdict == INCONCLUSIVE
    assert "below the level that shows training happened" in result.comparisons[0].reason
    assert "median 70.2 < 85" in result.comparisons[0].reason


def test_a_floor_on_one_side_leaves_a_baseline_below_it_to_the_comparison(tmp_path):
    """LoRA clears the level and the baseline converged below it: a result, not under-training."""
    seeds(tmp_path, LORA, [0.901, 0.903, 0.902])
    seeds(tmp_path, FT, [0.801, 0.803, 0.802])
    both = judge(tmp_path, claim("greater", trained_floor=85))
    assert both.verdict == INCONCLUSIVE and "median 80.2 < 85" in both.comparisons[0].reason
    lora_only = judge(tmp_path, claim("greater", trained_floor=85, floor_sides=["a"]))
    assert lora_only.verdict == REPRODUCED
    floored_b = judge(tmp_path, claim("greater", trained_floor=85, floor_sides=["b"]))
    assert floored_b.verdict == INCONCLUSIVE
    with pytest.raises(LedgerError, match="floor_sides"):
        claim("greater", trained_floor=85, floor_sides=["c"])
    with pytest.raises(LedgerError, match="floor_sides without trained_floor"):
        claim("greater", floor_sides=["a"])


# --- missing records ----------------------------------------------------------------------

def test_missing_records_are_refused_with_the_command_that_makes_them(tmp_path):
    seeds(tmp_path, LORA, [0.90, 0.91, 0.92])
    c = claim("greater")
    with pytest.raises(MissingEvidence) as err:
        gather(c.comparisons[0].b, scan(tmp_path)[0], tmp_path, ConvergenceRule())
    assert f"python -m experiments.run -m experiment={FT} seed=1,2,3" in str(err.value)
    assert not err.value.gpu                       # MiniLM is a CPU stand-in
    result = judge(tmp_path, c)
    assert result.verdict == NOT_RUN
    assert f"experiment={FT}" in result.reason


def test_a_paper_scale_experiment_says_it_needs_a_gpu(tmp_path):
    c = claim("greater", a="table2/roberta_base_lora/sst2", b="table2/roberta_base_ft/sst2")
    result = judge(tmp_path, c)
    assert result.verdict == NOT_RUN and "(GPU + hub)" in result.reason


def test_an_unfinished_record_counts_as_missing(tmp_path):
    seeds(tmp_path, LORA, [0.90, 0.91, 0.92])
    run = write_record(tmp_path, FT, 1, plateau(0.85))
    data = json.loads((run / "record.json").read_text())
    (run / "record.json").write_text(json.dumps({**data, "status": "running"}))
    assert judge(tmp_path, claim("greater")).verdict == NOT_RUN


# --- the paired bootstrap -----------------------------------------------------------------

def test_paired_bootstrap_matches_the_normal_interval_on_a_large_sample():
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, 4000)
    b = a - 0.25 + rng.normal(0.0, 0.5, 4000)        # paired: b tracks a, d ~ N(0.25, 0.5²)
    iv = paired_bootstrap(a, b, n_resamples=4000, seed=0)
    d = a - b
    half = 1.959964 * d.std(ddof=1) / math.sqrt(d.size)
    assert iv.difference == pytest.approx(d.mean())
    assert iv.low == pytest.approx(d.mean() - half, abs=0.004)
    assert iv.high == pytest.approx(d.mean() + half, abs=0.004)
    # pairing matters: the unpaired (Welch) interval on the same data is about twice as wide
    welch = seed_mean_difference(a, b)
    assert (welch.high - welch.low) > 1.8 * (iv.high - iv.low)


def test_paired_bootstrap_of_identical_differences_is_a_point():
    iv = paired_bootstrap(np.ones(50), np.zeros(50))
    assert (iv.difference, iv.low, iv.high) == (1.0, 1.0, 1.0)


def test_one_seed_a_side_uses_the_saved_outputs(tmp_path):
    refs = ["positive", "negative"] * 50
    lora_preds = refs[:80] + ["negative" if r == "positive" else "positive" for r in refs[80:]]
    ft_preds = refs[:60] + ["negative" if r == "positive" else "positive" for r in refs[60:]]
    a, b = "table4_smollm2/sst2_gen/lora_qv_r8", "table4_smollm2/sst2_gen/ft"
    write_record(tmp_path, "table6_smollm2/sst2_gen/qv_r8", 1, [0.78, 0.80, 0.79, 0.79],
                 task="sst2_gen", predictions=lora_preds, references=refs)
    write_record(tmp_path, b, 1, [0.58, 0.60, 0.59, 0.59], task="sst2_gen", predictions=ft_preds,
                 references=refs)
    # the best epoch (0.80, 0.60) is the one whose outputs were saved: 80 and 60 correct
    c = parse_claim({"id": "x", "statement": "s", "where": "w", "comparisons": [
        {"label": "l", "relation": "greater", "a": {"experiment": a, "table": 4,
                                                    "column": "SST-2-gen"},
         "b": {"experiment": b, "table": 4, "column": "SST-2-gen"}}]}, Path("x.yaml"))
    result = judge(tmp_path, c)
    comp = result.comparisons[0]
    # a reads Table 6's run: Table 4's file says `run.same_as: table6_smollm2/sst2_gen/qv_r8`
    assert comp.a.records == ["runs/table6_smollm2/sst2_gen/qv_r8/seed1/record.json"]
    assert comp.interval.method == "paired_bootstrap"
    assert comp.interval.difference == pytest.approx(20.0)
    # items 60..79: LoRA right, FT wrong; elsewhere both agree: d_i = 100 on 20 of 100 items
    d = np.r_[np.zeros(60), np.full(20, 100.0), np.zeros(20)]
    half = 1.96 * d.std(ddof=1) / 10
    assert comp.interval.low == pytest.approx(20 - half, abs=2.5)
    assert result.verdict == REPRODUCED


def test_outputs_that_do_not_give_the_records_value_are_not_used(tmp_path):
    refs = ["positive", "negative"] * 10
    write_record(tmp_path, "table4_smollm2/sst2_gen/ft", 1, [0.5, 0.7, 0.6, 0.6], task="sst2_gen",
                 predictions=refs, references=refs)   # all right, but the record says 0.7
    c = parse_claim({"id": "x", "statement": "s", "where": "w", "comparisons": [
        {"label": "l", "relation": "greater", "point_decides": False,
         "a": {"experiment": "table4_smollm2/sst2_gen/ft", "table": 4, "column": "SST-2-gen"},
         "b": {"value": 50}}]}, Path("x.yaml"))
    comp = judge(tmp_path, c).comparisons[0]
    assert not comp.a.per_example and "the record says 70" in comp.a.per_example_note
    assert comp.interval.is_point and comp.verdict == INCONCLUSIVE


# --- the pieces ---------------------------------------------------------------------------

@pytest.mark.parametrize("relation,low,high,margin,want", [
    ("greater", 0.1, 2.0, 0, REPRODUCED), ("greater", -2.0, -0.1, 0, REFUTED),
    ("greater", -0.1, 2.0, 0, INCONCLUSIVE), ("less", -2.0, -0.1, 0, REPRODUCED),
    ("at_least", -0.9, 3.0, 1.0, REPRODUCED), ("at_least", -3.0, -1.1, 1.0, REFUTED),
    ("at_least", -1.5, 0.5, 1.0, INCONCLUSIVE), ("at_most", -3.0, 0.9, 1.0, REPRODUCED),
    ("equivalent", -0.4, 0.4, 0.5, REPRODUCED), ("equivalent", 0.6, 0.9, 0.5, REFUTED),
    ("equivalent", -0.4, 0.6, 0.5, INCONCLUSIVE)])
def test_verdict_rules(relation, low, high, margin, want):
    iv = Interval((low + high) / 2, low, high, "welch_t", 3, 3)
    assert verdict_for(relation, iv, margin)[0] == want


def test_convergence_test_reads_the_dev_history():
    rule = ConvergenceRule(min_evaluations=3, patience=1, tolerance=0.0)

    def conv(values, **kw):
        data = {"train": {"steps": 30, "history": [{"dev/accuracy": v} for v in values]}, **kw}
        return check_convergence(data, ("dev/accuracy",), 100, "higher", rule)

    assert not conv([0.70, 0.75, 0.755]).converged          # still rising at the end
    assert conv([0.70, 0.76, 0.755]).converged              # stopped improving
    assert not conv([0.70, 0.76]).converged                 # too few evaluations
    assert conv([0.7], converged=True).converged            # the record's own word
    assert check_convergence({"train": {"history": [{"l": 3}, {"l": 2}, {"l": 2.5}]}}, ("l",),
                             1, "lower", rule).converged


def test_a_run_that_never_beat_its_constant_predictor_has_not_converged():
    rule = ConvergenceRule(min_evaluations=3, patience=1, tolerance=0.0)
    chance = {"metric": "dev/matthews_correlation", "value": 0.0}

    def conv(values):
        data = {"train": {"steps": 800, "chance": chance,
                          "history": [{"dev/matthews_correlation": v} for v in values]}}
        return check_convergence(data, ("dev/matthews_correlation",), 100, "higher", rule)

    stuck = conv([0.0, 0.0, 0.0])
    assert not stuck.converged and "constant predictor" in stuck.reason
    assert conv([0.0, 0.2, 0.2]).converged
    # a level recorded for another metric does not apply
    other = {"train": {"chance": {"metric": "dev/accuracy", "value": 0.9},
                       "history": [{"dev/matthews_correlation": v} for v in (0.1, 0.2, 0.2)]}}
    assert check_convergence(other, ("dev/matthews_correlation",), 100, "higher",
                             rule).converged


def test_the_shipped_ledger_lists_every_claim_of_the_issue():
    ids = {c.id for c in load_ledger().claims}
    assert ids >= {"glue_lora_vs_ft", "glue_lora_vs_bitfit_adapters", "e2e_lora_best",
                   "webnlg_dart_lora_best", "gpt3_lora_vs_others", "prefix_degrades_lora_scales",
                   "multiple_weight_types", "small_rank_suffices", "top_direction_shared",
                   "dwq_higher_intrinsic_rank", "delta_w_amplifies", "no_inference_latency",
                   "training_efficiency", "sample_efficiency", "fine_tuning_beats_few_shot",
                   "lora_plus_prefix"}


def test_a_bad_claim_file_is_named_with_the_fix(tmp_path):
    (tmp_path / "bad.yaml").write_text(
        "id: b\nstatement: s\nwhere: w\ncomparisons:\n  - {label: l, relation: greater, "
        "a: {experiment: table99/nothing}, b: {value: 1}}\n")
    with pytest.raises(LedgerError, match=r"bad.yaml.*table99/nothing.*conf/experiment"):
        load_ledger(tmp_path)
    (tmp_path / "bad.yaml").write_text("id: b\nstatement: s\nwhere: w\ncomparisons: []\n"
                                       "verdict: reproduced\n")
    with pytest.raises(LedgerError, match=r"unknown key.*verdict"):
        load_ledger(tmp_path)


def test_cli_writes_the_ledger_files(tmp_path):
    ledger = _lora_beats_ft_ledger(tmp_path)
    seeds(tmp_path, LORA, [0.901, 0.903, 0.902])
    seeds(tmp_path, FT, [0.850, 0.852, 0.851])
    assert main(["--results", str(tmp_path), "--ledger", str(ledger)]) == 0
    doc = json.loads((tmp_path / "claims.json").read_text())
    assert doc["summary"][REPRODUCED] == 1
    comp = doc["claims"][0]["comparisons"][0]
    assert comp["difference"]["value"] == pytest.approx(5.1)
    assert len(comp["a"]["records"]) == 3
    md = (tmp_path / "CLAIMS.md").read_text()
    assert "LoRA beats FT" in md and "**reproduced**" in md


def test_a_comparison_reads_its_plateau_runs_once_both_sides_have_one(tmp_path):
    """`plateau`: the short runs until both converging experiments have a run, then those
    alone (never one side of each), under a label that says so."""
    long_a, long_b = "glue_minilm/lora_sst2", "glue_minilm/ft_sst2"
    c = claim("greater", plateau={"a": long_a, "b": long_b})
    seeds(tmp_path, LORA, [0.80, 0.81, 0.82])      # short: LoRA below FT
    seeds(tmp_path, FT, [0.85, 0.86, 0.87])
    short = judge(tmp_path, c).comparisons[0]
    assert (short.verdict, short.comparison.label) == (REFUTED, "SST-2")
    seeds(tmp_path, long_a, [0.90, 0.91, 0.92])      # one side alone does not switch
    assert judge(tmp_path, c).comparisons[0].comparison.a.experiment == LORA
    seeds(tmp_path, long_b, [0.84, 0.85, 0.86])
    result = judge(tmp_path, c)
    comp = result.comparisons[0]
    assert comp.comparison.label == "SST-2, trained to a plateau"
    assert (comp.comparison.a.experiment, comp.comparison.b.experiment) == (long_a, long_b)
    assert result.verdict == REPRODUCED and comp.a.values == pytest.approx([90.0, 91.0, 92.0])
    assert all(p.startswith(("runs/glue_minilm/",)) for p in comp.a.records + comp.b.records)


def test_a_plateau_naming_no_experiment_file_is_refused_with_the_fix():
    with pytest.raises(LedgerError, match=r"plateau.b 'glue_minilm/nothing' has no file"):
        claim("greater", plateau={"a": "glue_minilm/lora_sst2", "b": "glue_minilm/nothing"})
    with pytest.raises(LedgerError, match=r"plateau: give \{a: EXPERIMENT, b: EXPERIMENT\}"):
        claim("greater", plateau="glue_minilm/lora_sst2")


def test_the_summary_says_what_the_trained_comparisons_show(tmp_path):
    """An under-trained comparison makes the claim inconclusive; the short reason also says what
    the others show, so a reader knows whether more training alone would settle it."""
    other_lora, other_ft = "table2_minilm/lora_mrpc", "table2_minilm/ft_mrpc"
    for s, (a, b) in enumerate([(0.90, 0.85), (0.91, 0.86), (0.92, 0.84)], start=1):
        write_record(tmp_path, LORA, s, [a])          # one evaluation: no plateau shown
        write_record(tmp_path, FT, s, plateau(b))
    seeds(tmp_path, other_lora, [0.80, 0.90, 0.85], task="mrpc")   # equal means, wide interval
    seeds(tmp_path, other_ft, [0.84, 0.86, 0.85], task="mrpc")

    def comparison(label, a, b):
        return {"label": label, "relation": "greater", "a": {"experiment": a, "table": 2,
                "column": label}, "b": {"experiment": b, "table": 2, "column": label}}
    two = parse_claim({"id": "two", "statement": "s", "where": "w", "comparisons": [
        comparison("SST-2", LORA, FT), comparison("MRPC", other_lora, other_ft)]},
                      Path("two.yaml"))
    result = judge(tmp_path, two)
    assert result.verdict == INCONCLUSIVE
    assert result.why == "under-trained (1 of 2); the other 1: 1 too wide"
    assert result.reason.endswith("; the other 1: 1 too wide")
    wide_only = parse_claim({"id": "w", "statement": "s", "where": "w", "comparisons": [
        comparison("MRPC", other_lora, other_ft)]}, Path("w.yaml"))
    assert judge(tmp_path, wide_only).why == "intervals too wide"


def _with_stats(mean: float, sd: float, n: int) -> np.ndarray:
    """n values with exactly this mean and sample standard deviation."""
    z = np.linspace(-1.0, 1.0, n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


def test_seeds_to_decide_projects_the_welch_interval(tmp_path):
    """The fewest seeds a side at which Welch's interval, at the observed means and spreads,
    would leave the boundary: checked against scipy's interval on samples with those stats."""
    from experiments.claims.stats import seeds_to_decide
    a, b = [90.5, 91.5, 89.75], [90.0, 89.75, 90.0]          # d = 0.67, too wide at 3 seeds
    assert seed_mean_difference(a, b).low < 0
    n = seeds_to_decide(a, b, "greater")
    assert n is not None and 3 < n <= 50

    def low_at(k):
        ma, sa, mb, sb = np.mean(a), np.std(a, ddof=1), np.mean(b), np.std(b, ddof=1)
        return sps.ttest_ind(_with_stats(ma, sa, k), _with_stats(mb, sb, k),
                             equal_var=False).confidence_interval(0.95).low
    assert low_at(n) > 0 > low_at(n - 1)
    assert seeds_to_decide([0.80, 0.90, 0.85], [0.84, 0.86, 0.85], "greater") is None  # d = 0
    assert seeds_to_decide([90.0, 90.0], [89.0, 89.0], "greater") is None   # no spread
    # the ledger says it beside the verdict, and keeps the number in claims.json
    seeds(tmp_path, LORA, [x / 100 for x in a])
    seeds(tmp_path, FT, [x / 100 for x in b])
    comp = judge(tmp_path, claim("greater")).comparisons[0]
    assert comp.verdict == INCONCLUSIVE and comp.seeds_to_decide == n
    assert comp.reason.endswith(f"{n} seeds a side would decide it")
