"""The latency benchmark's quick grid: a complete JSON, the Table 1 markdown and the heat-maps."""
from __future__ import annotations

import json
import math
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from experiments.bench import latency  # noqa: E402

TABLE1_VARIANTS = {"base", "lora_merged", "lora_unmerged", "adapter_l", "adapter_h"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    path = latency.main(["--quick", "--device", "cpu", "--out", str(out)])
    return out, json.loads(path.read_text())


def _complete(stats: dict) -> bool:
    return (math.isfinite(stats["mean_ms"]) and stats["mean_ms"] > 0
            and math.isfinite(stats["std_ms"]) and stats["n"] == len(stats["times_ms"]) >= 2)


def test_quick_grid_writes_every_cell(quick_run):
    _, record = quick_run
    grid = latency.QUICK_GRID
    cells = record["table1"]["cells"]
    assert [(c["batch"], c["seq"], c["budget"]) for c in cells] == grid.table1
    for cell in cells:
        assert set(cell["results"]) == TABLE1_VARIANTS
        assert all(_complete(s) for s in cell["results"].values())
        assert cell["r"] == {"adapter_l": grid.fixed_r[cell["budget"]],
                             "adapter_h": grid.fixed_r[cell["budget"]]}
    fig5 = record["figure5"]
    assert {(c["batch"], c["seq"]) for c in fig5["cells"]} == {
        (b, s) for b in grid.fig_batch for s in grid.fig_seq}
    expected = {"base"} | {f"{m}_r{r}" for m in ("adapter_h", "adapter_l") for r in grid.fig_r}
    for cell in fig5["cells"]:
        assert set(cell["results"]) == expected
        assert all(_complete(s) for s in cell["results"].values())
    env = record["environment"]
    assert env["device"] == "cpu" and env["threads"] >= 1 and env["torch"]


def test_quick_grid_writes_table_and_figure(quick_run):
    out, record = quick_run
    table = (out / "tables" / "table1.md").read_text()
    assert "Adapter^H (paper)" in table and "1492.2 ± 1.0 (+3.0%)" in table
    assert table.count("\n| ") == 16  # header + 15 rows: the paper's layout, ours beside it
    png = out / "figures" / "figure5_latency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budgets_give_the_derived_bottlenecks():
    class Config:
        n_layer, n_embd = 24, 1024

    class GPT2M:
        config = Config()

    grid = latency.CPU_GRID
    assert latency.adapter_r(GPT2M(), "adapter_l", "0.5M", grid) == 9
    assert latency.adapter_r(GPT2M(), "adapter_h", "0.5M", grid) == 5
    assert latency.adapter_r(GPT2M(), "adapter_l", "11M", grid) == 222
    assert latency.adapter_r(GPT2M(), "adapter_h", "11M", grid) == 111


def test_merged_lora_is_structurally_the_base_model():
    """What the table's merged-LoRA row times: the base model's own modules and weights, so any
    gap to the no-adapter row is measurement noise; unmerged LoRA and adapters add modules."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    base = T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=97,
                                          n_positions=64)).eval()
    merged = latency.build_variant(base, "lora_merged")
    assert [type(m) for m in merged.modules()] == [type(m) for m in base.modules()]
    assert all(p is q for p, q in zip(merged.parameters(), base.parameters()))
    ids = torch.randint(0, 97, (2, 8))
    with torch.no_grad():
        assert torch.equal(merged(input_ids=ids).logits, base(input_ids=ids).logits)
    for method, r in (("lora_unmerged", None), ("adapter_h", 4), ("adapter_l", 4)):
        variant = latency.build_variant(base, method, r)
        assert len(list(variant.modules())) > len(list(base.modules()))
        # shares the frozen weights: one GPT-2 M in memory for every variant
        assert variant.transformer.wte.weight is base.transformer.wte.weight
