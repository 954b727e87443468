"""Bottleneck adapters, the paper's Adapter^H, Adapter^L, Adapter^P and Adapter^D baselines.

An adapter is x + up(act(down(x))); it is placed by wrapping an existing module (module, then
adapter), so at run time it costs its own three small layers and one extra module call.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from .families import Family, family_of, find_blocks, get_submodule_or_error
from .lora import set_trainable_modules

ACTIVATIONS = {"relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU,
               "tanh": nn.Tanh}
# Where an adapter can sit: after the attention output projection, after the MLP output
# projection (both before the residual), or on the block's output (after the residual).
PLACEMENTS = ("attn_out", "mlp_out", "block_out")


def adapter_parameter_count(n_adapters: int, d_model: int, r: int, n_layer_norms: int = 0) -> int:
    """The paper's |Θ| = L̂_Adpt·(2·d·r + r + d) + 2·L̂_LN·d (§5.1)."""
    return n_adapters * (2 * d_model * r + r + d_model) + 2 * n_layer_norms * d_model


def bottleneck_for_budget(budget: float, n_adapters: int, d_model: int,
                          n_layer_norms: int = 0) -> int:
    """The integer r whose adapter count is nearest to `budget` (e.g. Table 1's 0.5M)."""
    fixed = n_adapters * d_model + 2 * n_layer_norms * d_model
    exact = (budget - fixed) / (n_adapters * (2 * d_model + 1))
    candidates = {max(1, int(exact)), max(1, int(exact) + 1)}
    return min(sorted(candidates), key=lambda r: abs(
        adapter_parameter_count(n_adapters, d_model, r, n_layer_norms) - budget))


class Adapter(nn.Module):
    """h = x + W_up·act(W_down·x + b_down) + b_up (Houlsby et al., 2019).

    Args:
        d_model: width of the hidden states it reads and writes.
        r: bottleneck size.
        activation: one of ACTIVATIONS (the official NLU fork uses swish for Houlsby, ReLU
            for Pfeiffer; Li & Liang's GPT-2 adapters use ReLU).

    Parameters: 2·d·r + r + d. `down` keeps nn.Linear's default init; `up` (weight and bias)
    starts at zero, so the adapted model equals the base model at init. Houlsby et al. use a
    near-identity init (small random up-projection); zero is its limit and what AdapterHub's
    Pfeiffer config does.
    """

    def __init__(self, d_model: int, r: int, activation: str = "relu",
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        if r <= 0:
            raise ValueError(f"adapter bottleneck r must be > 0, got r={r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"adapter activation {activation!r}: choose one of {sorted(ACTIVATIONS)}")
        self.d_model, self.r = d_model, r
        self.down = nn.Linear(d_model, r, device=device, dtype=dtype)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(r, d_model, device=device, dtype=dtype)
        if not self.up.weight.is_meta:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(x)))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, r={self.r}"


class LayerNormAdapter(Adapter):
    """h = x + W_up·act(W_down·LN(x) + b_down) + b_up: Lin et al.'s adapter with its own
    trainable LayerNorm (2·d more parameters), as Li & Liang's GPT-2 code has it.

    A separate class rather than a flag, so neither forward pays for a branch.
    """

    def __init__(self, d_model: int, r: int, activation: str = "relu", eps: float = 1e-5,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__(d_model, r, activation, device=device, dtype=dtype)
        self.norm = nn.LayerNorm(d_model, eps=eps, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(self.norm(x))))


class AdaptedModule(nn.Module):
    """y = adapter(base_layer(x)) for a one-input module (a projection or a LayerNorm)."""

    def __init__(self, base_layer: nn.Module, adapter: Adapter):
        super().__init__()
        self.base_layer = base_layer
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base_layer(x))


class AdaptedBlock(nn.Module):
    """y = adapter(block(...)) for a pre-LN block that returns its hidden states as a tensor
    (GPT-2 and Llama in transformers 5), so the adapter sees the output after the residual.

    transformers records `output_hidden_states` with hooks on the block class, so those come
    from the wrapped block, before its adapter; the model's outputs themselves are adapted.
    """

    def __init__(self, block: nn.Module, adapter: Adapter):
        super().__init__()
        self.block = block
        self.adapter = adapter

    def forward(self, *args, **kwargs) -> torch.Tensor:
        return self.adapter(self.block(*args, **kwargs))


