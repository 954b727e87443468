"""Training-speed cases for `train_speed`: a plain transformers loop against the engine on the
same real tokens, timed step by step with their FLOPs counted.

The plain loop is what a user writes first: the official batch order, the model's forward with
the head at target positions only (causal LMs), cross-entropy, backward, torch's default AdamW,
zero_grad. The engine is `experiments.engine.train` with its defaults (fused AdamW, every core),
once in the official order and once with length-bucketed batches (the stand-ins' fast path).
Both see the same training items; the first step of each is a warm-up and is not timed.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lora_core import apply_method

from ..batch_order import epoch_batches, item_length
from ..batching import IGNORE, collate_causal, collate_pairs, encode_examples, encode_pairs
from ..engine import TrainConfig, causal_lm_loss, classification_loss, train
from .speed_common import FlopCounter

SEED = 1


@dataclass
class Case:
    """One model + method + data: what `time_case` measures three ways."""

    name: str
    model: nn.Module  # pristine; each variant trains a deep copy
    method: str
    method_params: dict
    items: list
    collate: Callable[[list], dict]
    batch_size: int
    causal: bool
    heads: tuple[str, ...] = ()
    device: str = "cpu"


def smollm2_items(tokenizer, task: str, n: int) -> list:
    """SST-2-as-generation (the stand-in's 800-example draw, seq_len 96) or E2E training lines."""
    from ..tasks import load_examples
    from ..tasks.base import subsample

    if task == "sst2_gen":
        examples = subsample(load_examples("sst2_gen", "train"), n, 0)
        return encode_examples(tokenizer, examples, 96, "context_start")
    return encode_examples(tokenizer, load_examples("e2e", "train", limit=n), 512)


def mrpc_items(tokenizer, n: int) -> list:
    from ..tasks.base import subsample
    from ..tasks.glue import load_glue

    return encode_pairs(tokenizer, subsample(load_glue("mrpc", "train"), n, 0), 128)


def _plain_loss(model: nn.Module, batch: dict, causal: bool) -> torch.Tensor:
    if not causal:
        return model(**batch).loss
    target = batch["labels"][:, 1:]
    keep = (target != IGNORE).any(0).nonzero().squeeze(-1)
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                   logits_to_keep=keep).logits
    return F.cross_entropy(logits.flatten(0, 1), target[:, keep].flatten(), ignore_index=IGNORE)


def _prepared(case: Case) -> nn.Module:
    model = copy.deepcopy(case.model).to(case.device)
    apply_method(model, case.method, head_modules=list(case.heads), **case.method_params)
    return model.train()


def _summary(steps: list[dict], reference: float) -> dict:
    timed = steps[1:]  # the first step warms up allocators and kernels
    wall = sum(s["s"] for s in timed)
    tokens, positions = sum(s["tokens"] for s in timed), sum(s["positions"] for s in timed)
    gflops = sum(s["flops"] for s in timed) / wall / 1e9
    return {"steps": len(timed), "s_per_step": round(wall / len(timed), 3),
            "tokens_per_s": round(tokens / wall, 1), "positions_per_s": round(positions / wall, 1),
            "padding_fraction": round(1 - tokens / positions, 3), "gflops": round(gflops, 1),
            "fraction_of_matmul": round(gflops / reference, 3)}


