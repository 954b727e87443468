"""One entry point for every adaptation method: `apply_method(model, "lora", targets=...)`.

Each method turns a model into the adapted one in place and marks what trains; task heads
named in `head_modules` always train (the paper trains but does not count them).
"""
from __future__ import annotations

from typing import Callable, Iterable

from torch import nn

from .lora import LoRAConfig, apply_lora, set_trainable_modules

MethodFn = Callable[..., nn.Module]
METHODS: dict[str, MethodFn] = {}


def register_method(name: str):
    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = fn
        return fn
    return wrap


def apply_method(model: nn.Module, name: str, head_modules: Iterable[str] = (),
                 family: str | None = None, **params) -> nn.Module:
    """Apply method `name` with its parameters; errors list the methods that exist."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: known methods are {sorted(METHODS)}")
    return METHODS[name](model, head_modules=list(head_modules), family=family, **params)


@register_method("lora")
def _lora(model: nn.Module, head_modules: list[str], family: str | None, targets: dict,
          alpha: float = 1.0, dropout: float = 0.0, bias: str = "none", embedding_r: int = 0,
          layers: list[int] | None = None) -> nn.Module:
    config = LoRAConfig(targets=dict(targets), alpha=alpha, dropout=dropout, bias=bias,
                        embedding_r=embedding_r, layers=layers,
                        trainable_modules=list(head_modules), family=family)
    apply_lora(model, config)
    model.lora_config = config  # what save_adapter needs to write the adapter back out
    return model


@register_method("ft")
def _full_finetune(model: nn.Module, head_modules: list[str], family: str | None) -> nn.Module:
    """FT: every parameter trains."""
    for p in model.parameters():
        p.requires_grad_(True)
    set_trainable_modules(model, head_modules)
    return model
