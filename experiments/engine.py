"""The training engine every task uses: AdamW, linear warm-up/decay, a task loss, resumable
checkpoints, NaN detection, optional torchrun data parallelism (DDP, or FSDP for a model
`experiments.sharding.shard_model` sharded: `train.fsdp`).

The loop is deterministic for a seed: epoch e's batches are a function of seed + e
(`batch_order.epoch_batches`: the official shuffle, or length buckets for the stand-ins), so a
run resumed from a checkpoint continues exactly as an uninterrupted one would. Speed: every core
by default (`threads`), fused AdamW over the trainable tensors only (frozen weights get neither
gradients nor optimizer state), training and evaluation timed apart.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .batch_order import epoch_batches, item_length
from .batching import IGNORE
from .curve import LossCurve
from .plateau import plateau
from .sharding import is_sharded
from .threads import configure_threads, usable_cores  # noqa: F401 (the benches import them here)
from .train_checkpoint import load_state, save_state

LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, int]]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the run stops and its record stays incomplete."""


@dataclass
class TrainConfig:
    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # used when warmup_steps is 0
    epochs: int = 1
    max_steps: int = 0  # > 0 caps the total number of optimizer steps
    # > 0: train only the first `run_epochs` epochs of the `epochs`-long lr schedule (an lr
    # sweep that sees its cells' own first epochs, not a schedule squeezed into a few). null: 0
    run_epochs: int | None = 0
    batch_size: int = 8
    grad_accum: int = 1
    clip_norm: float = 0.0  # 0 = off, as the official NLG code
    no_decay_bias_norm: bool = False  # HF Trainer (GLUE) excludes biases and LayerNorms
    log_every: int = 50
    save_every: int = 0  # steps between checkpoints (0 = at epoch ends only)
    seed: int = 1
    batch_order: str = "official"  # or "length_buckets" (the stand-ins; see batch_order.py)
    threads: int = 0  # torch threads; 0 = the cores this process may use / LORA_REPRO_JOBS
    optimizer_impl: str = "fused"  # AdamW kernel: fused | foreach | for_loop (same maths)
    progress: bool = True  # a tqdm bar when stdout is a terminal
    # "bf16": forward and backward under torch.autocast in bfloat16, weights, gradients and
    # AdamW state stay float32 (an AVX512-BF16 CPU runs bf16 matmuls faster than float32)
    autocast: str | None = "none"  # null in a config reads as none
    # SDPA's kernel in training steps: "auto" = the math kernel on CPU under bf16 autocast when
    # some weights are frozen (`step_context`), torch's own choice elsewhere; "default" = torch's
    # choice everywhere
    attention_kernel: str = "auto"
    # true: training steps run the model through torch.compile (dynamic shapes, COMPILE_BACKEND);
    # checkpoints, evaluation and decoding use the model itself. The first steps pay the compile
    # (minutes cold; inductor's on-disk cache makes a rerun's shorter). null reads as false
    compile: bool | None = False
    # > 0: stop once the job's dev metric stopped improving (experiments/plateau.py: the last
    # `patience` evaluations no better than the earlier best, after `min_evaluations`)
    patience: int | None = 0  # null reads as 0
    min_evaluations: int = 3
    # the model is FSDP-sharded (experiments/sharding.py; the pipeline shards it when set):
    # no DDP wrapper, per-rank checkpoint shards. null reads as false
    fsdp: bool | None = False


# torch.compile's backend for `train.compile` (tests swap in "aot_eager", which needs no C++
# compiler)
COMPILE_BACKEND = "inductor"


