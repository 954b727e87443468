"""LoRA layers: a low-rank update B·A beside a frozen weight, as in Hu et al. (2021), §4.

`LoRALinear` wraps `nn.Linear`, transformers' `Conv1D` (weight stored (in, out)) and fused
projections with a per-slice mask; `LoRAEmbedding` wraps `nn.Embedding`. Behaviour follows
loralib 0.1.2 (A Kaiming-uniform, B zero; embeddings the other way round; dropout on the LoRA
input only), so outputs and counts match the official code.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _is_conv1d(module: nn.Module) -> bool:
    # transformers' Conv1D (GPT-2) stores its weight as (in, out); matched by name so that
    # lora_core need not import transformers.
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def linear_shape(base_layer: nn.Module, wrapper: str) -> tuple[bool, int, int]:
    """(fan_in_fan_out, in_features, out_features) of an `nn.Linear` or a transformers `Conv1D`
    (weight stored (in, out)); `wrapper` names who asks, for the error."""
    if _is_conv1d(base_layer):
        in_features, out_features = base_layer.weight.shape
        return True, in_features, out_features
    if isinstance(base_layer, nn.Linear):
        out_features, in_features = base_layer.weight.shape
        return False, in_features, out_features
    raise TypeError(f"{wrapper} takes an nn.Linear or transformers' Conv1D, "
                    f"not {type(base_layer).__name__}")


class LoRALayer(nn.Module):
    """Marker base: every module holding `lora_A` / `lora_B` and a frozen `base_layer`."""

    base_layer: nn.Module
    r: int
    alpha: float
    scaling: float
    merged: bool

    def delta_weight(self) -> torch.Tensor:
        """ΔW = scaling · B·A in the base layer's own weight layout."""
        raise NotImplementedError

    @torch.no_grad()
    def merge(self) -> None:
        """Fold ΔW into the base weight; forward then costs what the base layer costs."""
        if not self.merged:
            self.base_layer.weight.add_(self.delta_weight().to(self.base_layer.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take ΔW back out of the base weight (switching tasks: W - BA + B'A')."""
        if self.merged:
            self.base_layer.weight.sub_(self.delta_weight().to(self.base_layer.weight.dtype))
            self.merged = False


class LoRALinear(LoRALayer):
    """h = W0·x + (alpha / r) · B·A·dropout(x) for a linear or Conv1D layer.

    Args:
        base_layer: the frozen `nn.Linear` or `Conv1D` (its weight and bias are not copied).
        r: rank of the update (> 0).
        alpha: scale numerator; the update is multiplied by alpha / r (paper §4.1).
        dropout: dropout probability on the LoRA branch's input.
        enable: for fused projections (GPT-2 `c_attn` = [Wq; Wk; Wv]), one flag per equal
            slice of the output; disabled slices get no update at all (the K slice of ΔW is
            exactly zero, as loralib's MergedLinear). `None` adapts the whole output.

    Shapes (loralib's): A is (r · n_on, in), B is (out_slice · n_on, r), with n_on the number
    of enabled slices; each slice k has its own A_k (rows k·r..) and B_k (rows k·out_slice..).
    """

    def __init__(self, base_layer: nn.Module, r: int, alpha: float = 1.0, dropout: float = 0.0,
                 enable: Sequence[bool] | None = None):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank r must be > 0, got r={r}")
        self.fan_in_fan_out, in_features, out_features = linear_shape(base_layer, "LoRALinear")
        enable = list(enable) if enable is not None else [True]
        if out_features % len(enable):
            raise ValueError(f"enable has {len(enable)} slices, which does not divide "
                             f"out_features={out_features}")
        if not any(enable):
            raise ValueError("enable turns every slice off: nothing would be adapted")
        self.base_layer = base_layer
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.in_features, self.out_features = in_features, out_features
        self.enable = enable
        self.n_on = sum(enable)
        self.slice_out = out_features // len(enable)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        factory = dict(device=base_layer.weight.device, dtype=base_layer.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r * self.n_on, in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(self.slice_out * self.n_on, r, **factory))
        # Output rows that receive an update; None when the whole output is adapted.
        self._full = self.n_on == len(enable)
        if not self._full:
            index = [k * self.slice_out + i for k, on in enumerate(enable) if on
                     for i in range(self.slice_out)]
            self.register_buffer("lora_index", torch.tensor(index, device=factory["device"]),
                                 persistent=False)
        self.merged = False
        base_layer.weight.requires_grad_(False)
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        if self.lora_A.is_meta:
            return
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def _blocks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A as (n_on, r, in) and B as (n_on, out_slice, r)."""
        return (self.lora_A.view(self.n_on, self.r, self.in_features),
                self.lora_B.view(self.n_on, self.slice_out, self.r))

    def _scatter(self, update: torch.Tensor) -> torch.Tensor:
        """Place the enabled slices' rows (last dim) into a zero tensor of full width."""
        if self._full:
            return update
        full = update.new_zeros(*update.shape[:-1], self.out_features)
        return full.index_copy_(full.dim() - 1, self.lora_index, update)

    def _full_width_B(self) -> torch.Tensor:
        """scaling · B laid out as one (out, r · n_on) matrix: slice k's B_k in its own output
        rows and its own r columns, zeros elsewhere. One matmul of the LoRA hidden state with
        it gives every slice's update at full width, the disabled slices' columns exactly zero
        (their rows of this matrix are zero constants, not parameters), at PEFT's cost for a
        whole-block update: no scatter of the (tokens, out) update, no extra pass over it."""
        _, B = self._blocks()
        blocks = torch.block_diag(*(B[k] * self.scaling for k in range(self.n_on)))
        if self._full:
            return blocks
        full = blocks.new_zeros(self.out_features, self.r * self.n_on)
        return full.index_copy(0, self.lora_index, blocks)

    def delta_weight(self) -> torch.Tensor:
        A, B = self._blocks()
        delta = torch.bmm(B, A).reshape(self.n_on * self.slice_out, self.in_features)
        delta = self._scatter(delta.T).T * self.scaling  # (out, in)
        return delta.T if self.fan_in_fan_out else delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        hidden = F.linear(self.lora_dropout(x), self.lora_A)  # (..., r · n_on)
        if self._full and self.n_on == 1:
            update = F.linear(hidden, self.lora_B) * self.scaling
        else:  # slices of a fused projection: scaling is folded into the small B matrix
            update = F.linear(hidden, self._full_width_B())
        return result + update.to(result.dtype)

    def extra_repr(self) -> str:
        mask = "" if self._full else f", enable={self.enable}"
        return f"r={self.r}, alpha={self.alpha}{mask}, merged={self.merged}"


class LoRAEmbedding(LoRALayer):
    """e = E[x] + (alpha / r) · A[:, x]ᵀ·Bᵀ for an `nn.Embedding` (loralib's Embedding).

    A is (r, num_embeddings) and starts at zero; B is (embedding_dim, r) and starts N(0, 1),
    the reverse of the linear case, as in loralib. There is no dropout on this path.
    """

    def __init__(self, base_layer: nn.Embedding, r: int, alpha: float = 1.0):
        super().__init__()
        if r <= 0:
            raise ValueError(f"LoRA rank r must be > 0, got r={r}")
        if not isinstance(base_layer, nn.Embedding):
            raise TypeError(f"LoRAEmbedding wraps nn.Embedding, not {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        factory = dict(device=base_layer.weight.device, dtype=base_layer.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base_layer.num_embeddings, **factory))
        self.lora_B = nn.Parameter(torch.empty(base_layer.embedding_dim, r, **factory))
        self.merged = False
        base_layer.weight.requires_grad_(False)
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        if self.lora_A.is_meta:
            return
        nn.init.zeros_(self.lora_A)
        nn.init.normal_(self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A).T * self.scaling  # (num_embeddings, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if self.merged:
            return result
        base = self.base_layer
        after_A = F.embedding(x, self.lora_A.T, base.padding_idx, base.max_norm,
                              base.norm_type, base.scale_grad_by_freq, base.sparse)
        return result + (after_A @ self.lora_B.T) * self.scaling

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"
