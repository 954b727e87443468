"""The learning-rate sweep's best-lr rule and its ratio to FT's, on constructed records."""
import json
import math

import pytest

from experiments.analysis import lr_sweep
from experiments.analysis.lr_sweep import SweepError, best_lr, summarise

from .beyond_fixtures import write_run

BOUND_NOTE = ": the optimum may lie beyond it, so the ratio is only a bound"


def test_best_is_the_highest_mean_over_seeds():
    b = best_lr({1e-4: [0.80, 0.82], 1e-3: [0.90, 0.86], 1e-2: [0.85, 0.95]})
    # means .81, .88, .90
    assert b.lr == pytest.approx(1e-2)
    assert b.value == pytest.approx(0.90)
    assert b.at_edge == "high"      # the grid's top: the optimum may lie beyond it


def test_mean_not_best_seed_decides():
    b = best_lr({1e-4: [0.99, 0.61], 1e-3: [0.85, 0.85], 3e-3: [0.70, 0.70]})
    assert b.lr == pytest.approx(1e-3)       # .85 beats 1e-4's mean .80 despite its .99
    assert b.at_edge is None


def test_loss_is_lower_better():
    b = best_lr({1e-4: [2.0], 1e-3: [1.5], 1e-2: [1.7]}, lower_better=True)
    assert b.lr == pytest.approx(1e-3) and b.value == pytest.approx(1.5)


def test_ties_give_the_geometric_centre_of_the_plateau():
    b = best_lr({1e-4: [0.80], 1e-3: [0.90], 1e-2: [0.90], 1e-1: [0.50]})
    assert b.tied == [1e-3, 1e-2]
    assert b.lr == pytest.approx(math.sqrt(1e-3 * 1e-2))
    # within a tolerance, a near-tie is a tie as well
    b = best_lr({1e-4: [0.80], 1e-3: [0.899], 1e-2: [0.90], 1e-1: [0.50]}, tie_tolerance=0.0025)
    assert b.tied == [1e-3, 1e-2]
    b = best_lr({1e-4: [0.80], 1e-3: [0.899], 1e-2: [0.90], 1e-1: [0.50]})
    assert b.tied == [1e-2] and b.lr == pytest.approx(1e-2)
    # a flat sweep (every lr equal, e.g. an untrained model) has its optimum nowhere in particular
    flat = best_lr({1e-4: [0.5], 1e-3: [0.5], 1e-2: [0.5]})
    assert flat.at_edge == "both" and flat.lr == pytest.approx(1e-3)


def test_a_diverged_seed_excludes_its_lr():
    nan = float("nan")
    b = best_lr({1e-4: [0.70, 0.72], 1e-3: [0.80, 0.81], 1e-2: [0.99, nan], 1e-1: [nan, nan]})
    assert b.diverged == [1e-2, 1e-1]
    assert b.lr == pytest.approx(1e-3)        # 1e-2's one good seed cannot win
    assert b.at_edge is None
    assert math.isnan(b.means[1e-2])
    with pytest.raises(SweepError, match="every learning rate diverged"):
        best_lr({1e-3: [nan], 1e-2: [float("inf")]})


def test_an_lr_that_did_not_beat_the_constant_predictor_cannot_be_best():
    # BitFit on CoLA, first 3 epochs of its 30-epoch schedule: MCC 0 is a constant prediction
    b = best_lr({1.25e-3: [0.026], 2.5e-3: [0.0], 5e-3: [0.0]}, chance=0.0)
    assert b.lr == 1.25e-3 and b.below_chance == [2.5e-3, 5e-3] and b.at_edge == "low"
    # three lrs all at chance give no best, where the tie rule alone would pick the middle
    none = best_lr({1.25e-3: [0.0], 2.5e-3: [0.0], 5e-3: [0.0]}, chance=0.0)
    assert none.lr is None and none.below_chance == [1.25e-3, 2.5e-3, 5e-3]
    assert best_lr({1.25e-3: [0.0], 2.5e-3: [0.0], 5e-3: [0.0]}).lr == pytest.approx(2.5e-3)


def test_bad_input_is_named():
    with pytest.raises(SweepError, match="no runs"):
        best_lr({})
    with pytest.raises(SweepError, match="positive"):
        best_lr({0.0: [0.5], 1e-3: [0.6]})


