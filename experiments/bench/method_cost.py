"""What LoRA saves in training against full fine-tuning on the stand-ins (§4.2's claim: faster
training, less memory): `results/bench/method_cost.{json,md}`, read by the claims ledger.

- Seconds per training step: FT and LoRA copies of one model take a step each on the same batch
  in every round, in alternating order (forward, backward, AdamW step, zero_grad; the stand-ins'
  bf16 autocast unless --autocast none). The ledger pairs the rounds, so load that drifts between
  rounds cancels.
- Training memory: each repeat trains one method for a few steps in a fresh process; its peak
  resident memory above the loaded model (VmHWM after a reset) holds what training adds: the
  gradients, AdamW's two moments, the activations. Repeats alternate FT and LoRA.

    python -m experiments.bench.method_cost [--rounds 20] [--repeats 3] [--models minilm smollm2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from ..batch_order import epoch_batches
from ..paths import results_dir
from .report import write_report
from .speed_common import peak_rss_gb, reset_peak_rss
from .train_cases import SEED, Case, _plain_loss, _prepared, minilm_cases, smollm2_cases

MODELS = {
    # name -> (cases builder, the case names for FT and LoRA, what it stands in for)
    "minilm": (lambda: minilm_cases(400), ("minilm_mrpc_ft", "minilm_mrpc_lora"),
               "MiniLM-L6, MRPC pairs (seq 128), batch 32, LoRA r=8 on Wq, Wv"),
    "smollm2": (lambda: smollm2_cases(n_sst2=800, n_e2e=8),
                ("smollm2_sst2_gen_ft", "smollm2_sst2_gen_lora"),
                "SmolLM2-135M-Instruct, SST-2 as generation (seq 96), batch 16, "
                "LoRA r=4 on Wq, Wv (the paper's GPT-3 setting)"),
}


def _autocast(kind: str):
    return torch.autocast("cpu", dtype=torch.bfloat16) if kind == "bf16" else nullcontext()


class Stepper:
    """One method's model and optimiser; `step(batch)` returns its wall seconds."""

    def __init__(self, case: Case, autocast: str):
        self.case, self.autocast = case, autocast
        self.model = _prepared(case)
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                     lr=1e-5)

    def step(self, indices: list[int]) -> float:
        started = time.perf_counter()
        batch = self.case.collate([self.case.items[i] for i in indices])
        with _autocast(self.autocast):
            loss = _plain_loss(self.model, batch, self.case.causal)
        loss.float().backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - started


def _cases(model: str) -> tuple[Case, Case]:
    build, (ft, lora), _ = MODELS[model]
    by_name = {c.name: c for c in build()}
    return by_name[ft], by_name[lora]


def time_rounds(model: str, rounds: int, autocast: str) -> dict:
    """Per-round seconds per step, FT and LoRA on the same batch, order alternating by round."""
    ft_case, lora_case = _cases(model)
    steppers = {"ft": Stepper(ft_case, autocast), "lora": Stepper(lora_case, autocast)}
    batches = epoch_batches(len(ft_case.items), ft_case.batch_size, SEED, 0)
    times: dict[str, list[float]] = {"ft": [], "lora": []}
    for r in range(rounds + 1):  # round 0 warms up allocators and kernels
        batch = batches[r % len(batches)]
        for name in (("ft", "lora") if r % 2 == 0 else ("lora", "ft")):
            seconds = steppers[name].step(batch)
            if r:
                times[name].append(round(seconds, 5))
        print(f"[method_cost] {model} round {r}/{rounds}", flush=True)
    return {k: {"s_per_step": v, "median_s": round(statistics.median(v), 4)}
            for k, v in times.items()}


