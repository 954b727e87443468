"""A projection that holds several named LoRA updates and applies one per group of batch rows.

`RoutedLinear` wraps a frozen `nn.Linear` or GPT-2 `Conv1D`: h = W0·x + s_n · B_n·A_n·x for the
adapter n routed to x's row (none: h = W0·x). A fused projection (GPT-2 `c_attn`) stores its
per-slice B_k in one block matrix B of shape (out, n_on · r), zero outside the enabled slices,
so one matmul gives every slice's update and a disabled slice (K) gets exactly 0. Merged
switching (W0 + ΔW_a -> W0 + ΔW_b) is exact: the few weights where W - ΔW does not round back
to W0 are kept aside when merging and restored when unmerging, so no error accumulates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .layers import linear_shape

_ALL = slice(None)


@dataclass
class LowRankUpdate:
    """One adapter's update of one projection: ΔW = scaling · B·A in (out, in) layout.

    A is (n_on · r, in); B is (out, n_on · r), block-diagonal over the enabled output slices.
    """

    A: torch.Tensor
    B: torch.Tensor
    scaling: float

    def delta_weight(self) -> torch.Tensor:
        return (self.B @ self.A) * self.scaling

    def low_rank(self, x: torch.Tensor) -> torch.Tensor:
        """B·A·x, without the scaling (the caller fuses it into its add)."""
        return F.linear(F.linear(x, self.A), self.B)

    def to(self, **kw) -> "LowRankUpdate":
        return LowRankUpdate(self.A.to(**kw), self.B.to(**kw), self.scaling)


def block_update(A: torch.Tensor, B: torch.Tensor, r: int, scaling: float, out_features: int,
                 enable: Sequence[bool] | None) -> LowRankUpdate:
    """Build a `LowRankUpdate` from this suite's (or PEFT's) A and B.

    With a slice mask (loralib's MergedLinear layout: A stacks the n_on enabled slices' A_k,
    B stacks their B_k), B is spread into the block matrix described above.
    """
    if enable is None or len(enable) == 1:
        return LowRankUpdate(A, B, scaling)
    # A fused projection with every slice on still has one rank-r update per slice.
    n_on, slice_out = sum(enable), out_features // len(enable)
    full = B.new_zeros(out_features, n_on * r)
    k = 0
    for s, on in enumerate(enable):
        if on:
            full[s * slice_out:(s + 1) * slice_out, k * r:(k + 1) * r] = B[k * slice_out:(k + 1) * slice_out]
            k += 1
    return LowRankUpdate(A, full, scaling)


class RoutedLinear(nn.Module):
    """A frozen projection plus named low-rank updates, chosen per batch row by `state`.

    `state` is shared by every `RoutedLinear` of one model (see `lora_core.multi_adapter`):
    `state.groups_for(x, layer)` gives [(name, rows)] where rows is a slice or an index
    tensor; `state.merged` names the adapter folded into the weight (forward is then W·x only).
    """

    def __init__(self, base_layer: nn.Module, state):
        super().__init__()
        self.fan_in_fan_out, in_features, out_features = linear_shape(base_layer, "named adapters")
        self.base_layer = base_layer
        self.in_features, self.out_features = in_features, out_features
        self.updates: dict[str, LowRankUpdate] = {}
        # A plain attribute, not a submodule: the state is shared, not owned.
        object.__setattr__(self, "state", state)
        self._merged: str | None = None
        self._fixups: tuple[torch.Tensor, torch.Tensor] | None = None
        base_layer.weight.requires_grad_(False)

    def add(self, name: str, update: LowRankUpdate) -> None:
        w = self.base_layer.weight
        self.updates[name] = update.to(device=w.device, dtype=w.dtype)

    def _apply(self, fn, recurse=True):
        # .to() / .cuda() move the updates with the weights (they are not buffers, so the
        # model's state_dict stays the base model's).
        super()._apply(fn, recurse)
        self.updates = {n: LowRankUpdate(fn(u.A), fn(u.B), u.scaling)
                        for n, u in self.updates.items()}
        if self._fixups is not None:  # module.to(dtype) leaves the integer index alone
            self._fixups = (fn(self._fixups[0]), fn(self._fixups[1]))
        return self

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.state.merged is not None:
            return result
        for name, rows in self.state.groups_for(x, self):
            update = self.updates.get(name)
            if update is None:
                continue  # this adapter does not adapt this projection
            # In place on the base output (a linear layer's backward does not need its output),
            # with the scaling fused into the add.
            if isinstance(rows, slice):  # contiguous rows: a view, no gather
                low = update.low_rank(x if rows == _ALL else x[rows])
                result[rows].add_(low.to(result.dtype), alpha=update.scaling)
            else:
                low = update.low_rank(x.index_select(0, rows))
                result.index_add_(0, rows, low.to(result.dtype), alpha=update.scaling)
        return result

    # ------------------------------------------------------------------ merging
    def _delta(self, name: str) -> torch.Tensor:
        delta = self.updates[name].delta_weight()
        return delta.T if self.fan_in_fan_out else delta

    @torch.no_grad()
    def merge(self, name: str) -> None:
        """W0 -> fl(W0 + ΔW_name), remembering the weights `unmerge` could not round back."""
        if self._merged is not None:
            raise RuntimeError(f"{self._merged!r} is already merged here; unmerge first")
        if name not in self.updates:
            return
        w = self.base_layer.weight
        w0 = w.detach().clone()
        delta = self._delta(name)
        w.add_(delta)
        lost = (w - delta).ne_(w0).flatten().nonzero().squeeze(1)
        if w.numel() < 2 ** 31:  # half the memory of int64 for the kept positions
            lost = lost.to(torch.int32)
        self._fixups = (lost, w0.flatten()[lost].clone())
        self._merged = name

    @torch.no_grad()
    def unmerge(self) -> None:
        """fl(W0 + ΔW) -> W0 exactly: subtract ΔW, then restore the kept weights."""
        if self._merged is None:
            return
        w = self.base_layer.weight
        w.sub_(self._delta(self._merged))
        index, values = self._fixups
        w.view(-1).index_copy_(0, index.long(), values)
        self._merged, self._fixups = None, None

    def extra_repr(self) -> str:
        return f"adapters={sorted(self.updates)}, merged={self._merged}"
