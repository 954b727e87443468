"""Putting LoRA into a model: configuration, injection by weight type, trainable set, merging.

`apply_lora(model, LoRAConfig(targets={"q": 8, "v": 8}, alpha=16))` replaces the matching
projections of every block by `LoRALinear` wrappers (fused GPT-2 `c_attn` gets a per-slice
mask) and freezes everything but the LoRA matrices, the chosen biases and any named heads.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

from torch import nn

from .families import WEIGHT_TYPES, Family, family_of, find_blocks, find_module, get_submodule_or_error
from .layers import LoRAEmbedding, LoRALayer, LoRALinear

BIAS_MODES = ("none", "all", "lora_only")


@dataclass
class LoRAConfig:
    """What to adapt and how.

    targets: weight type (q, k, v, o, mlp, or a module path inside a block) -> rank r. The
        paper's Wq,Wv at r=4 is {"q": 4, "v": 4}; per-type ranks such as {"v": 2} work too.
    alpha: the update is scaled by alpha / r (per module, with that module's r).
    dropout: dropout on the LoRA branch input.
    bias: which biases train: "none", "all" or "lora_only" (loralib's modes).
    embedding_r: rank of a LoRA on the token embedding (0 = none).
    layers: block indices to adapt (None = all).
    trainable_modules: extra modules trained in full (task heads), by name suffix.
    family: architecture family; None = detect from model.config.model_type.
    """

    targets: dict[str, int]
    alpha: float = 1.0
    dropout: float = 0.0
    bias: str = "none"
    embedding_r: int = 0
    layers: list[int] | None = None
    trainable_modules: list[str] = field(default_factory=list)
    family: str | None = None

    def __post_init__(self):
        self.targets = {str(k): int(v) for k, v in dict(self.targets).items()}
        if not self.targets and not self.embedding_r:
            raise ValueError("LoRAConfig.targets is empty: name at least one weight type, "
                             f"e.g. {{'q': 8, 'v': 8}} (types: {list(WEIGHT_TYPES)})")
        for name, r in self.targets.items():
            if r <= 0:
                raise ValueError(f"LoRA rank for target {name!r} must be > 0, got {r}")
        if self.bias not in BIAS_MODES:
            raise ValueError(f"LoRAConfig.bias={self.bias!r}: choose one of {BIAS_MODES}")
        if self.alpha <= 0:
            raise ValueError(f"LoRAConfig.alpha must be > 0, got {self.alpha}")
        if self.layers is not None:
            self.layers = [int(i) for i in self.layers]
        self.trainable_modules = list(self.trainable_modules)

    def to_dict(self) -> dict:
        return asdict(self)


def _module_plan(block: nn.Module, fam: Family, targets: Mapping[str, int], where: str
                 ) -> dict[str, tuple[int, list[bool] | None]]:
    """Per module path inside a block: (rank, slice mask or None)."""
    plan: dict[str, dict] = {}
    for name, r in targets.items():
        if name in fam.targets:
            entries = fam.targets[name]
        elif name in WEIGHT_TYPES:
            raise ValueError(f"weight type {name!r} has no mapping in family {fam.name}")
        else:
            entries = ((name, None),)  # a raw module path inside the block
        for path, sl in entries:
            get_submodule_or_error(block, path, where)
            slot = plan.setdefault(path, {"ranks": {}, "mask": None})
            if sl is None:
                slot["ranks"][name] = r
            else:
                slot["mask"] = slot["mask"] or [False] * sl.count
                slot["mask"][sl.index] = True
                slot["ranks"][name] = r
    out = {}
    for path, slot in plan.items():
        ranks = set(slot["ranks"].values())
        if len(ranks) > 1:
            raise ValueError(f"{fam.name} fuses {sorted(slot['ranks'])} into one projection "
                             f"'{path}'; they need one rank, got {slot['ranks']}")
        # An all-True mask still means one rank-r update per slice (Wq, Wk, Wv apart),
        # not one rank-r update over the fused output.
        out[path] = (ranks.pop(), slot["mask"])
    return out


def _check_target_names(targets: Iterable[str], fam: Family, block: nn.Module) -> None:
    for name in targets:
        if name not in fam.targets and name not in WEIGHT_TYPES:
            try:
                block.get_submodule(name)
            except AttributeError:
                linear = [n for n, m in block.named_modules()
                          if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D"]
                raise ValueError(
                    f"LoRA target {name!r} matches nothing in a {fam.name} block: use a weight "
                    f"type {list(fam.targets)} or a projection path {linear}") from None


def apply_lora(model: nn.Module, config: LoRAConfig) -> nn.Module:
    """Inject LoRA into `model` in place and set the trainable set; returns the model."""
    fam = family_of(model, config.family)
    blocks_name, blocks = find_blocks(model, fam)
    _check_target_names(config.targets, fam, blocks[0])
    layers = range(len(blocks)) if config.layers is None else config.layers
    for i in layers:
        if not 0 <= i < len(blocks):
            raise ValueError(f"LoRA layer index {i} is outside 0..{len(blocks) - 1}")
        block = blocks[i]
        plan = _module_plan(block, fam, config.targets, f"{blocks_name}.{i}")
        for path, (r, mask) in plan.items():
            parent_path, _, attr = path.rpartition(".")
            parent = block.get_submodule(parent_path) if parent_path else block
            base = getattr(parent, attr)
            if isinstance(base, LoRALayer):
                raise ValueError(f"{blocks_name}.{i}.{path} already has LoRA")
            setattr(parent, attr, LoRALinear(base, r, config.alpha, config.dropout, enable=mask))
    if config.embedding_r:
        name, emb = find_module(model, fam.embedding)
        parent_path, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_path), attr,
                LoRAEmbedding(emb, config.embedding_r, config.alpha))
    mark_only_lora_as_trainable(model, config.bias, config.trainable_modules)
    return model


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}


def mark_only_lora_as_trainable(model: nn.Module, bias: str = "none",
                                trainable_modules: Iterable[str] = ()) -> None:
    """Freeze all but `lora_` parameters, the chosen biases and the named modules (heads).

    bias: "none" (loralib default), "all" (every bias, LayerNorm's too) or "lora_only"
    (the bias of each adapted projection).
    """
    if bias not in BIAS_MODES:
        raise ValueError(f"bias={bias!r}: choose one of {BIAS_MODES}")
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    if bias == "all":
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.requires_grad_(True)
    elif bias == "lora_only":
        for layer in lora_layers(model).values():
            b = getattr(layer.base_layer, "bias", None)
            if b is not None:
                b.requires_grad_(True)
    set_trainable_modules(model, trainable_modules)


def set_trainable_modules(model: nn.Module, names: Iterable[str]) -> None:
    """Train every parameter of the modules whose name is, or ends with, one of `names`."""
    for suffix in names:
        hits = [m for n, m in model.named_modules() if n == suffix or n.endswith("." + suffix)]
        if not hits:
            tops = [n for n, _ in model.named_children()]
            raise ValueError(f"trainable module {suffix!r} matches nothing; top-level modules "
                             f"are {tops}")
        for m in hits:
            for p in m.parameters():
                p.requires_grad_(True)


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight (W = W0 + BA); keeps the wrappers."""
    for layer in lora_layers(model).values():
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo `merge_lora` (W = W - BA), e.g. before training again or switching tasks."""
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge, then put the plain base layers back: a deployable model with no extra modules."""
    for name, layer in lora_layers(model).items():
        layer.merge()
        parent_path, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, attr, layer.base_layer)
    return model