def plain_loop(case: Case, steps: int, reference: float) -> dict:
    model = _prepared(case)
    counter = FlopCounter(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batches = epoch_batches(len(case.items), case.batch_size, SEED, 0)[: steps + 1]
    log = []
    for indices in batches:
        started = time.perf_counter()
        batch = {k: v.to(case.device) for k, v in
                 case.collate([case.items[i] for i in indices]).items()}
        _plain_loss(model, batch, case.causal).backward()
        opt.step()
        opt.zero_grad()
        if case.device == "cuda":
            torch.cuda.synchronize()
        log.append({"s": time.perf_counter() - started, "flops": counter.take(),
                    "tokens": int(batch["attention_mask"].sum()),
                    "positions": batch["attention_mask"].numel()})
    counter.remove()
    return _summary(log, reference)


def engine_loop(case: Case, steps: int, reference: float, order: str, autocast: str = "none",
                kernel: str = "auto", compile_: bool = False) -> dict:
    model = _prepared(case)
    counter = FlopCounter(model)
    lengths = [item_length(it) for it in case.items]
    batches = epoch_batches(len(case.items), case.batch_size, SEED, 0, lengths, order)
    stamps = [time.perf_counter()]
    flops = []

    def on_step(step: int, _metrics: dict) -> None:
        stamps.append(time.perf_counter())
        flops.append(counter.take())

    # the plain loop's thread count, so that only the loops differ
    cfg = TrainConfig(lr=1e-5, batch_size=case.batch_size, max_steps=steps + 1, log_every=0,
                      seed=SEED, batch_order=order, progress=False,
                      threads=torch.get_num_threads(), autocast=autocast,
                      attention_kernel=kernel, compile=compile_)
    loss = causal_lm_loss() if case.causal else classification_loss()
    result = train(model, case.items, case.collate, loss, cfg, on_step=on_step,
                   device=case.device)
    counter.remove()
    log = []
    for k, indices in enumerate(batches[: steps + 1]):
        mask = case.collate([case.items[i] for i in indices])["attention_mask"]
        log.append({"s": stamps[k + 1] - stamps[k], "flops": flops[k],
                    "tokens": int(mask.sum()), "positions": mask.numel()})
    return {**_summary(log, reference), "threads": result.threads,
            "attention": result.attention}


def time_case(case: Case, steps: int, reference: float, compile_: bool = False) -> dict:
    """Plain loop, engine in the official order, engine with length buckets, and on CPU the
    stand-ins' configuration (length buckets under bf16 autocast) with the engine's default
    attention kernel (`engine.step_context`), with torch's flash kernel and (compile_) through
    torch.compile; ratios to plain."""
    out = {"plain": plain_loop(case, steps, reference)}
    variants = [("engine", "official", "none", "auto", False),
                ("engine_buckets", "length_buckets", "none", "auto", False)]
    if case.device == "cpu":
        variants += [("engine_bf16", "length_buckets", "bf16", "auto", False),
                     ("engine_bf16_flash", "length_buckets", "bf16", "default", False)]
        if compile_:
            variants.append(("engine_bf16_compiled", "length_buckets", "bf16", "auto", True))
    for label, *how in variants:
        out[label] = engine_loop(case, steps, reference, *how)
    for label, *_ in variants:
        out[label]["vs_plain"] = round(out[label]["tokens_per_s"] / out["plain"]["tokens_per_s"], 3)
    print(f"[bench] {case.name}: " + ", ".join(
        f"{k} {v['tokens_per_s']:.0f} tok/s ({v['fraction_of_matmul']:.0%} of matmul)"
        for k, v in out.items()), flush=True)
    return out


def smollm2_cases(n_sst2: int = 800, n_e2e: int = 400, device: str = "cpu",
                  dtype: torch.dtype = torch.float32) -> list[Case]:
    from ..models import load_model

    loaded = load_model("smollm2_135m", dtype=dtype)
    lora = {"targets": {"q": 4, "v": 4}, "alpha": 8, "dropout": 0.0}
    collate = lambda items: collate_causal(items, pad_id=0)  # noqa: E731
    cases = []
    for task, n, batch in (("sst2_gen", n_sst2, 16), ("e2e", n_e2e, 8)):
        items = smollm2_items(loaded.tokenizer, task, n)
        for method, params in (("lora", lora), ("ft", {})):
            cases.append(Case(f"smollm2_{task}_{method}", loaded.model, method, params, items,
                              collate, batch, causal=True, device=device))
    return cases


def minilm_cases(n: int = 400) -> list[Case]:
    from ..models import load_model

    loaded = load_model("minilm_l6", head="sequence_classification", num_labels=2)
    items = mrpc_items(loaded.tokenizer, n)
    pad = loaded.tokenizer.pad_token_id or 0
    collate = lambda batch: collate_pairs(batch, pad_id=pad)  # noqa: E731
    lora = {"targets": {"q": 8, "v": 8}, "alpha": 16, "dropout": 0.0}
    return [Case(f"minilm_mrpc_{m}", loaded.model, m, p, items, collate, 32, causal=False,
                 heads=("classifier",)) for m, p in (("lora", lora), ("ft", {}))]
