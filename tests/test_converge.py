"""The converging stand-ins' run lists and lr choice (experiments/converge.py)."""
import json

from experiments.converge import FAMILIES, chosen_lr, main, run_lines, sweep_grid, sweep_lines
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
            assert "train.patience=null" in line and f"run.table={family.analysis}" in line


def test_grid_is_the_base_lr_times_a_quarter_a_half_and_one():
    assert sweep_grid(FAMILIES["glue_minilm"], "ft") == [2.5e-5, 5e-5, 1e-4]
    assert sweep_grid(FAMILIES["gpt3_smollm2"], "pre_embed") == [6.25e-4, 1.25e-3, 2.5e-3]


def test_chosen_lr_waits_for_the_whole_grid(tmp_path):
    family = FAMILIES["glue_minilm"]
    assert chosen_lr(family, "lora", tmp_path) == (2e-3, "the short-budget lr: its lr sweep "
                                                         "has not run yet")
    path = tmp_path / "analysis" / "lr_sweep_minilm.json"
    path.parent.mkdir()
    entry = {"grid": [5e-4, 1e-3], "best_lr": 1e-3, "at_edge": "high"}
    path.write_text(json.dumps({"methods": {"lora": entry}}))
    assert chosen_lr(family, "lora", tmp_path)[0] == 2e-3  # two of three lrs: not yet
    entry.update(grid=[5e-4, 1e-3, 2e-3], at_edge=None)
    path.write_text(json.dumps({"methods": {"lora": entry}}))
    lr, source = chosen_lr(family, "lora", tmp_path)
    assert lr == 1e-3 and "lr_sweep_minilm.json" in source


def test_unknown_method_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["runs", "glue_minilm", "--methods", "prefix"])
    assert "has no method ['prefix']" in capsys.readouterr().err
