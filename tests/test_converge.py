"""The converging stand-ins' run lists and lr choice (experiments/converge.py)."""
import json

from experiments.converge import (FAMILIES, MAX_EXTENSIONS, base_grid, chosen_lr, main, run_lines,
                                  sweep_grid, sweep_lines, sweep_status)
from experiments.grid import experiments_under


def test_every_listed_experiment_exists_and_seeds_come_whole():
    for family in FAMILIES.values():
        lines = run_lines(family, list(family.base_lr), [1, 2])
        experiments = {line.split()[1].split("=", 1)[1] for line in lines}
        assert experiments <= set(experiments_under(family.folder))
        # seed 1 of every cell before any seed 2
        seeds = [line.split()[0].rsplit("seed", 1)[1] for line in lines]
        assert seeds == sorted(seeds)
        for line in sweep_lines(family, list(family.base_lr)):
            assert line.split()[1].split("=", 1)[1] in experiments
            assert f"run.table={family.analysis}" in line and "train.epochs=" not in line
            if family.sweep_epochs:  # the cell's own schedule, cut after its first epochs
                assert f"train.run_epochs={family.sweep_epochs} train.patience=null" in line
            else:                    # the cell's whole recipe: its cap and plateau rule
                assert "run_epochs" not in line and "patience" not in line


def test_grid_is_the_base_lr_times_a_quarter_a_half_and_one():
    assert base_grid(FAMILIES["glue_minilm"], "ft") == [2.5e-5, 5e-5, 1e-4]
    assert base_grid(FAMILIES["gpt3_smollm2"], "pre_embed") == [6.25e-4, 1.25e-3, 2.5e-3]


def write_sweep(tmp_path, family, method, means: dict, chance=None):
    path = tmp_path / "analysis" / f"{family.analysis}.json"
    path.parent.mkdir(exist_ok=True)
    entry = {"mean_by_lr": {f"{lr:g}": v for lr, v in means.items()},
             **({} if chance is None else {"chance": chance})}
    path.write_text(json.dumps({"lower_is_better": False, "tie_tolerance": 0.0,
                                "methods": {method: entry}}))


def test_chosen_lr_waits_for_the_whole_grid(tmp_path):
    family = FAMILIES["glue_minilm"]
    assert chosen_lr(family, "lora", tmp_path) == (2e-3, "the short-budget lr: its lr sweep "
                                                         "has not run yet")
    write_sweep(tmp_path, family, "lora", {5e-4: 0.15, 1e-3: 0.2})
    assert chosen_lr(family, "lora", tmp_path)[0] == 2e-3  # two of three lrs: not yet
    write_sweep(tmp_path, family, "lora", {5e-4: 0.15, 1e-3: 0.2, 2e-3: 0.15})
    lr, source = chosen_lr(family, "lora", tmp_path)
    assert lr == 1e-3 and f"{family.analysis}.json" in source and "edge" not in source


def test_the_previous_sweeps_pick_holds_until_the_new_sweep_has_finished(tmp_path):
    family = FAMILIES["glue_minilm"]
    old = tmp_path / "analysis" / f"{family.previous}.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"methods": {"ft": {"best_lr": 1e-4}}}))
    write_sweep(tmp_path, family, "ft", {2.5e-5: 0.337, 5e-5: 0.325})  # 1e-4 still running
    lr, source = chosen_lr(family, "ft", tmp_path)
    assert lr == 1e-4 and f"{family.previous}.json" in source and "until" in source
    # finished, and best at the low end: the extension below it must run first
    write_sweep(tmp_path, family, "ft", {2.5e-5: 0.337, 5e-5: 0.325, 1e-4: 0.24})
    assert sweep_grid(family, "ft", tmp_path)[0] == 1.25e-5 and chosen_lr(family, "ft", tmp_path)[0] == 1e-4
    write_sweep(tmp_path, family, "ft", {1.25e-5: 0.30, 2.5e-5: 0.337, 5e-5: 0.325, 1e-4: 0.24})
    assert chosen_lr(family, "ft", tmp_path) == (2.5e-5, f"best of the lr sweep (results/analysis/"
                                                          f"{family.analysis}.json)")


