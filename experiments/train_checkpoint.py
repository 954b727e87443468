"""The training engine's checkpoint: what it holds, who writes it, and how a run resumes.

One path names it (`checkpoints/last.json`). A single-process or DDP run: rank 0 writes one
manifest + safetensors file (experiments/checkpoints.py) with the trainable tensors, AdamW and
scheduler state, the RNG and the loop's position. An FSDP run (experiments/sharding.py): every
rank writes its own shards and RNG state into a new directory beside it, then rank 0 swaps in
`last.json` as a small manifest naming that directory, so a kill at any moment leaves the old
checkpoint or the new one, never a mix; older directories go once the new one is named.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from lora_core.state import copy_strict

from . import sharding
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint

SHARDED_FORMAT = "lora-repro-sharded-checkpoint/1"
# the loop's position and history, which every checkpoint holds beside the tensors
LOOP_FIELDS = ("step", "history", "epoch", "batch_in_epoch")


def _rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG: the CPU generator, and the current GPU's where there is one (dropout
    on a GPU draws from it)."""
    state = {"rng": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda_rng"])


def _manifest_format(path: Path) -> str | None:
    """The `format` of the manifest at `path` (None when it is not a JSON object)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return manifest.get("format") if isinstance(manifest, dict) else None


def _unfit(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(f"{path}: does not fit this run ({type(err).__name__}: {err}); move "
                           f"{path.parent} away to restart the run from the beginning")


def save_state(path: Path, model: nn.Module, opt, sched, loop: dict) -> None:
    """Write the checkpoint of this moment of training (on every rank: each does its part)."""
    if sharding.is_sharded(model):
        _save_sharded(path, model, opt, sched, loop)
        return
    if dist.is_initialized() and dist.get_rank() != 0:
        return  # DDP: every rank holds the same weights and optimizer state
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    # safetensors + JSON: no pickle, so reading one runs no code
    save_checkpoint(path, {"trainable": trainable, "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), **_rng_state(), **loop})


def load_state(path: Path, model: nn.Module, opt, sched) -> dict:
    """Put the checkpoint's weights, optimizer, schedule and RNG back; returns the loop fields.
    Errors name the file, and say how to resume a checkpoint the other kind of run wrote."""
    sharded_run, found = sharding.is_sharded(model), _manifest_format(path)
    if sharded_run and found != SHARDED_FORMAT:
        raise CheckpointError(f"{path} was written by a run without train.fsdp (format {found!r})"
                              ": resume it without train.fsdp=true, or move "
                              f"{path.parent} away to start over")
    if not sharded_run and found == SHARDED_FORMAT:
        raise CheckpointError(f"{path} was written by an FSDP run: resume it with "
                              "train.fsdp=true on as many processes, or move "
                              f"{path.parent} away to start over")
    if sharded_run:
        return _load_sharded(path, model, opt, sched)
    state = load_checkpoint(path)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    try:
        copy_strict(model, state["trainable"], trainable, str(path), what="checkpoint")
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        _set_rng_state(state)
        missing = [k for k in LOOP_FIELDS if k not in state]
        if missing:
            raise KeyError(f"no {missing}")
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise _unfit(path, err) from None
    return state


def _save_sharded(path: Path, model: nn.Module, opt, sched, loop: dict) -> None:
    # the directory is named by the loop's position, the same on every rank, and no two
    # saves of one run share a position
    shards = path.with_name(f"{path.stem}-step{loop['step']}-at{loop['epoch']}.{loop['batch_in_epoch']}")
    sharding.save_checkpoint(shards, model, opt, {"scheduler": sched.state_dict(), **loop},
                             rank_state=_rng_state())
    if dist.get_rank() == 0:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"format": SHARDED_FORMAT, "shards": shards.name,
                                   "world_size": dist.get_world_size()}) + "\n")
        os.replace(tmp, path)  # the commit point
        for old in path.parent.glob(f"{path.stem}-step*"):
            if old.is_dir() and old != shards:
                shutil.rmtree(old, ignore_errors=True)
    dist.barrier()


def _load_sharded(path: Path, model: nn.Module, opt, sched) -> dict:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    name = manifest.get("shards")
    if not isinstance(name, str) or Path(name).name != name or not (path.parent / name).is_dir():
        raise CheckpointError(f"{path}: its `shards` field {name!r} is not a directory beside "
                              f"it; move {path.parent} away to restart the run")
    if manifest.get("world_size") != dist.get_world_size():
        raise CheckpointError(f"{path} was written by {manifest.get('world_size')} ranks, this run "
                              f"has {dist.get_world_size()}: resume with as many processes "
                              f"(torchrun --nproc_per_node={manifest.get('world_size')})")
    shards = path.parent / name
    try:
        loop = sharding.load_checkpoint(shards, model, opt)
        sched.load_state_dict(loop.pop("scheduler"))
        _set_rng_state(sharding.load_rank_state(shards))
        missing = [k for k in LOOP_FIELDS if k not in loop]
        if missing:
            raise KeyError(f"no {missing}")
    except (KeyError, TypeError, RuntimeError, ValueError, OSError) as err:
        raise _unfit(shards, err) from None
    return loop
