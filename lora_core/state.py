"""Adapter files: LoRA-only state dicts, our safetensors + JSON format, and PEFT's format.

Our format (a directory): `lora_adapter.safetensors` (the LoRA matrices, trained biases and
heads) and `lora_config.json` (the `LoRAConfig`). PEFT's: `adapter_model.safetensors` and
`adapter_config.json`, written and read without importing peft at module load.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .layers import LoRAEmbedding, LoRALinear
from .lora import LoRAConfig, apply_lora, lora_layers, mark_only_lora_as_trainable

ADAPTER_WEIGHTS = "lora_adapter.safetensors"
ADAPTER_CONFIG = "lora_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_CONFIG = "adapter_config.json"
PEFT_PREFIX = "base_model.model."


def adapter_state_dict(model: nn.Module, config: LoRAConfig) -> dict[str, torch.Tensor]:
    """The tensors an adapter consists of: `lora_` matrices, biases per `config.bias`, heads."""
    layers = lora_layers(model)
    keep: set[str] = set()
    for name, _ in model.named_parameters():
        if "lora_" in name:
            keep.add(name)
        elif config.bias == "all" and name.endswith("bias"):
            keep.add(name)
    if config.bias == "lora_only":
        keep.update(f"{n}.base_layer.bias" for n, l in layers.items()
                    if getattr(l.base_layer, "bias", None) is not None)
    for suffix in config.trainable_modules:
        for mod_name, mod in model.named_modules():
            if mod_name == suffix or mod_name.endswith("." + suffix):
                keep.update(f"{mod_name}.{p}" for p, _ in mod.named_parameters())
    params = dict(model.named_parameters())
    return {k: params[k].detach() for k in sorted(keep)}


def save_adapter(model: nn.Module, config: LoRAConfig, directory: str | Path,
                 overwrite: bool = False) -> Path:
    """Write the adapter of `model` to `directory`; refuses to overwrite unless asked."""
    directory = Path(directory)
    if (directory / ADAPTER_WEIGHTS).exists() and not overwrite:
        raise FileExistsError(f"{directory / ADAPTER_WEIGHTS} exists; pass overwrite=True "
                              "or choose another directory")
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous().cpu() for k, v in adapter_state_dict(model, config).items()}
    save_file(tensors, str(directory / ADAPTER_WEIGHTS), metadata={"format": "lora-repro/1"})
    (directory / ADAPTER_CONFIG).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return directory


def read_adapter_config(directory: str | Path) -> LoRAConfig:
    path = Path(directory) / ADAPTER_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"no {ADAPTER_CONFIG} in {directory}: not a lora-repro adapter "
                                f"(a PEFT adapter has {PEFT_CONFIG}; use import_peft)")
    return LoRAConfig(**json.loads(path.read_text()))


def load_adapter(model: nn.Module, directory: str | Path) -> LoRAConfig:
    """Load an adapter into `model` (injecting LoRA first if it has none); strict on keys."""
    config = read_adapter_config(directory)
    if not lora_layers(model):
        apply_lora(model, config)
    tensors = load_file(str(Path(directory) / ADAPTER_WEIGHTS))
    copy_strict(model, tensors, adapter_state_dict(model, config), str(directory))
    return config


def copy_strict(model: nn.Module, tensors: dict, expected, source: str, what: str = "adapter") -> None:
    """Copy `tensors` into `model`'s parameters: every name in `expected` must be there with its
    shape, and nothing else; errors name `what` was loaded from `source`."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{what} in {source} does not fit this model: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                         f"{'...' if len(unexpected) > 5 else ''}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in tensors.items():
            if params[k].shape != v.shape:
                raise ValueError(f"{what} in {source}: {k} has shape {tuple(v.shape)}, the "
                                 f"model expects {tuple(params[k].shape)} (another rank?)")
            params[k].copy_(v)


# ---------------------------------------------------------------------------------- PEFT

def _peft_key(name: str, layers: dict) -> str:
    owner, _, leaf = name.rpartition(".")
    if leaf in ("lora_A", "lora_B"):
        if isinstance(layers.get(owner), LoRAEmbedding):
            return f"{PEFT_PREFIX}{owner}.lora_embedding_{leaf[-1]}"
        return f"{PEFT_PREFIX}{name}.weight"
    return PEFT_PREFIX + name


def _check_peft_representable(layers: dict) -> None:
    masked = [n for n, l in layers.items() if isinstance(l, LoRALinear) and not l._full]
    if masked:
        raise ValueError(
            f"PEFT cannot represent a LoRA on only some slices of a fused projection "
            f"({masked[0]} adapts slices {layers[masked[0]].enable}): PEFT gives a fused layer "
            "one A and one B over its whole output, so the K slice of GPT-2's c_attn would be "
            "adapted (and trained) too. Export adapters on separate projections, or all slices.")


