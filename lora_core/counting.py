"""Parameter counting: trainable and total, on real tensors or on the `meta` device.

Tied weights (GPT-2's lm_head = wte) count once, as `nn.Module.parameters()` yields them once.
`deployed` is what training leaves to keep: a prefix-layer's reparameterisation MLP folded into
its L x l x d activations, which is the count the paper prints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from torch import nn


@dataclass(frozen=True)
class ParamCount:
    trainable: int
    total: int
    head: int = 0  # trainable parameters in task heads, which the paper does not count
    folded: int = 0  # what fold() takes away: a reparameterisation, less the values it leaves

    @property
    def trainable_without_head(self) -> int:
        return self.trainable - self.head

    @property
    def deployed(self) -> int:
        """Trainable parameters without heads, once folded: the paper's count."""
        return self.trainable_without_head - self.folded


def count_parameters(model: nn.Module, head_modules: Iterable[str] = ()) -> ParamCount:
    """Count parameters; `head_modules` (name suffixes) are reported apart as `head`."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    head_ids: set[int] = set()
    for suffix in head_modules:
        for n, m in model.named_modules():
            if n == suffix or n.endswith("." + suffix):
                head_ids.update(id(p) for p in m.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.parameters() if id(p) in head_ids)
    folded = 0
    for m in model.modules():
        if getattr(m, "reparam", None) is not None and hasattr(m, "folded_numel"):
            trained = sum(p.numel() for p in m.parameters() if p.requires_grad)
            folded += trained - m.folded_numel()
    return ParamCount(trainable=trainable, total=total, head=head, folded=folded)