def _unwrapped(model: nn.Module) -> nn.Module:
    """The model inside torch.compile's and DistributedDataParallel's wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def _check_can_compile(device: torch.device | str) -> None:
    """Inductor builds CPU kernels with a C++ compiler: without one, say so before training
    starts rather than at the first step."""
    if COMPILE_BACKEND != "inductor" or torch.device(device).type != "cpu":
        return
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as err:  # noqa: BLE001 - torch raises its own error types here
        raise ValueError(f"train.compile=true on CPU needs a C++ compiler (g++ or clang++; "
                         f"torch says: {err}): install one, or set train.compile=false") from err


def _computes_selected_logits(model: nn.Module) -> bool:
    """Whether the model's head can score only chosen positions (`logits_to_keep`, HF causal
    LMs). Prefix-wrapped models cannot: their outputs are gathered from a longer sequence."""
    return "logits_to_keep" in inspect.signature(_unwrapped(model).forward).parameters


def causal_lm_loss(label_smoothing: float = 0.0) -> LossFn:
    """Token-level loss over completion tokens, summed over the batch and divided by the token
    count (+1e-4), with uniform label smoothing over the vocabulary (paper_spec §2.6).

    Where the model allows it, the LM head runs only at positions some row of the batch has a
    target for: the GPT-3 tasks' targets are a label word or a summary after a long context, and
    the head (49k x 576 on SmolLM2) over every position took a fifth of a training step."""

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, int]:
        target = batch["labels"][:, 1:]
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        if _computes_selected_logits(model):
            keep = (target != IGNORE).any(0).nonzero().squeeze(-1)
            logits, target = model(**inputs, logits_to_keep=keep).logits, target[:, keep]
        else:
            logits = model(**inputs).logits[:, :-1]
        mask = target != IGNORE
        logp = F.log_softmax(logits[mask].float(), dim=-1)  # only target positions
        nll = -logp.gather(-1, target[mask].unsqueeze(-1)).squeeze(-1)
        per_token = nll if label_smoothing == 0 else (
            (1 - label_smoothing) * nll - label_smoothing * logp.mean(-1))
        n = int(mask.sum())
        return per_token.sum() / (n + 1e-4), n
    return loss_fn


def classification_loss() -> LossFn:
    """Cross-entropy over the head's logits, or MSE for one output (STS-B): what the HF head
    computes as `out.loss`, here on float32 logits so that a bf16 autocast step keeps its loss
    in float32."""

    def loss_fn(model: nn.Module, batch: dict) -> tuple[torch.Tensor, int]:
        labels = batch["labels"]
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        if logits.shape[-1] == 1:
            loss = F.mse_loss(logits.squeeze(-1), labels.float())
        else:
            loss = F.cross_entropy(logits, labels)
        return loss, int(batch["attention_mask"].sum())
    return loss_fn


def linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    """step/warmup during warm-up, then (total - step)/(total - warmup), floored at 0."""
    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            return step / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("no trainable parameters: the method froze everything")
    if not cfg.no_decay_bias_norm:
        return [{"params": [p for _, p in params], "weight_decay": cfg.weight_decay}]
    no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n or "layernorm" in n or "ln_" in n
    return [{"params": [p for n, p in params if not no_decay(n)], "weight_decay": cfg.weight_decay},
            {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0}]


@dataclass
class TrainResult:
    steps: int
    wall_s: float  # training and per-epoch evaluation together
    tokens_per_s: float  # training tokens (padding not counted) / train_wall_s
    history: list[dict] = field(default_factory=list)  # per-epoch: loss, eval metrics
    resumed_from: int = 0
    train_wall_s: float = 0.0  # forward, backward and optimizer steps only
    eval_wall_s: float = 0.0  # on_epoch_end (decoding, dev metrics)
    tokens: int = 0  # training tokens this process saw (x world size in tokens_per_s)
    padded_tokens: int = 0  # positions computed, padding included
    threads: int = 0
    batch_order: str = "official"
    attention: str | None = None  # the model's attention kernel (sdpa, eager, ...)
    curve: list[dict] = field(default_factory=list)  # experiments.curve: loss vs steps, tokens
    autocast: str = "none"
    stopped_early: bool = False  # the plateau rule ended training before `epochs`
    converged: bool | None = None  # the plateau rule on the dev history (None: no rule set)
    chance: dict | None = None  # {"metric", "value"}: the constant predictor's dev score
    compiled: bool = False  # training steps ran through torch.compile (train.compile)

    def summary(self) -> dict:
        """What a run record keeps: training and evaluation apart."""
        return {"steps": self.steps, "wall_s": round(self.wall_s, 2),
                "train_wall_s": round(self.train_wall_s, 2),
                "eval_wall_s": round(self.eval_wall_s, 2),
                "tokens_per_s": round(self.tokens_per_s, 1), "tokens": self.tokens,
                "padding_fraction": round(1 - self.tokens / max(1, self.padded_tokens), 3),
                "threads": self.threads, "batch_order": self.batch_order,
                "attention": self.attention,
                "autocast": self.autocast,
                **({} if self.converged is None else
                   {"converged": self.converged, "stopped_early": self.stopped_early}),
                **({} if self.chance is None else {"chance": self.chance}),
                **({"compiled": True} if self.compiled else {}),
                "history": self.history, "resumed_from_step": self.resumed_from,
                "curve": self.curve}


def step_context(device: torch.device | str, autocast: str | None, kernel: str = "auto",
                 frozen: bool = True) -> tuple[Callable[[], contextlib.ExitStack], bool]:
    """What one training forward runs under: bf16 autocast when asked and, on CPU under bf16
    with kernel="auto" for a model with frozen weights, SDPA's math kernel. Why: torch's fused
    CPU flash-attention backward in bf16 took a third of a SmolLM2 LoRA step; the math kernel
    (the composite softmax(QK^T)V that eager attention computes) made LoRA's steps 1.2-1.4x
    faster on 2 threads; FT's moved within the bench's noise, so FT keeps torch's choice
    (`make bench-train`: engine_bf16 against engine_bf16_flash).
    Evaluation and decoding keep torch's choice (flash is as fast forward).
    Returns a factory of per-step contexts and whether the math kernel is forced."""
    if kernel not in ("auto", "default"):
        raise ValueError(f"train.attention_kernel is {kernel!r}: use auto or default")
    kind = torch.device(device).type
    bf16 = autocast == "bf16"
    math_kernel = bf16 and kind == "cpu" and kernel == "auto" and frozen

    def enter() -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=bf16))
        if math_kernel:
            stack.enter_context(sdpa_kernel(SDPBackend.MATH))
        return stack
    return enter, math_kernel


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def make_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable tensors. `fused` (one kernel for every tensor; on CPU about 8x
    faster than the per-tensor loop on SmolLM2 full fine-tuning) gives the for-loop's update to
    float rounding; it needs floating-point tensors on CPU or CUDA, else foreach is used."""
    impls = ("fused", "foreach", "for_loop")
    if cfg.optimizer_impl not in impls:
        raise ValueError(f"train.optimizer_impl={cfg.optimizer_impl!r}: choose one of {impls}")
    params = [p for g in groups for p in g["params"]]
    fusable = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    impl = cfg.optimizer_impl if cfg.optimizer_impl != "fused" or fusable else "foreach"
    kw = {"fused": True} if impl == "fused" else {"foreach": impl == "foreach"}
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, **kw)