def export_peft(model: nn.Module, config: LoRAConfig, directory: str | Path,
                base_model_name_or_path: str | None = None) -> Path:
    """Write `model`'s adapter as PEFT's adapter_config.json + adapter_model.safetensors."""
    import peft  # interop only; lora_core itself does not need peft

    layers = lora_layers(model)
    _check_peft_representable(layers)
    ranks = {n: l.r for n, l in layers.items()}
    default_r = Counter(ranks.values()).most_common(1)[0][0]
    peft_config = peft.LoraConfig(
        r=default_r, lora_alpha=config.alpha, lora_dropout=config.dropout, bias=config.bias,
        target_modules=sorted(layers), rank_pattern={n: r for n, r in ranks.items() if r != default_r},
        fan_in_fan_out=any(getattr(l, "fan_in_fan_out", False) for l in layers.values()),
        modules_to_save=list(config.trainable_modules) or None,
        base_model_name_or_path=base_model_name_or_path)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    peft_config.save_pretrained(str(directory))
    tensors = {_peft_key(k, layers): v.contiguous().cpu()
               for k, v in adapter_state_dict(model, config).items()}
    save_file(tensors, str(directory / PEFT_WEIGHTS), metadata={"format": "pt"})
    return directory


def import_peft(model: nn.Module, directory: str | Path, family: str | None = None) -> LoRAConfig:
    """Inject and load a PEFT LoRA adapter (plain LoRA: no DoRA, rsLoRA or per-module alpha)."""
    directory = Path(directory)
    raw = json.loads((directory / PEFT_CONFIG).read_text())
    unsupported = [k for k in ("use_dora", "use_rslora") if raw.get(k)]
    if raw.get("peft_type") != "LORA" or unsupported or raw.get("alpha_pattern"):
        raise ValueError(f"{directory / PEFT_CONFIG}: only plain LoRA adapters can be imported "
                         f"(peft_type={raw.get('peft_type')}, flags {unsupported}, "
                         f"alpha_pattern={raw.get('alpha_pattern')})")
    targets = raw["target_modules"]
    if isinstance(targets, str):
        raise ValueError(f"{directory / PEFT_CONFIG}: target_modules is a regex ({targets!r}); "
                         "import needs a list of module names")
    rank_pattern = raw.get("rank_pattern") or {}
    # Inject on exactly the modules PEFT names (full paths), one wrapper each.
    modules = dict(model.named_modules())
    for target in targets:
        hits = [n for n in modules if n == target or n.endswith("." + target)]
        if not hits:
            raise ValueError(f"PEFT target {target!r} matches no module of this model")
        for name in hits:
            r = rank_pattern.get(name, rank_pattern.get(target, raw["r"]))
            parent_path, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            base = getattr(parent, attr)
            wrapper = (LoRAEmbedding(base, r, raw["lora_alpha"]) if isinstance(base, nn.Embedding)
                       else LoRALinear(base, r, raw["lora_alpha"], raw.get("lora_dropout", 0.0)))
            setattr(parent, attr, wrapper)
    layers = lora_layers(model)
    # targets hold full module paths here: a record of what PEFT adapted, not a recipe.
    config = LoRAConfig(targets={n: l.r for n, l in layers.items()}, alpha=raw["lora_alpha"],
                        dropout=raw.get("lora_dropout", 0.0), bias=raw.get("bias", "none"),
                        trainable_modules=list(raw.get("modules_to_save") or []), family=family)
    mark_only_lora_as_trainable(model, config.bias, config.trainable_modules)
    expected = adapter_state_dict(model, config)
    tensors = load_file(str(directory / PEFT_WEIGHTS))
    by_peft = {_peft_key(k, layers): k for k in expected}
    renamed = {by_peft.get(k, k): v for k, v in tensors.items()}
    copy_strict(model, renamed, expected, str(directory))
    return config


def init_from_adapter(model: nn.Module, directory: str | Path) -> dict:
    """Start `model` (LoRA already applied) from another run's adapter, as the official GLUE
    runs start MRPC/RTE/STS-B from the MNLI LoRA checkpoint: every LoRA tensor must fit; a head
    with any tensor of another shape (another label count) is skipped whole, so it starts
    fresh, as the official fork's pre-load hook drops the classifier. Returns what happened."""
    path = Path(directory) / ADAPTER_WEIGHTS
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run the experiment it comes from first "
                                "(e.g. the MNLI row of the same table and seed)")
    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    for name, value in tensors.items():
        if name not in params:
            raise ValueError(f"{path}: {name} has no place in this model (another family?)")
        if "lora_" in name and params[name].shape != value.shape:
            raise ValueError(f"{path}: {name} has shape {tuple(value.shape)}, this model "
                             f"{tuple(params[name].shape)}: the ranks differ")
    missing = [n for n in params if "lora_" in n and n not in tensors]
    if missing:
        raise ValueError(f"{path} lacks LoRA tensors {missing[:3]}: the adapted modules differ")
    # A head (top-level module, e.g. `classifier`) loads only if all its tensors fit.
    misfit = {n.split(".")[0] for n, v in tensors.items()
              if "lora_" not in n and params[n].shape != v.shape}
    skipped = sorted(n for n in tensors if "lora_" not in n and n.split(".")[0] in misfit)
    with torch.no_grad():
        for name, value in tensors.items():
            if name not in skipped:
                params[name].copy_(value)
    return {"from": str(directory), "loaded": len(tensors) - len(skipped), "skipped_head": skipped}
