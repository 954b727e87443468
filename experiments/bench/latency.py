"""Table 1 and Figure 5: inference latency of adapter layers against merged LoRA, GPT-2 medium.

`python -m experiments.bench.latency --device cuda` times one forward pass (no grad, eval,
use_cache=False) per cell and variant, writes results/bench/latency.json, the paper-layout
results/tables/table1.md and the heat-maps results/figures/figure5_latency.png.
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import nn

from lora_core import apply_method, bottleneck_for_budget, count_parameters, merge_and_unload

from ..models import load_model, model_spec
from ..paths import results_dir
from .latency_report import previous_parts, write_outputs

BUDGETS = {"0.5M": 0.5e6, "11M": 11e6}
LORA = {"targets": {"q": 4, "v": 4}, "alpha": 32}  # the paper's GPT-2 setting (Table 11)


@dataclass
class Grid:
    """What to time: Table 1's (batch, seq, budget) columns and Figure 5's batch x seq x r."""

    table1: list[tuple[int, int, str]]
    fig_batch: list[int]
    fig_seq: list[int]
    fig_r: list[int]
    warmup: int
    trials: int
    fig_trials: int
    model: str = "gpt2_m"
    fixed_r: dict | None = None  # budget -> r, instead of deriving r from the budget

    def describe(self) -> dict:
        return {"table1_cells": [list(c) for c in self.table1], "figure5_batch": self.fig_batch,
                "figure5_seq": self.fig_seq, "figure5_r": self.fig_r, "warmup": self.warmup,
                "trials_table1": self.trials, "trials_figure5": self.fig_trials,
                "model": self.model, "fixed_r": self.fixed_r}


# The paper's three columns and a Figure 5 grid (its r values are not given; these span the
# two Table 1 sizes), for a GPU.
CUDA_GRID = Grid(table1=[(32, 512, "0.5M"), (16, 256, "11M"), (1, 128, "11M")],
                 fig_batch=[1, 2, 4, 8, 16, 32], fig_seq=[32, 64, 128, 256, 512],
                 fig_r=[8, 64, 256], warmup=10, trials=100, fig_trials=20)
# On 2 shared CPU cores one GPT-2 M forward at 32x512 takes tens of seconds: the CPU grid is
# the paper's three cells scaled by 1/8 in batch and sequence length (the third keeps batch 1),
# with the paper's budgets, and a Figure 5 grid at that scale. 90 interleaved rounds a Table 1
# cell (about 18 min on 1 thread): the ledger's paired interval over rounds (claim
# no_inference_latency) must resolve column 1's Adapter^L overhead, a small fraction of a
# forward pass that 30 rounds left inside the interval even on a quiet machine.
CPU_GRID = Grid(table1=[(4, 64, "0.5M"), (2, 32, "11M"), (1, 16, "11M")],
                fig_batch=[1, 2, 4], fig_seq=[8, 16, 32], fig_r=[8, 256],
                warmup=2, trials=90, fig_trials=3)
QUICK_GRID = Grid(table1=[(2, 32, "0.5M"), (1, 16, "11M")], fig_batch=[1, 2], fig_seq=[16, 32],
                  fig_r=[4, 16], warmup=1, trials=2, fig_trials=2, model="gpt2_tiny",
                  fixed_r={"0.5M": 4, "11M": 16})


# ---------------------------------------------------------------------------------- models

def adapter_r(model: nn.Module, method: str, budget: str, grid: Grid) -> int:
    """Bottleneck for Adapter^L (one adapter + LayerNorm per block) or Adapter^H (two adapters
    per block) whose count by the paper's formula is nearest the budget."""
    if grid.fixed_r:
        return grid.fixed_r[budget]
    n_layer, d = model.config.n_layer, model.config.n_embd
    if method == "adapter_l":
        return bottleneck_for_budget(BUDGETS[budget], n_layer, d, n_layer)
    return bottleneck_for_budget(BUDGETS[budget], 2 * n_layer, d)


