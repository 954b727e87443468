"""The evidence plan (experiments/evidence.py): every stage names claims the ledger has and
runs the grid would make; its status counts complete records and estimates what is left from
the same configuration's other seeds."""
from __future__ import annotations

import json

import pytest

from experiments import evidence
from experiments.claims.spec import load_ledger
from experiments.evidence import STAGES, Stage, main, status


def _record(root, run_dir, status_="complete", wall_s=3600.0):
    path = root / "runs" / run_dir / "record.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"status": status_, "train": {"wall_s": wall_s}}))


def test_every_stage_feeds_claims_of_the_ledger_and_plans_runs_of_existing_experiments():
    ids = {c.id for c in load_ledger().claims}
    for stage in STAGES:
        assert set(stage.claims) | set(stage.prepares) <= ids, stage.name
        assert not set(stage.claims) & set(stage.prepares), stage.name
        lines = stage.lines()
        assert lines, stage.name
        for line in lines:
            run_dir, *overrides = line.split()
            assert any(o.startswith("experiment=") for o in overrides)
            assert run_dir.endswith(f"seed{next(o for o in overrides if o.startswith('seed=')).split('=')[1]}")
    # names are unique: `runs NAME` picks one
    assert len({s.name for s in STAGES}) == len(STAGES)


def test_s7_minilm_plans_the_runs_the_section7_analyses_read():
    stage = evidence.stage_named("s7_minilm")
    assert [line.split()[0] for line in stage.lines()] == [
        "s7_minilm/mrpc/qv_r4/seed1", "s7_minilm/mrpc/qv_r8/seed1",
        "s7_minilm/mrpc/qv_r64/seed1", "s7_minilm/mrpc/qv_r64/seed2"]


def test_status_counts_complete_records_and_estimates_from_the_same_configuration(tmp_path):
    lines = [f"fam/{cell}/seed{s} experiment=fam/{cell} seed={s} logger=none"
             for cell in ("a", "b") for s in (1, 2, 3)]
    sweep = "sweep/a/seed1 experiment=fam/a seed=1 logger=none train.epochs=3"
    stage = Stage("toy", (), "true", lambda: [sweep, *lines])
    _record(tmp_path, "sweep/a/seed1", wall_s=360.0)          # a short sweep run of cell a
    _record(tmp_path, "fam/a/seed1", wall_s=3600.0)
    _record(tmp_path, "fam/a/seed2", wall_s=7200.0)
    _record(tmp_path, "fam/b/seed1", status_="running")       # not complete: still to run
    st = status(stage, tmp_path)
    assert (st.planned, st.complete, st.done) == (7, 3, False)
    assert st.hours == pytest.approx(0.1 + 1.0 + 2.0)
    # a/seed3 at the mean of a's two runs (1.5 h), not pulled down by the sweep run; b untimed
    assert st.estimate == pytest.approx(1.5) and st.untimed == 3