def test_ratio_to_ft_and_spread_across_ranks():
    points = {"ft": {1e-5: [0.80], 1e-4: [0.90], 1e-3: [0.70]},
              "lora_r1": {1e-4: [0.70], 1e-3: [0.88], 1e-2: [0.80]},
              "lora_r64": {1e-4: [0.70], 1e-3: [0.86], 1e-2: [0.86]}}
    s = summarise(points, "dev/accuracy")
    assert s["methods"]["lora_r1"]["ratio_to_ft"] == pytest.approx(10.0)
    assert s["log10_ratio_to_ft"]["lora_r1"] == pytest.approx(1.0)
    # r=64 ties 1e-3 and 1e-2: best sqrt(1e-5) -> ratio 10^1.5
    assert s["log10_ratio_to_ft"]["lora_r64"] == pytest.approx(1.5)
    assert s["lora_log10_spread"] == pytest.approx(0.5)
    assert s["methods"]["lora_r64"]["at_edge"] == "high"
    assert s["at_edge"] == ["lora_r64"]
    assert s["same_grid"] is False and s["grids_differ"] == ["lora_r1", "lora_r64"]
    assert "ft" not in s["log10_ratio_to_ft"]
    # r=64's optimum may lie above 1e-2: its ratio and the spread are bounds; r=1's is not
    assert s["ratio_is_bound"]["lora_r1"] is None
    assert s["ratio_is_bound"]["lora_r64"] == ("lora_r64's best lr is at the high end of the grid "
                                                "(0.001, 0.01 tied)" + BOUND_NOTE)
    assert s["spread_is_bound"] == s["ratio_is_bound"]["lora_r64"]


def test_an_ft_optimum_at_the_grid_end_bounds_every_ratio():
    points = {"ft": {1e-5: [0.90], 1e-4: [0.80]}, "lora_r8": {1e-5: [0.7], 1e-4: [0.9]}}
    s = summarise(points, "dev/accuracy")
    assert s["log10_ratio_to_ft"]["lora_r8"] == pytest.approx(1.0)
    assert s["ratio_is_bound"]["lora_r8"] == ("ft's best lr is at the low end of the grid (1e-05); "
                                              "lora_r8's best lr is at the high end of the grid "
                                              "(0.0001)" + BOUND_NOTE)


def test_build_reads_records_and_writes_json_and_figure(tmp_path):
    results = tmp_path / "results"
    grid = (1e-4, 1e-3, 1e-2)
    acc = {"ft": (0.75, 0.80, float("nan")), "lora_r8": (0.60, 0.82, 0.88)}
    for method, values in acc.items():
        for lr, a in zip(grid, values):
            for seed in (1, 2):
                write_run(results, f"beyond_smollm2/lr_sweep/{method}/lr_{lr:g}", seed, lr=lr,
                          metrics={"dev/accuracy": a, "dev/n": 400})
    # a rerun replaces its seed's first record
    write_run(results, "beyond_smollm2/lr_sweep/ft/lr_0.001", 1, lr=1e-3,
              metrics={"dev/accuracy": 0.86}, rerun=2)
    written = lr_sweep.build(results, tmp_path / "analysis", tmp_path / "figures")
    doc = json.loads((tmp_path / "analysis" / "lr_sweep.json").read_text())
    assert doc["metric"] == "dev/accuracy"
    ft = doc["methods"]["ft"]
    assert ft["mean_by_lr"]["0.001"] == pytest.approx(0.83)      # (0.86 + 0.80) / 2
    assert ft["best_lr"] == pytest.approx(1e-3) and ft["diverged"] == [1e-2]
    assert doc["methods"]["lora_r8"]["best_lr"] == pytest.approx(1e-2)
    assert doc["log10_ratio_to_ft"]["lora_r8"] == pytest.approx(1.0)
    assert doc["same_grid"] is True
    assert len(doc["runs"]) == 12
    assert (tmp_path / "figures" / "lr_sweep.png").stat().st_size > 1000
    assert len(written) == 2
    # judged by a metric the records lack: no JSON (the earlier one is removed), and the
    # figure says why
    again = lr_sweep.build(results, tmp_path / "analysis", tmp_path / "figures", metric="dev_loss")
    assert [p.name for p in again] == ["lr_sweep.png"]
    assert not (tmp_path / "analysis" / "lr_sweep.json").exists()


def test_build_without_records_says_so(tmp_path):
    written = lr_sweep.build(tmp_path, tmp_path / "analysis", tmp_path / "figures")
    assert [p.name for p in written] == ["lr_sweep.png"]
    assert not (tmp_path / "analysis" / "lr_sweep.json").exists()
