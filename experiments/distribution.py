"""How a run is spread over processes: one process, DDP (the engine wraps the model) or FSDP
(`train.fsdp=true`: the model sharded here before training, gathered whole after it).

The pipeline asks three things of it: shard the model once the method is applied, the record's
`distributed` entry, and after training a model rank 0 can save, decode and score alone (the
other ranks stop there): for FSDP the full weights gathered into an unsharded copy, so the
adapter or trained tensors land in the same files as a single-device run's and decoding runs
on ordinary weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from . import sharding


@dataclass
class Distribution:
    world: int
    fsdp: bool
    _skeleton: nn.Module | None = field(default=None, repr=False)

    @classmethod
    def of_run(cls, cfg, world: int) -> "Distribution":
        fsdp = bool(cfg.train.get("fsdp"))
        if fsdp and world < 2:
            raise ValueError("train.fsdp=true shards the model over several processes, and this "
                             "run has one: start it with torchrun --nproc_per_node=N (N >= 2), "
                             "or a submitit job of several tasks, or drop train.fsdp")
        return cls(world=world, fsdp=fsdp)

    def shard(self, model: nn.Module, family: str) -> None:
        """FSDP: shard `model` in place (one unit per block), keeping a meta-device copy of its
        unsharded shape for `full_model`. Otherwise nothing: the engine wraps DDP itself."""
        if self.fsdp:
            self._skeleton = sharding.meta_copy(model)
            sharding.shard_model(model, family)

    def summary(self) -> dict:
        """The record's `distributed`: world size and strategy (single, ddp or fsdp)."""
        strategy = "fsdp" if self.fsdp else ("ddp" if self.world > 1 else "single")
        backend = (torch.distributed.get_backend() if self.world > 1
                   and torch.distributed.is_initialized() else None)
        return {"world_size": self.world, "strategy": strategy, "backend": backend}

    def full_model(self, model: nn.Module) -> nn.Module:
        """After training, on every rank: the model rank 0 goes on with (FSDP: the gathered
        unsharded copy on rank 0, the sharded model on the others, which stop there)."""
        if not self.fsdp:
            return model
        full = sharding.gather_model(model, self._skeleton)
        self._skeleton = None
        return model if full is None else full.eval()