def _progress_bar(total: int, initial: int, enabled: bool):
    """tqdm's rate and time left on a terminal; nothing in a log (the [train] lines stay)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, leave=False,
                disable=not (enabled and sys.stdout.isatty()))


def _over_ranks(loss: torch.Tensor, tokens: int, world: int) -> tuple[float, int]:
    """The batch's loss averaged over the ranks (what the averaged gradients descend) and its
    tokens summed, so a distributed run's curve and history read as one process's on the
    whole batch."""
    if world == 1:
        return loss.item(), tokens
    both = torch.stack([loss.detach().double(), torch.tensor(tokens, dtype=torch.float64,
                                                             device=loss.device)])
    torch.distributed.all_reduce(both)
    return both[0].item() / world, int(both[1].item())


def train(model: nn.Module, items: Sequence[Any], collate: Callable[[list], dict],
          loss_fn: LossFn, cfg: TrainConfig, checkpoint: Path | None = None,
          on_step: Callable[[int, dict], None] | None = None,
          on_epoch_end: Callable[[int, nn.Module], dict] | None = None,
          device: torch.device | str = "cpu", stop_after_steps: int = 0,
          monitor: tuple[str, str] | None = None, chance: float | None = None) -> TrainResult:
    """Train `model` on `items`; resumes from `checkpoint` when it exists.

    `on_epoch_end(epoch, model)` may return eval metrics, kept in the history (best epoch).
    `monitor` = (history key, "higher" | "lower"): the dev metric `cfg.patience` watches;
    `chance` its value for the job's best constant prediction: no plateau counts while the
    last `cfg.patience` evaluations have not beaten it (experiments/plateau.py).
    `stop_after_steps` stops early without finishing (tests use it to simulate a kill).
    """
    rank, world = _dist()
    if cfg.autocast not in (None, "none", "bf16"):
        raise ValueError(f"train.autocast is {cfg.autocast!r}: use none or bf16")
    if cfg.patience and monitor is None:
        raise ValueError("train.patience is set, but this task names no dev metric to watch: "
                         "set train.patience=0")
    threads = configure_threads(cfg.threads)
    step_ctx, math_kernel = step_context(device, cfg.autocast, cfg.attention_kernel,
                                         frozen=not all(p.requires_grad for p in model.parameters()))
    attention = getattr(getattr(model, "config", None), "_attn_implementation", None)
    if math_kernel and attention == "sdpa":
        attention = "sdpa (math kernel)"  # what the record says ran
    torch.manual_seed(cfg.seed)
    lengths = [item_length(it) for it in items] if cfg.batch_order != "official" else None

    def batches_of(epoch: int) -> list[list[int]]:
        return epoch_batches(len(items), cfg.batch_size, cfg.seed, epoch, lengths, cfg.batch_order)

    steps_per_epoch = len(batches_of(0)) // cfg.grad_accum
    if steps_per_epoch == 0:
        raise ValueError(f"{len(items)} training items give no full batch of {cfg.batch_size}"
                         f" x {world} ranks x grad_accum {cfg.grad_accum}")
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    warmup = cfg.warmup_steps or int(math.ceil(cfg.warmup_ratio * total))
    sharded = is_sharded(model)
    if bool(cfg.fsdp) != sharded:
        raise ValueError("train.fsdp=true needs a model experiments.sharding.shard_model sharded"
                         if cfg.fsdp else "the model is FSDP-sharded: set train.fsdp=true")
    # after sharding: the optimizer holds the DTensor shards, and updates each rank's own
    opt = make_optimizer(parameter_groups(model, cfg), cfg)
    trained = [p for g in opt.param_groups for p in g["params"]]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(warmup, total))
    if cfg.compile:
        if world > 1:
            raise ValueError("train.compile=true is built and tested for one process: drop it "
                             "for torchrun runs")
        _check_can_compile(device)
    wrapped = model
    if world > 1 and not sharded:  # FSDP already averages gradients over the ranks
        wrapped = nn.parallel.DistributedDataParallel(model)
    if cfg.compile:
        wrapped = torch.compile(wrapped, dynamic=True, backend=COMPILE_BACKEND)

    step, history, start_epoch, skip = 0, [], 0, 0
    # the loss so far of the epoch a checkpoint cuts, so its train_loss covers all its batches
    partial_loss = (0.0, 0)
    curve = LossCurve(every=cfg.log_every or 1)
    if checkpoint is not None and checkpoint.exists():
        state = load_state(checkpoint, model, opt, sched)
        step, history = state["step"], state["history"]
        start_epoch, skip = state["epoch"], state["batch_in_epoch"]
        partial_loss = (float(state.get("epoch_loss_sum", 0.0)), int(state.get("epoch_batches", 0)))
        curve.restore(state.get("curve"))
        if step >= total:  # training had ended (killed while decoding): no epoch to add
            start_epoch = cfg.epochs
        print(f"[train] resumed from {checkpoint} at step {step} (epoch {start_epoch + 1})")
    resumed_from = step

    def save(epoch: int, batch_in_epoch: int) -> None:
        if checkpoint is not None:  # every rank: an FSDP rank writes its own shards
            save_state(checkpoint, model, opt, sched, {
                "step": step, "history": history, "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "epoch_loss_sum": running if batch_in_epoch else 0.0,
                "epoch_batches": n_loss if batch_in_epoch else 0, "curve": curve.state()})

    started, tokens, positions, eval_wall = time.perf_counter(), 0, 0, 0.0

    def plateaued() -> bool:
        key, better = monitor
        series = [h[key] for h in history if isinstance(h.get(key), (int, float))
                  and math.isfinite(h[key])]
        # a patience of p needs p + 1 evaluations: the last p against a best before them
        return plateau(series, cfg.patience, 0.0, max(cfg.min_evaluations, cfg.patience + 1),
                       better, floor=chance).reached

    stopped_early = False

    def result(steps: int) -> TrainResult:
        wall = time.perf_counter() - started
        train_wall = max(wall - eval_wall, 1e-9)
        return TrainResult(steps, wall, tokens * world / train_wall, history, resumed_from,
                           train_wall, eval_wall, tokens, positions, threads, cfg.batch_order,
                           attention,
                           curve.points, cfg.autocast or "none", stopped_early,
                           plateaued() if cfg.patience else None,
                           None if chance is None or monitor is None else
                           {"metric": monitor[0], "value": chance}, bool(cfg.compile))

    bar = _progress_bar(total, step, cfg.progress and rank == 0)
    model.train()
    for epoch in range(start_epoch, min(cfg.epochs, cfg.run_epochs or cfg.epochs)):
        if cfg.patience and plateaued():  # checked here, so a resumed run stops the same way
            stopped_early = True
            print(f"[train] stopped after epoch {epoch}: {monitor[0]} stopped improving "
                  f"(patience {cfg.patience})", flush=True)
            break
        batches = batches_of(epoch)
        running, n_loss = partial_loss if skip else (0.0, 0)
        for b in range(skip, len(batches)):
            if step >= total:
                break
            batch = {k: v.to(device) for k, v in collate([items[i] for i in batches[b]]).items()}
            with step_ctx():
                loss, n_tok = loss_fn(wrapped, batch)
            # the mean over ranks before the check, so every rank stops on one rank's NaN
            real = int(batch["attention_mask"].sum())
            loss_value, all_real = _over_ranks(loss, real, world)
            if not math.isfinite(loss_value):
                raise TrainingDivergedError(
                    f"loss is {loss_value} at step {step} (epoch {epoch + 1}, batch {b}): "
                    "lower the learning rate or check the data; the run is not marked complete")
            (loss / cfg.grad_accum).backward()
            tokens += real
            positions += batch["attention_mask"].numel()
            curve.add_batch(loss_value, all_real)
            running, n_loss = running + loss_value, n_loss + 1
            if (b + 1) % cfg.grad_accum:
                continue
            if cfg.clip_norm:  # on FSDP's DTensor shards, the norm is the whole gradient's
                nn.utils.clip_grad_norm_(trained, cfg.clip_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            curve.after_step(step, sched.get_last_lr()[0])
            if on_step and rank == 0:
                on_step(step, {"train/loss": loss_value, "train/lr": sched.get_last_lr()[0]})
            if rank == 0 and cfg.log_every and step % cfg.log_every == 0:
                rate = tokens / max(1e-9, time.perf_counter() - started - eval_wall)
                bar.set_postfix(loss=f"{running / n_loss:.4f}", tok_s=f"{rate:,.0f}")
                message = (f"[train] step {step}/{total} epoch {epoch + 1} loss "
                           f"{running / n_loss:.4f} lr {sched.get_last_lr()[0]:.2e} {rate:,.0f} tok/s")
                bar.write(message) if not bar.disable else print(message, flush=True)
            if cfg.save_every and step % cfg.save_every == 0:
                save(epoch, b + 1)
            if stop_after_steps and step >= stop_after_steps:
                bar.close()
                return result(step)
        skip = 0
        entry = {"epoch": epoch + 1, "step": step, "train_loss": running / max(1, n_loss)}
        if on_epoch_end is not None:
            model.eval()
            eval_started = time.perf_counter()
            entry.update(on_epoch_end(epoch + 1, model))
            eval_wall += time.perf_counter() - eval_started
            model.train()
            curve.dev(step, entry)
        history.append(entry)
        if rank == 0:  # the epoch's scores in the log: a long run shows where it stands
            scores = ", ".join(f"{k} {v:.4f}" for k, v in entry.items()
                               if isinstance(v, float) and k != "train_loss" and "wall" not in k)
            message = f"[train] epoch {epoch + 1} done: train loss {entry['train_loss']:.4f}" + \
                (f"; {scores}" if scores else "")
            bar.write(message) if not bar.disable else print(message, flush=True)
        save(epoch + 1, 0)
        if step >= total:
            break
    bar.close()
    model.eval()
    return result(step)


@torch.no_grad()
def evaluate_loss(model: nn.Module, items: Sequence[Any], collate: Callable, loss_fn: LossFn,
                  batch_size: int = 8, device: torch.device | str = "cpu") -> float:
    """Token-weighted mean loss over `items` (the official validation loss). Items go in length
    order (the mean does not depend on the order; batches of similar length pad less)."""
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(items)), key=lambda i: item_length(items[i]))
    for i in range(0, len(order), batch_size):
        chunk = [items[j] for j in order[i:i + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk).items()}
        loss, n = loss_fn(model, batch)
        total, count = total + loss.item() * n, count + n
    return total / max(count, 1)
