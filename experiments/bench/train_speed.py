"""`make bench-train`: training and decoding speed against this machine's own limit, in one run.

First the fp32 matmul rate (speed_common.matmul_rate), then for each case the plain loop and
the engine on the same real tokens (train_cases: SmolLM2-135M LoRA and FT on SST-2-as-generation
and E2E, MiniLM LoRA and FT on MRPC), then GPT-2 M's step (LoRA / PEFT LoRA / FT, each in a
process of its own for its peak memory: gpt2_step), then decoding against plain `generate`
(decode_cases). Achieved GFLOP/s: forward 2·P·T, frozen weights add 2·P·T for activation
gradients, trained ones 4·P·T (T = positions computed; details in speed_common).
Writes results/bench/train_speed.json and train_speed.md. Timings depend on what else runs on
the machine: the JSON records the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..engine import configure_threads
from ..paths import results_dir
from .speed_common import matmul_rate

PARTS = ("smollm2", "minilm", "gpt2", "decode")


def _gpt2_child(*args: str) -> dict:
    cmd = [sys.executable, "-m", "experiments.bench.gpt2_step", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gpt2_steps(steps: int, threads: int) -> dict:
    """Each method in a process of its own (its step time and the peak RSS of its steps), then
    LoRA and PEFT interleaved step by step in one process: the step-time comparison that a
    busy machine's drifting load cannot tilt (`interleaved`)."""
    out = {}
    for method in ("lora", "peft", "ft"):
        out[method] = _gpt2_child("--method", method, "--steps", str(steps),
                                  "--threads", str(threads))
        print(f"[bench] gpt2_m {method}: {out[method]['s_per_step']} s/step, "
              f"{out[method]['peak_memory_gb']} GB", flush=True)
    out["interleaved"] = _gpt2_child("--interleave", "lora", "peft", "--steps", str(2 * steps),
                                     "--threads", str(threads))
    print(f"[bench] gpt2_m interleaved: {out['interleaved']}", flush=True)
    out["lora_vs_peft_s_per_step"] = round(out["interleaved"]["lora"]["s_per_step"]
                                           / out["interleaved"]["peft"]["s_per_step"], 3)
    out["lora_vs_peft_peak_memory_gb"] = round(out["lora"]["peak_memory_gb"]
                                               / out["peft"]["peak_memory_gb"], 3)
    return out


SECTIONS = {"smollm2": "training", "minilm": "training", "decode": "decoding", "gpt2": "gpt2_m"}


def _keep_other_parts(previous: dict, report: dict, parts: list[str]) -> dict:
    """A run of some parts keeps the other parts' numbers from the previous file, each part
    stamped with the date it was measured (`parts`). Without the training parts, the header
    (matmul reference, load) stays the one the training rates were measured against and this
    run's own conditions go under `<parts>_run`."""
    merged = dict(report)
    if not {"smollm2", "minilm"} & set(parts):  # the rates stay against their own reference
        for key in ("date", "threads", "matmul", "load_before", "load_after", "wall_s"):
            merged[key] = previous.get(key, merged[key])
        merged[f"{'_'.join(parts)}_run"] = {k: report[k] for k in (
            "date", "threads", "load_before", "load_after", "wall_s")}
    for part, section in SECTIONS.items():
        if part in parts or section not in previous:
            continue
        if section == "training":
            prefix = "smollm2_" if part == "smollm2" else "minilm_"
            kept = {k: v for k, v in previous["training"].items() if k.startswith(prefix)}
            merged["training"] = {**kept, **merged.get("training", {})}
        else:
            merged[section] = previous[section]
        merged["parts"][part] = previous.get("parts", {}).get(part, previous.get("date"))
    return merged


