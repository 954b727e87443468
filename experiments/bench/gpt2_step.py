"""One GPT-2 M training step, timed in a process of its own so that its peak memory is its own:
this suite's LoRA (Wq, Wv r=4 inside the fused c_attn), PEFT's LoRA on the whole c_attn (r=4),
or full fine-tuning. Random init (the step costs the same), batch 4 x 128, AdamW.

`python -m experiments.bench.gpt2_step --method lora` prints one JSON line: seconds per step
(best and mean of the timed steps after a warm-up), peak RSS, trainable parameters.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from .speed_common import peak_rss_gb, reset_peak_rss

METHODS = ("lora", "peft", "ft")


def build(method: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    from ..models import load_model

    model = load_model("gpt2_m", init="random", seed=0, with_tokenizer=False,
                       dtype=dtype).model.to(device)
    if method == "lora":
        from lora_core import LoRAConfig, apply_lora

        apply_lora(model, LoRAConfig(targets={"q": 4, "v": 4}, alpha=32))
    elif method == "peft":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=32, target_modules=["c_attn"],
                                                 fan_in_fan_out=True, lora_dropout=0.0))
    elif method != "ft":
        raise ValueError(f"--method {method!r}: choose one of {METHODS}")
    return model.train()


def time_steps(method: str, steps: int, batch: int = 4, seq: int = 128, device: str = "cpu",
               dtype: torch.dtype = torch.float32) -> dict:
    model = build(method, device, dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-5, fused=True)
    ids = torch.randint(0, 50257, (batch, seq), generator=torch.Generator().manual_seed(0))
    ids = ids.to(device)
    # the peak of the steps alone: building the model (random init) peaks higher than a LoRA
    # step and would hide the difference between the methods
    reset = reset_peak_rss() if device != "cuda" else False
    times = []
    for _ in range(steps + 1):  # the first is a warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    memory = (torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else peak_rss_gb())
    return {"method": method, "s_per_step": round(statistics.mean(times[1:]), 3),
            "best_s_per_step": round(min(times[1:]), 3), "steps": steps,
            "peak_memory_gb": round(memory, 3),
            "memory_kind": "cuda max allocated" if device == "cuda" else (
                "peak RSS during the steps" if reset else "peak RSS of the process"),
            "trainable": sum(p.numel() for p in trainable), "threads": torch.get_num_threads()}


def interleaved_times(methods: list[str], steps: int, batch: int = 4, seq: int = 128) -> dict:
    """Seconds per step of each method with their steps interleaved in one process (A B A B
    ...), so that a busy machine's drifting load falls on every method alike; the first round
    is a warm-up. Memory is not comparable here (every model lives at once): see time_steps."""
    runs = []
    for method in methods:
        model = build(method)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5,
                                fused=True)
        runs.append((method, model, opt))
    ids = torch.randint(0, 50257, (batch, seq), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(steps + 1):
        for method, model, opt in runs:
            started = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            times[method].append(time.perf_counter() - started)
    return {m: {"s_per_step": round(statistics.mean(t[1:]), 3),
                "steps_s": [round(x, 3) for x in t[1:]]} for m, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=METHODS)
    parser.add_argument("--interleave", nargs="+", choices=METHODS,
                        help="time these methods' steps interleaved in this one process")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    args = parser.parse_args()
    from ..engine import configure_threads

    configure_threads(args.threads)
    if args.interleave:
        print(json.dumps(interleaved_times(args.interleave, args.steps)))
        return
    if not args.method:
        parser.error("give --method or --interleave")
    print(json.dumps(time_steps(args.method, args.steps, device=args.device,
                                dtype=getattr(torch, args.dtype))))


if __name__ == "__main__":
    main()
