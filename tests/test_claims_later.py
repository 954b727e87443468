"""The later works' claims in the ledger (issue #27): at least seven, each with its source;
with no records they read "not run here" with the command that makes them; CLAIMS.md shows the
paper's claims and the later ones in two sections; a later claim is judged from its artifact."""
import json
from pathlib import Path

import pytest

from experiments.claims.__main__ import main
from experiments.claims.evaluate import evaluate_claim
from experiments.claims.spec import LedgerError, load_ledger, parse_claim
from experiments.claims.stats import NOT_RUN, REFUTED, REPRODUCED


@pytest.fixture(scope="module")
def ledger():
    return load_ledger()


def test_seven_later_claims_from_the_two_works(ledger):
    later = [c for c in ledger.claims if c.source]
    works = {c.source["work"] for c in later}
    assert works == {"LoRA Without Regret", "LoRA Learns Less and Forgets Less"}
    assert sum(c.source["work"] == "LoRA Without Regret" for c in later) >= 4
    assert sum(c.source["work"] == "LoRA Learns Less and Forgets Less" for c in later) >= 3
    for c in later:
        assert c.source["url"].startswith("https://") and c.source["finding"]
        assert c.stand_in and ("SmolLM2" in c.stand_in or "MiniLM" in c.stand_in)
    assert len([c for c in ledger.claims if not c.source]) == 16     # the paper's, untouched


def test_without_records_later_claims_name_their_command(tmp_path, ledger):
    later = [c for c in ledger.claims if c.source]
    for c in later:
        result = evaluate_claim(c, [], tmp_path, ledger.rules)
        assert result.verdict == NOT_RUN
        assert "make " in result.reason or "python -m experiments.run" in result.reason
        assert str(tmp_path) not in result.reason          # no machine paths in the ledger


def test_claims_md_has_two_sections(tmp_path):
    assert main(["--results", str(tmp_path), "--out", str(tmp_path)]) == 0
    md = (tmp_path / "CLAIMS.md").read_text()
    paper, later = md.index("## The paper's claims"), md.index("## Later work")
    assert paper < md.index("### LoRA performs on par") < later < md.index("### LoRA's best learning rate")
    assert "Source: *LoRA Learns Less and Forgets Less*" in md
    doc = json.loads((tmp_path / "claims.json").read_text())
    assert doc["summary_by_section"]["later work"][NOT_RUN] == 7
    assert {c["section"] for c in doc["claims"]} == {"paper", "later work"}


def test_a_source_needs_work_and_finding():
    base = {"id": "x", "statement": "s", "where": "w", "comparisons": [
        {"label": "l", "relation": "greater", "a": {"file": "a.json", "key": "k", "command": "c"},
         "b": {"value": 1}}]}
    with pytest.raises(LedgerError, match="`work`"):
        parse_claim({**base, "source": {"work": "W"}}, Path("x.yaml"))
    with pytest.raises(LedgerError, match="unknown key"):
        parse_claim({**base, "source": {"work": "W", "finding": "f", "doi": "1"}}, Path("x.yaml"))


@pytest.mark.parametrize("r8, spread, verdict", [
    (1.2, 0.3, REPRODUCED),    # 16x FT's lr, ranks within 0.3 decades
    (2.0, 0.3, REFUTED),       # 100x: more than half a decade off 10x
    (1.0, 0.8, REFUTED),       # 10x, but the best lr moves 0.8 decades with r
])
def test_the_lr_ratio_claim_reads_the_sweep(tmp_path, ledger, r8, spread, verdict):
    claim = next(c for c in ledger.claims if c.id == "lwr_lr_ten_times_ft")
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "lr_sweep.json").write_text(json.dumps(
        {"log10_ratio_to_ft": {"lora_r8": r8, "lora_r1": 1.0}, "lora_log10_spread": spread,
         "runs": []}))
    result = evaluate_claim(claim, [], tmp_path, ledger.rules)
    assert result.verdict == verdict
    assert result.comparisons[0].interval.difference == pytest.approx(r8 - 1.0)


def test_a_ratio_that_is_only_a_bound_decides_nothing(tmp_path, ledger):
    """FT's best lr at the low end of the grid: its optimum may lie lower, so LoRA's ratio
    to it is a lower bound; the comparison says why it is inconclusive, and what the number
    alone would have given."""
    claim = next(c for c in ledger.claims if c.id == "lwr_lr_ten_times_ft")
    (tmp_path / "analysis").mkdir()
    edge = "ft's best lr is at the low end of the grid (1e-05)"
    (tmp_path / "analysis" / "lr_sweep.json").write_text(json.dumps(
        {"log10_ratio_to_ft": {"lora_r8": 1.2, "lora_r1": 1.0}, "lora_log10_spread": 0.3,
         "ratio_is_bound": {"lora_r8": edge, "lora_r1": edge}, "spread_is_bound": None,
         "runs": []}))
    result = evaluate_claim(claim, [], tmp_path, ledger.rules)
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("the value cannot decide it: ") and edge in result.reason
    first = result.comparisons[0]
    assert first.verdict == "inconclusive" and first.statistic_says == REPRODUCED
    assert result.comparisons[2].verdict == REPRODUCED   # the spread is an estimate


