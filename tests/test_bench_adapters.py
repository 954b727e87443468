"""The adapters benchmark end to end on gpt2_tiny (seconds): every k timed, every method, files."""
from __future__ import annotations

import json

from experiments.bench.adapters import KS, main


def test_bench_runs_every_k_and_writes_its_files(tmp_path):
    path = main(["--device", "cpu", "--quick", "--models", "gpt2_tiny", "--out", str(tmp_path)])
    record = json.loads(path.read_text())
    (model,) = record["models"]
    assert model["model"] == "gpt2_tiny" and not model["peft_compared"]  # GPT-2: no PEFT twin
    for phase in ("prefill", "decode"):
        rows = model["phases"][phase]["rows"]
        assert [r["k"] for r in rows] == list(KS)
        for r in rows:
            for method in ("routed", "merged_switch", "merged_single"):
                assert r[method]["tokens_per_s"] > 0 and len(r[method]["times_s"]) == 1
    # the random adapters really change the logits, so the timings serve real updates
    assert all(r["adapter_effect_rel"] > 1e-4 for r in model["phases"]["prefill"]["rows"])
    switch = model["switch"]
    assert 0 <= switch["kept_weights"] < switch["adapted_weights"]
    assert 1e-3 < switch["delta_over_w0_frobenius"] < 0.1
    md = (tmp_path / "bench" / "adapters_cpu_quick.md").read_text()
    assert "| k | routed tok/s | merged_switch tok/s | merged_single tok/s |" in md
    assert (tmp_path / "figures" / "adapters_cpu_quick.png").stat().st_size > 10_000