def markdown(report: dict) -> str:
    ref = report["matmul"]["reference"]
    lines = [f"# Training and decoding speed ({report['machine']})", "",
             f"Measured {report['date']} with {report['threads']} threads; fp32 matmul "
             f"reference {ref} GFLOP/s ({', '.join(f'{k}: {v}' for k, v in report['matmul']['gflops'].items())}); "
             f"load average {report['load_before']} before, {report['load_after']} after. "
             "Written by `make bench-train` (experiments/bench/train_speed.py).",
             "Parts measured: " + ", ".join(f"{k} {v}" for k, v in report.get("parts", {}).items())
             + ".", "",
             "## Training: plain loop vs engine, same real tokens", "",
             "engine_bf16 rows train under bf16 autocast with the engine's default attention kernel "
             "(SDPA's math kernel where weights are frozen, torch's choice for FT: the "
             "record's `attention`), engine_bf16_flash with torch's flash kernel; "
             "their GFLOP/s are against the same float32 matmul reference. engine_bf16_compiled "
             "(`--compile`) adds train.compile=true; its compile is the untimed first step.", "",
             "| case | loop | s/step | tokens/s | padding | GFLOP/s | of matmul | vs plain |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, case in report.get("training", {}).items():
        for loop, r in case.items():
            lines.append(f"| {name} | {loop} | {r['s_per_step']} | {r['tokens_per_s']} | "
                         f"{r['padding_fraction']:.0%} | {r['gflops']} | "
                         f"{r['fraction_of_matmul']:.0%} | {r.get('vs_plain', '')} |")
    if "gpt2_m" in report:
        g = report["gpt2_m"]
        lines += ["", "## GPT-2 M step, batch 4 x 128, random init, AdamW (own process each)", "",
                  "| method | s/step (mean) | best | peak RSS GB | trainable |", "|---|---:|---:|---:|---:|"]
        for method in ("lora", "peft", "ft"):
            r = g[method]
            lines.append(f"| {method} | {r['s_per_step']} | {r['best_s_per_step']} | "
                         f"{r['peak_memory_gb']} | {r['trainable']:,} |")
        inter = g["interleaved"]
        lines.append(f"\nLoRA and PEFT steps interleaved in one process: {inter['lora']['s_per_step']}"
                     f" vs {inter['peft']['s_per_step']} s/step. LoRA / PEFT: step time "
                     f"{g['lora_vs_peft_s_per_step']} (interleaved), peak memory "
                     f"{g['lora_vs_peft_peak_memory_gb']} (own processes).")
    if "decoding" in report:
        lines += ["", "## Decoding vs plain `generate`, same prompts", "",
                  "| case | sources | new tokens | plain tok/s | engine tok/s | speed-up | identical |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for name, r in report["decoding"].items():
            lines.append(f"| {name} | {r['sources']} | {r['new_tokens']} | "
                         f"{r['plain_generate']['tokens_per_s']} | {r['engine']['tokens_per_s']} | "
                         f"{r['vs_plain']} | {r['identical_count']}/{r['sources']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--steps", type=int, default=4, help="timed steps per loop (+1 warm-up)")
    parser.add_argument("--gpt2-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="0 = every usable core")
    parser.add_argument("--compile", action="store_true",
                        help="also time engine_bf16_compiled (train.compile=true; the compile, "
                             "minutes per case, is its untimed first step)")
    parser.add_argument("--out", type=Path, default=results_dir() / "bench")
    args = parser.parse_args(argv)
    threads = configure_threads(args.threads)
    started = time.perf_counter()
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
              "threads": threads, "load_before": [round(x, 2) for x in os.getloadavg()],
              "matmul": matmul_rate()}
    print(f"[bench] matmul {report['matmul']}", flush=True)
    ref = report["matmul"]["reference"]
    from .train_cases import minilm_cases, smollm2_cases, time_case

    training = {}
    if "smollm2" in args.parts or "decode" in args.parts:
        cases = smollm2_cases()
        if "smollm2" in args.parts:
            for case in cases:
                training[case.name] = time_case(case, args.steps, ref, args.compile)
        if "decode" in args.parts:
            from ..models import load_tokenizer
            from .decode_cases import smollm2_decoding

            report["decoding"] = smollm2_decoding(cases[0].model, load_tokenizer("smollm2_135m"))
        del cases
    if "minilm" in args.parts:
        for case in minilm_cases():
            training[case.name] = time_case(case, args.steps, ref, args.compile)
    report["training"] = training
    if "gpt2" in args.parts:
        report["gpt2_m"] = gpt2_steps(args.gpt2_steps, threads)
    report["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["parts"] = {part: report["date"] for part in args.parts}
    path = args.out / "train_speed.json"
    if set(args.parts) != set(PARTS) and path.exists():
        report = _keep_other_parts(json.loads(path.read_text()), report, args.parts)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train_speed.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "train_speed.md").write_text(markdown(report))
    print(f"[bench] {time.perf_counter() - started:.1f} s; wrote {args.out / 'train_speed.json'} and train_speed.md")
    return report


if __name__ == "__main__":
    main()
