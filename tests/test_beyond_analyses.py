"""Rank learning curves (where LoRA leaves FT's curve), batch-size penalties and the
learning-vs-forgetting figure, on constructed records and curves."""
import json

import numpy as np
import pytest

from experiments.analysis import batch_size, forgetting_figure, rank_curves
from experiments.analysis.rank_curves import departure, smooth

from .beyond_fixtures import write_run


def test_smooth_is_a_trailing_mean():
    assert smooth([1, 2, 3, 4, 5], window=2).tolist() == [1.0, 1.5, 2.5, 3.5, 4.5]


def test_departure_finds_where_the_curve_leaves_ft_for_good():
    t = np.arange(1, 21) * 100.0
    ft = 3.0 - 0.1 * np.arange(20)
    lora = ft.copy()
    lora[3] *= 1.2                      # a blip above FT that comes back: not a departure
    lora[12:] = ft[12:] * 1.1           # from point 12 on, 10% above FT to the end
    d = departure(t, lora, t, ft, tolerance=0.03, window=1)
    assert d["departed"] and d["tokens"] == 1300.0 and d["fraction"] == pytest.approx(0.65)
    assert d["final_gap"] == pytest.approx(0.1)
    same = departure(t, ft * 1.01, t, ft, tolerance=0.03, window=1)
    assert not same["departed"] and same["fraction"] == 1.0     # followed FT: censored


def _curve(losses, tokens_per_step=1000):
    return [{"step": i + 1, "tokens": (i + 1) * tokens_per_step, "loss": float(x)}
            for i, x in enumerate(losses)]


def test_rank_curves_from_records(tmp_path):
    results = tmp_path / "results"
    ft = 3.0 - 0.05 * np.arange(40)
    r1, r64 = ft.copy(), ft.copy()
    r1[10:] = ft[10:] + 0.3            # r=1 leaves FT at a quarter of the run
    r64[30:] = ft[30:] + 0.3           # r=64 much later
    write_run(results, "beyond_smollm2/rank_curves/ft", curve=_curve(ft), method="ft")
    for label, r, loss in (("lora_r1", 1, r1), ("lora_r64", 64, r64)):
        write_run(results, f"beyond_smollm2/rank_curves/{label}", curve=_curve(loss),
                  config={"method": {"targets": {"q": r, "mlp": r}}})
    written = rank_curves.build(results, tmp_path / "analysis", tmp_path / "figures")
    doc = json.loads((tmp_path / "analysis" / "rank_curves.json").read_text())
    # the trailing mean of 5 crosses the 3% line a point or two after the jump
    f1, f64 = (doc["ranks"][k]["departure_fraction"] for k in ("lora_r1", "lora_r64"))
    assert 0.25 < f1 < 0.35 and 0.75 < f64 < 0.85
    assert doc["ranks"]["lora_r64"]["r"] == 64
    assert (tmp_path / "figures" / "rank_curves.png").stat().st_size > 1000
    assert len(written) == 2 and len(doc["runs"]) == 3
    # the ranks differ (r=1's curve is 0.3 above r=64's from a quarter of the run on)
    assert doc["rank_spread"] > 0.03 and doc["caveat"] is None


def test_ranks_on_one_curve_leave_ft_for_no_capacity_reason(tmp_path):
    """Every rank 5% above FT from the middle on, and within 1% of each other: a common gap,
    not a capacity threshold, so the JSON says the departures decide nothing."""
    results = tmp_path / "results"
    ft = 3.0 - 0.02 * np.arange(40)
    write_run(results, "beyond_smollm2/rank_curves/ft", curve=_curve(ft), method="ft")
    for label, r, lift in (("lora_r1", 1, 1.055), ("lora_r256", 256, 1.05)):
        loss = ft.copy()
        loss[20:] *= lift
        write_run(results, f"beyond_smollm2/rank_curves/{label}", curve=_curve(loss),
                  config={"method": {"targets": {"q": r, "mlp": r}}})
    rank_curves.build(results, tmp_path / "analysis", tmp_path / "figures")
    doc = json.loads((tmp_path / "analysis" / "rank_curves.json").read_text())
    assert doc["ranks"]["lora_r1"]["departed"] and doc["ranks"]["lora_r256"]["departed"]
    assert doc["rank_spread"] == pytest.approx(0.055 / 1.05 - 0.05 / 1.05, abs=2e-3)
    assert doc["caveat"].startswith("LoRA r=1 and r=256 follow one curve (at most 0.5% apart")


def test_rank_curves_without_curves_say_so(tmp_path):
    write_run(tmp_path, "beyond_smollm2/rank_curves/ft")          # a record, but no curve
    written = rank_curves.build(tmp_path, tmp_path / "analysis", tmp_path / "figures")
    assert [p.name for p in written] == ["rank_curves.png"]


