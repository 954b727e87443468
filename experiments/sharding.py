"""Sharded training for models that do not fit one device: PyTorch's own FSDP (`fully_shard`)
over the ranks torchrun (or a submitit job, experiments/cluster.py) started.

Each transformer block is one FSDP unit and the root holds the rest (embeddings, final norm,
head): between uses a unit's parameters live as 1/N shards on each rank, frozen ones included
(LoRA's W0), and are all-gathered for its forward and backward; gradients are reduce-scattered
(averaged over ranks), so AdamW updates each rank's shard as one process would update the whole.
Checkpoints: each rank writes its own shards of the trainable tensors and their AdamW state to
a safetensors file (torch.distributed.checkpoint would pickle its metadata, and no file the
suite reads may run code), so a run resumes on as many ranks as wrote it; the adapter is
gathered and written in the same files as a single-device run (lora_core.save_adapter's).
After training, `gather_model` puts the full weights into an unsharded copy of the model
(`meta_copy`, taken before sharding), from which rank 0 saves, decodes and scores alone.

`train.fsdp=true` turns it on for a run (experiments/distribution.py wires it into the
pipeline; the engine skips DDP for a sharded model and checkpoints through
experiments/train_checkpoint.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


def is_sharded(model: nn.Module) -> bool:
    """Whether `fully_shard` manages `model` (its parameters are DTensor shards)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def _mesh():
    from torch.distributed.device_mesh import init_device_mesh

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return init_device_mesh(device, (dist.get_world_size(),))


def shard_model(model: nn.Module, family: str | None = None, mesh=None) -> nn.Module:
    """Shard `model` in place (after the method is applied, so LoRA modules are sharded with
    their block). The engine then must: not wrap it in DistributedDataParallel (FSDP already
    averages gradients), build AdamW after this call (parameters become DTensor shards), and
    save and load checkpoints with `save_checkpoint` / `load_checkpoint` below."""
    from torch.distributed.fsdp import fully_shard

    from lora_core.families import FAMILIES, find_blocks

    if not dist.is_initialized():
        raise RuntimeError("shard_model needs torch.distributed initialised: start the run with "
                           "torchrun --nproc_per_node=N (or a multi-task submitit job)")
    family = family or model.config.model_type
    if family not in FAMILIES:
        raise ValueError(f"no block layout for family {family!r}: known {sorted(FAMILIES)}")
    mesh = mesh or _mesh()
    _, blocks = find_blocks(model, FAMILIES[family])
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters are on the `meta` device (no memory) and whose
    buffers are real: the unsharded shape `gather_model` fills after training. Take it after
    the method is applied and before `shard_model`. Tied parameters stay tied."""
    import copy

    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    return copy.deepcopy(model, memo)


def gather_model(model: nn.Module, skeleton: nn.Module) -> nn.Module | None:
    """Every parameter of the sharded `model` gathered whole, one tensor at a time, into its
    `meta_copy` (a collective: call on all ranks). Rank 0 gets the filled copy, an ordinary
    module of the single-device type; the other ranks None."""
    rank = dist.get_rank()
    full = {}
    for name, p in model.named_parameters():
        tensor = p.detach()
        tensor = tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor
        if rank == 0:
            full[name] = tensor
    if rank != 0:
        return None
    meta = dict(skeleton.named_parameters())
    if meta.keys() != full.keys():
        raise ValueError("the meta copy does not match the sharded model: take it with "
                         "meta_copy(model) after the method is applied and before shard_model")
    # by identity, so that every module holding a tied parameter gets the gathered one
    new = {id(meta[n]): nn.Parameter(t, requires_grad=meta[n].requires_grad)
           for n, t in full.items()}
    for module in skeleton.modules():
        for key, p in module._parameters.items():
            if p is not None and id(p) in new:
                module._parameters[key] = new[id(p)]
    return skeleton


def full_tensors(model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """The named parameters gathered whole on every rank (a collective: call on all ranks)."""
    params = dict(model.named_parameters())
    out = {}
    for name in names:
        p = params[name].detach()
        out[name] = (p.full_tensor() if hasattr(p, "full_tensor") else p).cpu().contiguous()
    return out


def save_adapter_sharded(model: nn.Module, config, directory: str | Path) -> Path | None:
    """The adapter of a sharded model, in lora_core.save_adapter's files; rank 0 writes."""
    from safetensors.torch import save_file

    from lora_core.state import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_state_dict

    tensors = full_tensors(model, list(adapter_state_dict(model, config)))
    if dist.get_rank() != 0:
        return None
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / ADAPTER_WEIGHTS), metadata={"format": "lora-repro/1"})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return directory