def _hidden_size(model: nn.Module, blocks: nn.ModuleList, fam: Family) -> int:
    config = getattr(model, "config", None)
    for key in ("hidden_size", "n_embd", "d_model"):
        if config is not None and isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    out = get_submodule_or_error(blocks[0], fam.mlp_out, f"{fam.name} block 0")
    return out.weight.shape[1] if type(out).__name__ == "Conv1D" else out.weight.shape[0]


def _layer_norm_eps(model: nn.Module) -> float:
    config = getattr(model, "config", None)
    for key in ("layer_norm_epsilon", "layer_norm_eps", "rms_norm_eps"):
        value = getattr(config, key, None)
        if isinstance(value, float):
            return value
    return 1e-5


def adapter_layers(model: nn.Module) -> dict[str, Adapter]:
    return {n: m for n, m in model.named_modules() if isinstance(m, Adapter)}


def apply_adapters(model: nn.Module, r: int, placements: Sequence[str], layer_norm: bool = False,
                   activation: str = "relu", layers: Iterable[int] | None = None,
                   family: str | None = None, trainable_modules: Iterable[str] = ()) -> nn.Module:
    """Insert one adapter per placement in each chosen block, then train only the adapters
    (and `trainable_modules`, the task heads). Returns the model, changed in place.

    placements: any of PLACEMENTS. layers: block indices (None = all). layer_norm: give each
    adapter its own trainable LayerNorm (Adapter^L).
    """
    fam = family_of(model, family)
    unknown = [p for p in placements if p not in PLACEMENTS]
    if unknown or not placements:
        raise ValueError(f"adapter placements {list(placements)}: choose from {PLACEMENTS}")
    blocks_name, blocks = find_blocks(model, fam)
    d_model = _hidden_size(model, blocks, fam)
    chosen = range(len(blocks)) if layers is None else list(layers)
    ref = next(model.parameters())
    factory = dict(device=ref.device, dtype=ref.dtype)
    for i in chosen:
        if not 0 <= i < len(blocks):
            raise ValueError(f"adapter layer index {i} is outside 0..{len(blocks) - 1}")
        for placement in placements:
            adapter = (LayerNormAdapter(d_model, r, activation, _layer_norm_eps(model), **factory)
                       if layer_norm else Adapter(d_model, r, activation, **factory))
            if placement == "block_out" and fam.block_out is None:
                if isinstance(blocks[i], AdaptedBlock):
                    raise ValueError(f"{blocks_name}.{i} already has a block-output adapter")
                blocks[i] = AdaptedBlock(blocks[i], adapter)
                continue
            path = fam.block_out if placement == "block_out" else getattr(fam, placement)
            block = blocks[i].block if isinstance(blocks[i], AdaptedBlock) else blocks[i]
            base = get_submodule_or_error(block, path, f"{blocks_name}.{i}")
            if isinstance(base, AdaptedModule):
                raise ValueError(f"{blocks_name}.{i}.{path} already has an adapter")
            parent_path, _, attr = path.rpartition(".")
            parent = block.get_submodule(parent_path) if parent_path else block
            setattr(parent, attr, AdaptedModule(base, adapter))
    for p in model.parameters():
        p.requires_grad_(False)
    for adapter in adapter_layers(model).values():
        for p in adapter.parameters():
            p.requires_grad_(True)
    set_trainable_modules(model, trainable_modules)
    return model


def dropped_layers(n_layers: int, drop: int | float) -> int:
    """AdapterDrop's k, the number of lowest layers without adapters: a float strictly between
    0 and 1 is a fraction of the layers (rounded), anything else a number of layers."""
    if isinstance(drop, float) and 0 < drop < 1:
        return round(drop * n_layers)
    if float(drop) != int(drop) or not 0 <= int(drop) < n_layers:
        raise ValueError(f"adapter drop={drop}: give a number of layers in 0..{n_layers - 1} "
                         "or a fraction strictly between 0 and 1")
    return int(drop)