def test_smoke_runs_behind_an_artifact_decide_nothing(tmp_path, ledger):
    from .beyond_fixtures import write_run
    from experiments.tables.collect import scan

    # claim 20 reads an artifact whose runs need not converge (a sweep point is a point)
    claim = next(c for c in ledger.claims if c.id == "lwr_lr_ten_times_ft")
    (tmp_path / "analysis").mkdir()
    runs = [{"experiment": "beyond_smollm2/lr_sweep/ft_lr1e-4", "seed": 1},
            {"experiment": "beyond_smollm2/lr_sweep/lora_r8_lr1e-3", "seed": 1}]
    (tmp_path / "analysis" / "lr_sweep.json").write_text(json.dumps(
        {"log10_ratio_to_ft": {"lora_r8": 1.2, "lora_r1": 1.0}, "lora_log10_spread": 0.3,
         "runs": runs}))
    for run in runs:
        write_run(tmp_path, run["experiment"], 1)
    records, _ = scan(tmp_path)
    assert evaluate_claim(claim, records, tmp_path, ledger.rules).verdict == REPRODUCED
    for run in runs:
        write_run(tmp_path, run["experiment"], 1, rerun=2, profile="smoke")
    records, _ = scan(tmp_path)
    result = evaluate_claim(claim, records, tmp_path, ledger.rules)
    assert result.verdict == "inconclusive" and "smoke-profile run" in result.reason


def test_the_ft_rank_claim_needs_a_converged_ft_run(tmp_path, ledger):
    """Claim 32: FT's ΔW rank grows with training, so a run that never plateaued decides
    nothing, however high the measured ratio."""
    from .beyond_fixtures import write_run
    from experiments.tables.collect import scan

    claim = next(c for c in ledger.claims if c.id == "llfl_ft_delta_high_rank")
    (tmp_path / "analysis").mkdir()
    tasks = ("sst2", "mrpc", "cola", "rte", "stsb")
    doc = {"tasks": {t: {"min_ratio_to_lora_r": 14.0,
                         "runs": [{"experiment": f"glue_minilm/ft_{t}", "seed": 1}]}
                     for t in tasks}}
    (tmp_path / "analysis" / "spectrum_minilm.json").write_text(json.dumps(doc))
    for t in tasks:   # one evaluation: too few to show a plateau
        write_run(tmp_path, f"glue_minilm/ft_{t}", 1, method="ft")
    records, _ = scan(tmp_path)
    result = evaluate_claim(claim, records, tmp_path, ledger.rules)
    assert result.verdict == "inconclusive" and "under-trained" in result.reason


def test_an_analysis_whose_runs_left_results_counts_them(tmp_path, ledger):
    """Claim 32 on a spectrum built from runs since moved out (say, retrained at a new lr): the
    comparison cannot check them, so it is inconclusive and counts them out of the runs listed."""
    claim = next(c for c in ledger.claims if c.id == "llfl_ft_delta_high_rank")
    (tmp_path / "analysis").mkdir()
    doc = {"tasks": {t: {"min_ratio_to_lora_r": 14.0,
                         "runs": [{"experiment": f"glue_minilm/ft_{t}", "seed": s}
                                  for s in (1, 2, 3)]}
                     for t in ("sst2", "mrpc", "cola", "rte", "stsb")}}
    (tmp_path / "analysis" / "spectrum_minilm.json").write_text(json.dumps(doc))
    result = evaluate_claim(claim, [], tmp_path, ledger.rules)
    assert result.verdict == "inconclusive"
    assert "3 of 3 runs not converged" in result.comparisons[0].reason
    assert "its record is missing" in result.comparisons[0].reason


def test_a_missing_claim_names_each_step_of_its_command_once(tmp_path, ledger):
    """Claim 31's comparisons need `make beyond-runs-forgetting && make forgetting` and
    `make forgetting`: the reason says each step once, in the order they run."""
    claim = next(c for c in ledger.claims if c.id == "llfl_lora_forgets_less")
    result = evaluate_claim(claim, [], tmp_path, ledger.rules)
    assert result.verdict == "not run here"
    assert result.reason.endswith("run: make beyond-runs-forgetting && make forgetting")