def test_tail_loss_weights_each_window_by_its_tokens_past_the_cut():
    from experiments.curve import tail_loss

    points = [{"step": 5, "tokens": 100, "loss": 3.0}, {"step": 10, "tokens": 300, "loss": 2.0},
              {"step": 15, "tokens": 400, "loss": 1.0}, {"step": 15, "tokens": 400, "dev_loss": 9.0}]
    # the last half of 400 tokens: 100 of the second window (loss 2) and all 100 of the third (1)
    assert tail_loss(points, 0.5) == pytest.approx(1.5)
    assert tail_loss(points, 1.0) == pytest.approx((100 * 3 + 200 * 2 + 100 * 1) / 400)
    assert tail_loss([{"step": 1, "dev_loss": 2.0}]) is None
    with pytest.raises(ValueError, match="fraction"):
        tail_loss(points, 0.0)


def test_batch_size_penalty_per_seed(tmp_path):
    acc = {("ft", 8): (0.90, 0.88), ("ft", 32): (0.90, 0.89), ("ft", 128): (0.89, 0.87),
           ("lora_r8", 8): (0.91, 0.90), ("lora_r8", 128): (0.85, 0.82)}
    for (method, b), values in acc.items():
        for seed, a in zip((1, 2), values):
            write_run(tmp_path, f"beyond_smollm2/batch_size/{method}_b{b}", seed,
                      metrics={"dev/accuracy": a}, config={"train": {"batch_size": b}})
    batch_size.build(tmp_path, tmp_path / "analysis")
    doc = json.loads((tmp_path / "analysis" / "batch_size.json").read_text())
    assert doc["methods"]["ft"]["penalty"] == pytest.approx([0.01, 0.01])
    assert doc["methods"]["lora_r8"]["penalty"] == pytest.approx([0.06, 0.08])
    assert doc["methods"]["lora_r8"]["large_batch"] == 128
    assert batch_size.penalties({"m": {8: {1: 2.0}, 64: {1: 2.5}}}, lower_better=True) \
        ["m"]["penalty"] == [0.5]        # a loss: the large batch's higher loss is the penalty
    assert "loss" not in doc["methods"]["ft"]  # records without a curve: no loss penalty


def test_batch_size_loss_penalty_is_the_end_of_epoch_loss_per_seed(tmp_path):
    def points(final):  # 4 windows of 100 tokens; the last quarter of the tokens is the last one
        return [{"step": 5 * k, "tokens": 100 * k, "loss": loss, "lr": 1e-4}
                for k, loss in enumerate((2.0, 1.0, 0.8, final), start=1)]

    finals = {("ft", 8): (0.50, 0.52), ("ft", 128): (0.55, 0.56),
              ("lora_r8", 8): (0.50, 0.51), ("lora_r8", 128): (0.70, 0.66)}
    for (method, b), values in finals.items():
        for seed, final in zip((1, 2), values):
            write_run(tmp_path, f"beyond_smollm2/batch_size/{method}_b{b}", seed,
                      config={"train": {"batch_size": b}}, curve=points(final))
    written = batch_size.build(tmp_path, tmp_path / "analysis", figures=tmp_path / "figures")
    assert [p.name for p in written] == ["batch_size.json", "batch_size.png"]
    assert written[1].stat().st_size > 10_000
    doc = json.loads((tmp_path / "analysis" / "batch_size.json").read_text())
    assert doc["methods"]["ft"]["loss"]["penalty"] == pytest.approx([0.05, 0.04])
    assert doc["methods"]["lora_r8"]["loss"]["penalty"] == pytest.approx([0.20, 0.15])
    assert doc["methods"]["lora_r8"]["penalty"] == [0.0, 0.0]  # the dev metric's, beside it


def test_learning_vs_forgetting_figure(tmp_path):
    empty = forgetting_figure.build(tmp_path, tmp_path / "figures")
    empty_size = empty[0].stat().st_size
    assert empty_size > 1000
    doc = {"model_display": "SmolLM2", "learning_metric": "test/ROUGE-1",
           "runs_detail": [{"label": "ft", "learning": 6.0,
                            "forgetting": {"general_nll_increase": 0.3, "sst2_gen_drop": 4.0}},
                           {"label": "lora_r16", "learning": 3.0,
                            "forgetting": {"general_nll_increase": 0.05}}]}
    (tmp_path / "forgetting.json").write_text(json.dumps(doc))
    png = forgetting_figure.build(tmp_path, tmp_path / "figures")[0]
    assert png.name == "learning_vs_forgetting.png" and png.stat().st_size != empty_size