def test_a_best_at_an_end_of_the_grid_extends_it_past_that_end(tmp_path):
    family = FAMILIES["glue_minilm"]  # BitFit: base 5e-3, grid 1.25e-3 .. 5e-3
    write_sweep(tmp_path, family, "bitfit", {1.25e-3: 0.026, 2.5e-3: 0.0, 5e-3: 0.0}, chance=0.0)
    assert sweep_grid(family, "bitfit", tmp_path) == [6.25e-4, 1.25e-3, 2.5e-3, 5e-3]
    assert chosen_lr(family, "bitfit", tmp_path)[0] == 5e-3  # the extension has not run
    assert len(sweep_lines(family, ["bitfit"], tmp_path)) == 4
    # the new lr is best: one more past it, then the extensions stop (MAX_EXTENSIONS)
    write_sweep(tmp_path, family, "bitfit",
                {3.13e-4: 0.25, 6.25e-4: 0.2, 1.25e-3: 0.026, 2.5e-3: 0.0, 5e-3: 0.0}, chance=0.0)
    assert MAX_EXTENSIONS == 2
    assert sweep_grid(family, "bitfit", tmp_path)[0] == 3.13e-4
    lr, source = chosen_lr(family, "bitfit", tmp_path)
    assert lr == 3.13e-4 and "low edge" in source
    # no lr beat the constant predictor: lower lrs first, then the short-budget lr, said so
    write_sweep(tmp_path, family, "bitfit",
                {3.13e-4: 0.0, 6.25e-4: 0.0, 1.25e-3: 0.0, 2.5e-3: 0.0, 5e-3: 0.0}, chance=0.0)
    lr, source = chosen_lr(family, "bitfit", tmp_path)
    assert lr == 5e-3 and "beat the constant predictor" in source
    # a best at the high end adds a higher lr; an inner best adds nothing
    write_sweep(tmp_path, family, "lora", {5e-4: 0.1, 1e-3: 0.15, 2e-3: 0.2})
    assert sweep_grid(family, "lora", tmp_path) == [5e-4, 1e-3, 2e-3, 4e-3]
    write_sweep(tmp_path, family, "lora", {5e-4: 0.1, 1e-3: 0.25, 2e-3: 0.2})
    assert sweep_grid(family, "lora", tmp_path) == [5e-4, 1e-3, 2e-3]


def test_unknown_method_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["runs", "glue_minilm", "--methods", "prefix"])
    assert "has no method ['prefix']" in capsys.readouterr().err


def test_status_shows_each_lr_run_so_far_and_the_lr_the_configs_take(tmp_path):
    family = FAMILIES["glue_minilm"]
    write_sweep(tmp_path, family, "adapter_h", {5e-4: 0.291, 1e-3: 0.307})
    row = sweep_status(family, ["adapter_h"], tmp_path).splitlines()[-1]
    assert row.startswith("| adapter_h | 0.0005: 0.291, 0.001: 0.307, 0.002: - | 0.002 |")
    assert "has not run yet" in row


def test_e2e_sweeps_by_the_valid_loss_lower_is_better_and_skips_the_long_decode(tmp_path):
    """gpt2_smollm2 sweeps each method over one epoch of its cell's schedule, decoding a single
    test source (the sweep reads the valid loss, not BLEU), and picks the lr of the lowest loss."""
    from experiments.analysis import lr_sweep
    family = FAMILIES["gpt2_smollm2"]
    lines = sweep_lines(family, ["lora"], tmp_path)
    assert all("train.run_epochs=1 " in ln and " data.max_eval_sources=1 " in ln for ln in lines)
    grid = sweep_grid(family, "lora", tmp_path)
    losses = dict(zip(grid, (2.10, 1.95, 2.05)))        # the middle lr lowest
    for lr, loss in losses.items():
        name = f"{family.analysis}/lora/lr_{lr:g}"
        run = tmp_path / "runs" / name / "seed1"
        run.mkdir(parents=True)
        (run / "record.json").write_text(json.dumps({
            "experiment": name, "table": family.analysis, "row": "lora", "model": "smollm2_135m",
            "model_display": "SmolLM2-135M-Instruct", "profile": "standin_smollm2_e2e_plateau",
            "seed": 1, "status": "complete", "task": "e2e", "method": "lora",
            "config": {"train": {"lr": lr}}, "metrics": {"BLEU": 0.1 + loss},   # BLEU: 1 source
            "train": {"steps": 400, "history": [{"epoch": 1, "step": 400, "valid_loss": loss}]}}))
    lr_sweep.build(tmp_path, tmp_path / "analysis", tmp_path / "figures", metric=family.metric,
                   folder=family.analysis, name=family.analysis)
    doc = json.loads((tmp_path / "analysis" / f"{family.analysis}.json").read_text())
    assert doc["lower_is_better"] is True
    lr, source = chosen_lr(family, "lora", tmp_path)
    assert lr == grid[1] and "best of the lr sweep" in source