def child_memory(model: str, method: str, steps: int, autocast: str) -> dict:
    """Run in a fresh process: training memory of `steps` steps above the loaded model."""
    ft_case, lora_case = _cases(model)
    stepper = Stepper(ft_case if method == "ft" else lora_case, autocast)
    loaded = peak_rss_gb()
    exact = reset_peak_rss()
    batches = epoch_batches(len(stepper.case.items), stepper.case.batch_size, SEED, 0)
    for indices in batches[:steps]:
        stepper.step(indices)
    peak = peak_rss_gb()
    return {"loaded_mb": round(loaded * 1024, 1), "peak_mb": round(peak * 1024, 1),
            "training_mb": round((peak - loaded) * 1024, 1), "peak_reset": exact}


def memory_repeats(model: str, repeats: int, steps: int, autocast: str) -> dict:
    out: dict[str, list[dict]] = {"ft": [], "lora": []}
    for r in range(repeats):
        for method in (("ft", "lora") if r % 2 == 0 else ("lora", "ft")):
            cmd = [sys.executable, "-m", "experiments.bench.method_cost", "--child", model, method,
                   "--steps", str(steps), "--autocast", autocast]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"memory child {model}/{method} failed:\n{done.stderr[-2000:]}")
            out[method].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"[method_cost] {model} {method} memory repeat {r + 1}/{repeats}: "
                  f"{out[method][-1]['training_mb']:.0f} MB", flush=True)
    return {m: {"training_mb": [x["training_mb"] for x in v], "peak_mb": [x["peak_mb"] for x in v],
                "peak_reset": all(x["peak_reset"] for x in v)} for m, v in out.items()}


def markdown(report: dict) -> str:
    lines = ["# LoRA vs full fine-tuning: training step time and memory (CPU)", "",
             f"Generated by `python -m experiments.bench.method_cost` on {report['started']}; "
             f"{report['threads']} threads, autocast {report['autocast']}. Step time: median over "
             f"{report['rounds']} interleaved rounds; memory: what training adds above the loaded "
             f"model (peak RSS), median over {report['repeats']} fresh processes a method.", "",
             "| model | FT s/step | LoRA s/step | LoRA / FT | FT train MB | LoRA train MB |",
             "|---|---:|---:|---:|---:|---:|"]
    for m in report["models"].values():
        t, mem = m["time"], m["memory"]
        ratio = t["lora"]["median_s"] / t["ft"]["median_s"]
        lines.append(f"| {m['setup']} | {t['ft']['median_s']:.3f} | {t['lora']['median_s']:.3f} "
                     f"| {ratio:.2f} | {statistics.median(mem['ft']['training_mb']):.0f} "
                     f"| {statistics.median(mem['lora']['training_mb']):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds a model")
    p.add_argument("--repeats", type=int, default=3, help="memory processes a method")
    p.add_argument("--steps", type=int, default=4, help="training steps a memory process")
    p.add_argument("--autocast", choices=["bf16", "none"], default="bf16")
    p.add_argument("--child", nargs=2, metavar=("MODEL", "METHOD"), help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help="default: results/bench/method_cost.json")
    args = p.parse_args(argv)
    if args.rounds < 2 or args.repeats < 1 or args.steps < 1:
        p.error("--rounds needs 2 or more (an interval), --repeats and --steps 1 or more")
    if args.child:
        print(json.dumps(child_memory(*args.child, args.steps, args.autocast)))
        return None
    report = {"benchmark": "method_cost", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "threads": torch.get_num_threads(), "autocast": args.autocast,
              "rounds": args.rounds, "repeats": args.repeats, "memory_steps": args.steps,
              "torch": torch.__version__, "models": {}}
    for name in args.models:
        report["models"][name] = {"setup": MODELS[name][2],
                                  "time": time_rounds(name, args.rounds, args.autocast),
                                  "memory": memory_repeats(name, args.repeats, args.steps,
                                                           args.autocast)}
    out = args.out or results_dir() / "bench" / "method_cost.json"
    print("wrote " + " and ".join(map(str, write_report(out, report, markdown(report), indent=1))))
    return report


if __name__ == "__main__":
    main()