def test_pending_lists_only_unfinished_stages_in_order(tmp_path, monkeypatch, capsys):
    done = Stage("done", (), "echo done", lambda: ["x/seed1 experiment=x seed=1"])
    todo = Stage("todo", (), "echo todo", lambda: ["y/seed1 experiment=y seed=1"])
    _record(tmp_path, "x/seed1")
    monkeypatch.setattr(evidence, "STAGES", (done, todo))
    assert main(["pending", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "echo todo\n"
    assert main(["status", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| 1 | done | 1 of 1 |" in out and "| 2 | todo | 0 of 1 |" in out


def test_an_unknown_stage_names_the_known_ones():
    with pytest.raises(SystemExit, match="glue_minilm_ft_lora"):
        main(["runs", "nope"])


def test_a_stage_that_sweeps_is_not_one_list_and_says_which_command_runs_it(capsys):
    # its cells' configs change once the sweep has run: a list made before would run them
    # at the old lrs
    with pytest.raises(SystemExit):
        main(["runs", "glue_minilm_peft"])
    assert "make glue-minilm GLUE_MINILM_METHODS='bitfit adapter_h'" in capsys.readouterr().err
    assert main(["runs", "batch_size"]) == 0


def test_the_forgetting_stage_plans_five_seeds_of_each_tuned_cell_and_three_of_the_base():
    from experiments.evidence import STAGES

    stage = next(s for s in STAGES if s.name == "forgetting")
    runs = [line.split()[0] for line in stage.lines()]
    assert len(runs) == len(set(runs))
    by_cell: dict[str, list[str]] = {}
    for run in runs:
        cell, seed = run.rsplit("/", 1)
        by_cell.setdefault(cell.rsplit("/", 1)[1], []).append(seed)
    assert by_cell.pop("base") == ["seed1", "seed2", "seed3"]
    assert set(by_cell) == {"ft", "lora_r16", "lora_attn_r16"}
    assert all(seeds == [f"seed{s}" for s in range(1, 6)] for seeds in by_cell.values())


def test_the_mlp_vs_attn_stage_plans_five_seeds_of_each_matched_cell():
    from experiments.evidence import STAGES

    stage = next(s for s in STAGES if s.name == "mlp_vs_attn")
    runs = [line.split()[0] for line in stage.lines()]
    cells = {run.rsplit("/", 2)[1] for run in runs}
    assert cells == {"all_r20", "attn_r53", "mlp_r32"}
    assert sorted(runs) == sorted(f"beyond_smollm2/mlp_vs_attn/{c}/seed{s}"
                                  for c in cells for s in range(1, 6))


def test_the_rank_curves_stage_holds_the_runs_that_decide_at_this_budget():
    """r = 1 and r = 256 on one curve leave claim 22 undecidable whatever the ranks between
    them do, so the plan stops at FT, r = 1 and r = 256 (seed 1); the full grid stays a target."""
    from experiments.evidence import STAGES

    stage = next(s for s in STAGES if s.name == "rank_curves")
    assert [line.split()[0] for line in stage.lines()] == [
        f"beyond_smollm2/rank_curves/{c}/seed1" for c in ("ft", "lora_r1", "lora_r256")]
    assert stage.command == "make evidence-runs-rank_curves"


def test_s7_smollm2_plans_the_cells_claims_07_and_08_compare_and_waits_for_loras_sweep(
        tmp_path, capsys):
    """Its cells are the Table 5 and 6 cells the two claims name (on the plateau budget), and
    `runs` refuses until LoRA r_q=r_v=8's sweep has picked the lr they train at."""
    from experiments.converge import FAMILIES, sweep_grid
    ledger = {c.id: c for c in load_ledger().claims}
    named = {side.experiment.split("/", 1)[1]
             for claim in ("multiple_weight_types", "small_rank_suffices")
             for c in ledger[claim].comparisons for side in (c.a, c.b)}
    stage = evidence.stage_named("s7_smollm2")
    planned = {line.split()[1].split("=", 1)[1] for line in stage.lines()}
    assert planned == {f"s7_smollm2/{cell}" for cell in named}
    assert len(stage.lines()) == 3 * len(planned)
    with pytest.raises(SystemExit):
        main(["runs", "s7_smollm2", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert "(gpt3_smollm2: lora_qv_r8)" in err and "`CONVERGE_SEEDS= scripts/converge.sh gpt3_smollm2 lora_qv_r8`" in err
    family = FAMILIES["gpt3_smollm2"]
    grid = sweep_grid(family, "lora_qv_r8", tmp_path)
    path = tmp_path / "analysis" / f"{family.analysis}.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"lower_is_better": False, "tie_tolerance": 0.0, "methods": {
        "lora_qv_r8": {"mean_by_lr": {f"{lr:g}": 0.9 - abs(i - 1) * 0.05 for i, lr in enumerate(grid)}}}}))
    assert main(["runs", "s7_smollm2", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == stage.lines()


def _finished_sweeps(results, methods):
    """An lr sweep analysis in which each method's whole grid ran, the best lr inside it."""
    from experiments.converge import FAMILIES, sweep_grid
    family = FAMILIES["gpt3_smollm2"]
    doc = {"lower_is_better": False, "tie_tolerance": 0.0, "methods": {
        m: {"mean_by_lr": {f"{lr:g}": 0.9 - abs(i - 1) * 0.05
                           for i, lr in enumerate(sweep_grid(family, m, results))}} for m in methods}}
    path = results / "analysis" / f"{family.analysis}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(doc))


def test_lowdata_smollm2_plans_claim_13s_cells_and_waits_for_all_four_sweeps(tmp_path, capsys):
    """Its cells are the Table 16 cells claim 13 compares (n = 100, on the plateau budget), 3
    seeds; `runs` refuses, naming the unfinished sweeps, until FT's, LoRA's and both prefix
    methods' have run, as each cell trains at its method's pick."""
    ledger = {c.id: c for c in load_ledger().claims}
    named = {side.experiment.split("/", 1)[1]
             for c in ledger["sample_efficiency"].comparisons for side in (c.a, c.b)}
    stage = evidence.stage_named("lowdata_smollm2")
    planned = {line.split()[1].split("=", 1)[1] for line in stage.lines()}
    assert planned == {f"lowdata_smollm2/{cell}" for cell in named} and len(named) == 8
    assert len(stage.lines()) == 24 and stage.prepares == ("sample_efficiency",)
    _finished_sweeps(tmp_path, ["ft", "lora_qv_r8", "pre_layer"])
    with pytest.raises(SystemExit):
        main(["runs", "lowdata_smollm2", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert "CONVERGE_SEEDS= scripts/converge.sh gpt3_smollm2 pre_embed`" in err
    _finished_sweeps(tmp_path, ["ft", "lora_qv_r8", "pre_layer", "pre_embed"])
    assert main(["runs", "lowdata_smollm2", "--results", str(tmp_path)]) == 0
    assert capsys.readouterr().out.splitlines() == stage.lines()


def test_scaling_smollm2_runs_each_cell_of_claims_06_and_16_once_and_names_its_sweeps(tmp_path, capsys):
    """Its cells are the Table 15 cells the two claims name; a cell whose configuration
    gpt3_smollm2 or s7_smollm2 already has is run as that owner, never twice; `sweeps` prints the
    lr sweeps it waits for, a line per family (the Makefile runs them first)."""
    from experiments.same_as import owner_of
    ledger = {c.id: c for c in load_ledger().claims}
    named = {e for claim in ("prefix_degrades_lora_scales", "lora_plus_prefix")
             for c in ledger[claim].comparisons for e in c.plateau}
    stage = evidence.stage_named("scaling_smollm2")
    planned = {line.split()[1].split("=", 1)[1] for line in stage.lines()}
    assert planned == {owner_of(e) for e in named}
    assert owner_of("scaling_smollm2/sst2_gen/lora_qv_r8") == "gpt3_smollm2/sst2_gen/lora_qv_r8"
    assert owner_of("scaling_smollm2/sst2_gen/lora_qv_r64") == "s7_smollm2/sst2_gen/qv_r64"
    assert len(stage.lines()) == 3 * len(planned) == 24
    assert main(["sweeps", "scaling_smollm2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "gpt3_smollm2 lora_qv_r8 pre_embed pre_layer",
        "scaling_smollm2 lora_pe_qv_r8 lora_pl_qv_r8"]   # LoRA with a prefix: its own sweep
    _finished_sweeps(tmp_path, ["lora_qv_r8"])
    with pytest.raises(SystemExit):
        main(["runs", "scaling_smollm2", "--results", str(tmp_path)])
    assert ("`CONVERGE_SEEDS= scripts/converge.sh gpt3_smollm2 pre_embed pre_layer && "
            "CONVERGE_SEEDS= scripts/converge.sh scaling_smollm2 lora_pe_qv_r8 lora_pl_qv_r8`"
            ) in capsys.readouterr().err


def test_a_claim_names_the_stages_it_reads_or_waits_for_with_their_progress(tmp_path):
    [plan] = evidence.plan_for("multiple_weight_types", tmp_path)
    assert plan == {"stage": "s7_smollm2", "command": "make evidence-runs-s7_smollm2",
                    "complete": 0, "planned": 48, "read_now": False}
    _record(tmp_path, "s7_smollm2/sst2_gen/qv_r4/seed1")
    assert evidence.plan_for("multiple_weight_types", tmp_path)[0]["complete"] == 1
    assert [(p["stage"], p["read_now"]) for p in evidence.plan_for("glue_lora_vs_ft", tmp_path)] \
        == [("glue_minilm_ft_lora", True)]
    assert evidence.plan_for("no_inference_latency", tmp_path) == []   # a benchmark, no stage
    # CLAIMS.md says it under the claim
    from experiments.claims.report import _details
    claim = {"id": "x", "statement": "s", "where": "w", "stand_in": None, "verdict": "inconclusive",
             "reason": "under-trained", "comparisons": [], "paper_scale": [], "notes": [],
             "evidence_plan": [plan]}
    assert ("Evidence plan (`make evidence-status`): stage s7_smollm2, 0 of 48 runs complete, "
            "read by each comparison once both its sides have a run, in place of the shorter runs "
            "(`make evidence-runs-s7_smollm2`).") in _details(claim)
