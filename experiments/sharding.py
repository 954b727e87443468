"""Sharded training for models that do not fit one device: PyTorch's own FSDP (`fully_shard`)
over the ranks torchrun (or a submitit job, experiments/cluster.py) started.

Each transformer block is one FSDP unit and the root holds the rest (embeddings, final norm,
head): between uses a unit's parameters live as 1/N shards on each rank, frozen ones included
(LoRA's W0), and are all-gathered for its forward and backward; gradients are reduce-scattered
(averaged over ranks), so AdamW updates each rank's shard as one process would update the whole.
Checkpoints go through torch.distributed.checkpoint (each rank writes its shards; trainable
tensors and AdamW state only for LoRA), and the adapter is gathered and written in the same
files as a single-device run (lora_core.save_adapter's format).

Not yet wired into experiments/engine.py (another change): see `shard_model` for what the
engine has to do differently.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


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


def _state(model: nn.Module, optimizer) -> tuple[dict, dict]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    # frozen weights come from the pretrained checkpoint again; only what trains is saved
    return get_state_dict(model, optimizer, options=StateDictOptions(ignore_frozen_params=True))


def save_checkpoint(directory: str | Path, model: nn.Module, optimizer, extra: dict) -> None:
    """Each rank's shards of the trainable tensors and AdamW state, plus `extra` (step, epoch,
    scheduler and RNG state: plain values, written as JSON by rank 0)."""
    import torch.distributed.checkpoint as dcp

    model_state, optim_state = _state(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(directory))
    if dist.get_rank() == 0:
        (Path(directory) / "extra.json").write_text(json.dumps(extra))
    dist.barrier()


def load_checkpoint(directory: str | Path, model: nn.Module, optimizer) -> dict:
    """Put a `save_checkpoint` back into a model sharded the same way; returns its `extra`."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    model_state, optim_state = _state(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(directory))
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optim"],
                   # strict=False: the frozen weights are not in the checkpoint (see _state)
                   options=StateDictOptions(ignore_frozen_params=True, strict=False))
    return json.loads((Path(directory) / "extra.json").read_text())