def _local(t: torch.Tensor) -> torch.Tensor:
    return (t.to_local() if hasattr(t, "to_local") else t).detach().cpu().contiguous()


def _like(local: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """`local` as this rank's shard of a tensor sharded like `param` (as is, if not sharded)."""
    if not hasattr(param, "device_mesh"):
        return local.to(param.device)
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(local.to(param.to_local().device), param.device_mesh,
                              param.placements, shape=param.shape, stride=param.stride())


def _shard_file(directory: Path, rank: int, world: int) -> Path:
    return Path(directory) / f"rank{rank}-of-{world}.safetensors"


def save_checkpoint(directory: str | Path, model: nn.Module, optimizer, extra: dict,
                    rank_state: dict[str, torch.Tensor] | None = None) -> None:
    """Each rank writes its own shards of the trainable tensors and their AdamW state
    (`rank<r>-of-<N>.safetensors`: tensors only, no pickle) and its `rank_state` (e.g. its RNG
    state; `load_rank_state` reads it back), rank 0 `extra.json` (step, scheduler state, the
    optimizer's hyper-parameters: plain values). Frozen weights are not saved: they come from
    the pretrained checkpoint again."""
    from safetensors.torch import save_file

    rank, world = dist.get_rank(), dist.get_world_size()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors, sharded = {}, []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        tensors[f"param/{name}"] = _local(p)
        for key, value in optimizer.state.get(p, {}).items():
            tensors[f"optim/{name}/{key}"] = _local(value)
            if hasattr(value, "device_mesh"):
                sharded.append(f"optim/{name}/{key}")
    for key, value in (rank_state or {}).items():
        tensors[f"rank/{key}"] = value.detach().cpu().contiguous()
    target = _shard_file(directory, rank, world)
    save_file(tensors, str(target.with_suffix(".tmp")))
    target.with_suffix(".tmp").replace(target)  # a shard file is whole or absent
    if rank == 0:
        groups = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        meta = {"world_size": world, "param_groups": groups, "sharded_state": sharded,
                "extra": extra}
        tmp = directory / "extra.json.tmp"
        tmp.write_text(json.dumps(meta, default=list))
        tmp.replace(directory / "extra.json")
    dist.barrier()


def load_checkpoint(directory: str | Path, model: nn.Module, optimizer) -> dict:
    """Put a `save_checkpoint` back into a model sharded over as many ranks; returns `extra`."""
    from safetensors.torch import load_file

    rank, world = dist.get_rank(), dist.get_world_size()
    meta = json.loads((Path(directory) / "extra.json").read_text())
    if meta["world_size"] != world:
        raise ValueError(f"{directory} was written by {meta['world_size']} ranks, this run has "
                         f"{world}: resume with --nproc_per_node={meta['world_size']}")
    tensors = load_file(str(_shard_file(directory, rank, world)))
    sharded = set(meta["sharded_state"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            key = f"param/{name}"
            if key not in tensors:
                raise KeyError(f"{directory}: no {key}; was it written for this method and model?")
            (p.to_local() if hasattr(p, "to_local") else p).copy_(tensors[key])
            prefix = f"optim/{name}/"
            state = {k[len(prefix):]: (_like(v, p) if k in sharded else v)
                     for k, v in tensors.items() if k.startswith(prefix)}
            if state:
                optimizer.state[p] = state
    for group, saved in zip(optimizer.param_groups, meta["param_groups"], strict=True):
        group.update({k: tuple(v) if isinstance(group.get(k), tuple) else v
                      for k, v in saved.items()})
    return meta["extra"]


def load_rank_state(directory: str | Path) -> dict[str, torch.Tensor]:
    """This rank's `rank_state` from a `save_checkpoint` directory."""
    from safetensors.torch import load_file

    tensors = load_file(str(_shard_file(directory, dist.get_rank(), dist.get_world_size())))
    return {k.removeprefix("rank/"): v for k, v in tensors.items() if k.startswith("rank/")}