def test_the_ft_rank_claim_reads_the_converged_minilm_runs(tmp_path, ledger):
    """Claim 32 on spectrum_minilm.json: each task's FT ratio is judged against 10x once its FT
    run plateaued; one task below 10x refutes it."""
    from .beyond_fixtures import write_run
    from experiments.tables.collect import scan

    claim = next(c for c in ledger.claims if c.id == "llfl_ft_delta_high_rank")
    tasks = ("sst2", "mrpc", "cola", "rte", "stsb")
    (tmp_path / "analysis").mkdir()

    def judge(ratios):
        doc = {"tasks": {t: {"min_ratio_to_lora_r": x,
                             "runs": [{"experiment": f"glue_minilm/ft_{t}", "seed": 1}]}
                         for t, x in zip(tasks, ratios)}}
        (tmp_path / "analysis" / "spectrum_minilm.json").write_text(json.dumps(doc))
        return evaluate_claim(claim, scan(tmp_path)[0], tmp_path, ledger.rules).verdict

    for t in tasks:   # dev accuracy rose, then stopped improving for 2 evaluations: converged
        path = write_run(tmp_path, f"glue_minilm/ft_{t}", 1, method="ft")
        data = json.loads(path.read_text())
        data["train"]["history"] = [{"epoch": e, "dev/accuracy": a}
                                    for e, a in enumerate((0.6, 0.8, 0.79, 0.78), 1)]
        path.write_text(json.dumps(data))
    assert judge([20, 30, 12, 40, 11]) == REPRODUCED
    assert judge([20, 30, 6, 40, 11]) == "refuted"


def test_a_probe_the_base_model_cannot_do_decides_nothing(tmp_path, ledger):
    """Claim 31: with the base model at chance on SST-2, LoRA's larger 'drop' there refutes
    nothing; the comparison keeps what the numbers alone said. With a skilled probe it decides."""
    claim = next(c for c in ledger.claims if c.id == "llfl_lora_forgets_less")
    (tmp_path / "analysis").mkdir()

    def judge(caveat):
        doc = {"tasks": {"sst2_gen": {"caveat": caveat}}, "runs": [],
               "by_method": {"lora_r16": {"general_nll_increase": [0.01, 0.02, 0.015],
                                          "sst2_gen_drop": [0.5, 0.5, 1.0]},
                             "ft": {"general_nll_increase": [0.30, 0.32, 0.31],
                                    "sst2_gen_drop": [-1.5, -1.5, -1.0]}}}
        (tmp_path / "analysis" / "forgetting.json").write_text(json.dumps(doc))
        (tmp_path / "analysis" / "forgetting_minilm.json").write_text(json.dumps(
            {"runs": [], "by_method": {"lora": {"stsb_spearman_drop": [1.0, 2.0, 1.5]},
                                       "ft": {"stsb_spearman_drop": [40.0, 45.0, 42.0]}}}))
        return evaluate_claim(claim, [], tmp_path, ledger.rules)

    assert judge(None).verdict == REFUTED                  # LoRA dropped 2 points more
    at_chance = judge("the base model scores 46.5 on these 200 items: no skill to forget")
    sst2 = at_chance.comparisons[1]
    assert sst2.verdict == "inconclusive" and sst2.statistic_says == REFUTED
    assert "no skill to forget" in sst2.reason
    # the other two comparisons reproduce, so the claim stands on them
    assert [c.verdict for c in at_chance.comparisons] == [REPRODUCED, "inconclusive", REPRODUCED]
    assert at_chance.verdict == "inconclusive"


def test_ranks_on_one_curve_decide_nothing_about_capacity(tmp_path, ledger):
    """Claim 22: r=1 leaving FT's curve refutes nothing when r=256 leaves it at the same point
    on the same curve; with distinct curves the departures decide."""
    claim = next(c for c in ledger.claims if c.id == "lwr_capacity_threshold")
    (tmp_path / "analysis").mkdir()

    def judge(f256, caveat):
        doc = {"ranks": {"lora_r1": {"departure_fraction": 0.5},
                         "lora_r256": {"departure_fraction": f256}}, "caveat": caveat, "runs": []}
        (tmp_path / "analysis" / "rank_curves.json").write_text(json.dumps(doc))
        return evaluate_claim(claim, [], tmp_path, ledger.rules)

    assert judge(1.0, None).verdict == REPRODUCED
    assert judge(0.3, None).verdict == REFUTED                 # r=256 left first
    same = judge(0.3, "LoRA r=1 and r=256 follow one curve")
    assert same.verdict == "inconclusive" and "follow one curve" in same.reason
    assert [c.statistic_says for c in same.comparisons] == [REPRODUCED, REFUTED]


def test_a_missing_key_is_named_relative_to_the_results_folder(tmp_path, ledger):
    """batch_size.json before any method has both batch ends: not run here, and the reason
    (which lands in the committed CLAIMS.md) carries no path of this machine."""
    claim = next(c for c in ledger.claims if c.id == "lwr_large_batch_penalty")
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "batch_size.json").write_text(json.dumps({"methods": {}, "runs": []}))
    result = evaluate_claim(claim, [], tmp_path, ledger.rules)
    assert result.verdict == NOT_RUN
    why = result.comparisons[0].reason
    assert "analysis/batch_size.json: key 'methods.lora_r8.loss.penalty'" in why
    assert str(tmp_path) not in why