def shared_copy(base: nn.Module) -> nn.Module:
    """A structural copy that shares every weight with `base` (one GPT-2 M in memory)."""
    memo = {id(t): t for t in list(base.parameters()) + list(base.buffers())}
    return copy.deepcopy(base, memo)


def build_variant(base: nn.Module, method: str, r: int | None = None) -> nn.Module:
    if method == "base":
        return base
    model = shared_copy(base)
    if method in ("lora_merged", "lora_unmerged"):
        apply_method(model, "lora", **LORA)
        if method == "lora_merged":
            # B = 0 at init, so W += BA leaves the shared weights as they are
            merge_and_unload(model)
    else:
        apply_method(model, method, r=r)
    return model.eval()


# ---------------------------------------------------------------------------------- timing

def one_forward_ms(model: nn.Module, ids: torch.Tensor, device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(input_ids=ids, use_cache=False)
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    model(input_ids=ids, use_cache=False)
    return (time.perf_counter() - t0) * 1e3


def summarise(times: list[float]) -> dict:
    return {"mean_ms": statistics.fmean(times),
            "std_ms": statistics.stdev(times) if len(times) > 1 else 0.0,
            "median_ms": statistics.median(times), "min_ms": min(times), "n": len(times),
            "times_ms": [round(t, 4) for t in times]}


@torch.inference_mode()
def time_cell(variants: dict[str, nn.Module], batch: int, seq: int, device: torch.device,
              warmup: int, trials: int, vocab: int, seed: int = 0) -> dict[str, dict]:
    """Mean ± std per variant. Trials are interleaved (each round runs every variant once,
    starting from a rotating one) so drift and neighbours' load hit all variants alike."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab, (batch, seq), generator=g).to(device)
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            one_forward_ms(variants[name], ids, device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for t in range(trials):
        for k in range(len(names)):
            name = names[(t + k) % len(names)]
            times[name].append(one_forward_ms(variants[name], ids, device))
    return {n: summarise(v) for n, v in times.items()}


def environment(device: torch.device, base: nn.Module) -> dict:
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "platform": platform.platform(),
           "machine": platform.machine(), "device": device.type,
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "attn_implementation": getattr(base.config, "_attn_implementation", None),
           "dtype": str(next(base.parameters()).dtype).replace("torch.", "")}
    try:
        with open("/proc/cpuinfo") as f:
            env["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        env["cpu"] = platform.processor()
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    else:
        env["device_name"] = env["cpu"]
    return env


# ---------------------------------------------------------------------------------- runs

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_table1(base: nn.Module, grid: Grid, device: torch.device, vocab: int) -> dict:
    started, cells = _now(), []
    for column, (batch, seq, budget) in enumerate(grid.table1, start=1):
        r_l, r_h = (adapter_r(base, m, budget, grid) for m in ("adapter_l", "adapter_h"))
        specs = {"base": ("base", None), "lora_merged": ("lora_merged", None),
                 "lora_unmerged": ("lora_unmerged", None), "adapter_l": ("adapter_l", r_l),
                 "adapter_h": ("adapter_h", r_h)}
        variants = {n: build_variant(base, m, r).to(device) for n, (m, r) in specs.items()}
        params = {n: count_parameters(v).trainable for n, v in variants.items()
                  if n.startswith("adapter")}
        print(f"[latency] table1 column {column}: batch {batch} x seq {seq}, |Θ| {budget}: "
              f"Adapter^L r={r_l} ({params['adapter_l']:,}), Adapter^H r={r_h} "
              f"({params['adapter_h']:,})", flush=True)
        results = time_cell(variants, batch, seq, device, grid.warmup, grid.trials, vocab)
        cells.append({"column": column, "batch": batch, "seq": seq, "budget": budget,
                      "r": {"adapter_l": r_l, "adapter_h": r_h}, "adapter_params": params,
                      "lora": {**LORA, "params": count_parameters(variants["lora_unmerged"]).trainable},
                      "results": results})
        del variants
    return {"warmup": grid.warmup, "trials": grid.trials, "cells": cells, "started": started,
            "finished": _now()}


def run_figure5(base: nn.Module, grid: Grid, device: torch.device, vocab: int) -> dict:
    started, variants = _now(), {"base": base}
    for r in grid.fig_r:
        for method in ("adapter_h", "adapter_l"):
            variants[f"{method}_r{r}"] = build_variant(base, method, r).to(device)
    cells = []
    for batch in grid.fig_batch:
        for seq in grid.fig_seq:
            print(f"[latency] figure5 batch {batch} x seq {seq}", flush=True)
            cells.append({"batch": batch, "seq": seq, "results": time_cell(
                variants, batch, seq, device, grid.warmup, grid.fig_trials, vocab)})
    return {"warmup": grid.warmup, "trials": grid.fig_trials, "batch": grid.fig_batch,
            "seq": grid.fig_seq, "r": grid.fig_r, "cells": cells, "started": started,
            "finished": _now()}


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help="tiny grid on gpt2_tiny, 2 trials: a smoke run (about 20 s on CPU)")
    parser.add_argument("--part", choices=("all", "table1", "figure5"), default="all")
    parser.add_argument("--out", type=Path, default=None,
                        help="results root (default: results/): writes bench/latency.json, "
                             "tables/table1.md, figures/figure5_latency.png under it")
    parser.add_argument("--model", default=None, help="model config (default gpt2_m)")
    parser.add_argument("--trials", type=int, default=None, help="timed trials per Table 1 cell")
    parser.add_argument("--figure-trials", type=int, default=None,
                        help="timed trials per Figure 5 cell")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default on CPU: 1; on a shared machine more "
                             "threads wait on each other and time out of all proportion)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU (torch.cuda.is_available() is "
                         "False): run on a GPU machine or use --device cpu")
    if args.threads or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    grid = copy.deepcopy(QUICK_GRID if args.quick else CUDA_GRID if args.device == "cuda" else CPU_GRID)
    grid.model = args.model or grid.model
    grid.trials = args.trials or grid.trials
    grid.fig_trials = args.figure_trials or grid.fig_trials
    device = torch.device(args.device)
    out = args.out or results_dir()

    started = time.perf_counter()
    spec = model_spec(grid.model)
    base = load_model(spec, init="random", with_tokenizer=False, seed=0).model.eval().to(device)
    vocab = base.config.vocab_size
    record = {"benchmark": "inference latency, one forward pass (Table 1, Figure 5)",
              "model": spec.name, "model_display": spec.display_name, "init": "random",
              "n_layer": base.config.n_layer, "d_model": base.config.n_embd,
              "quick": args.quick, "grid": grid.describe(),
              "environment": environment(device, base),
              "started": _now()}
    record.update(previous_parts(out / "bench" / "latency.json", record))
    parts = [p for p in ("table1", "figure5") if args.part in ("all", p)]
    for part in parts:
        record[part] = (run_table1 if part == "table1" else run_figure5)(base, grid, device, vocab)
        record["wall_s"] = round(time.perf_counter() - started, 1)
        # written after each part, so a run cut short keeps what it measured
        written = write_outputs(record, out)
    for path in written:
        print(f"[latency] wrote {path}")
    for cell in record.get("table1", {}).get("cells", []):
        ratio = cell["results"]["lora_merged"]["mean_ms"] / cell["results"]["base"]["mean_ms"]
        flag = "" if ratio <= 1.01 else "  (above 1.01: measurement noise, the models are identical)"
        print(f"[latency] column {cell['column']}: merged LoRA / base = {ratio:.3f}{flag}")
    return out / "bench" / "latency.json"


if __name__ == "__main__":
    main()
