"""Adapter files: LoRA-only state dicts, our safetensors + JSON format, and PEFT's format.

Our format (a directory): `lora_adapter.safetensors` (the LoRA matrices, trained biases and
heads) and `lora_config.json` (the `LoRAConfig`). PEFT's: `adapter_model.safetensors` and
`adapter_config.json`, written and read without importing peft at module load.
"""
from __future__ import annotations

import json
import re
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
        if _is_full_path_config(model, config):  # saved from an imported PEFT adapter
            inject_lora_by_path(model, config.targets, config.alpha, config.dropout)
            mark_only_lora_as_trainable(model, config.bias, config.trainable_modules)
        else:
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


def _peft_rank_alpha(layer) -> tuple[int, float]:
    """The (r, alpha) PEFT stores for `layer`. A fused projection with every slice on (GPT-2's
    c_attn with Wq, Wk, Wv) holds n updates of rank r, one per slice: PEFT's single A, B over
    the whole output represents them exactly as one update of rank n·r whose B is
    block-diagonal, with alpha n·alpha so that the scale alpha/r stays the same."""
    n = getattr(layer, "n_on", 1)
    return layer.r * n, layer.alpha * n


def _peft_tensor(name: str, value: torch.Tensor, layers: dict) -> torch.Tensor:
    owner, _, leaf = name.rpartition(".")
    layer = layers.get(owner)
    if leaf == "lora_B" and isinstance(layer, LoRALinear) and layer.n_on > 1:
        # rows k·slice.. of B hold slice k's B_k (slice, r): place it at columns k·r..
        return torch.block_diag(*value.view(layer.n_on, layer.slice_out, layer.r))
    return value


def _most_common(values) -> object:
    return Counter(values).most_common(1)[0][0]


def export_peft(model: nn.Module, config: LoRAConfig, directory: str | Path,
                base_model_name_or_path: str | None = None) -> Path:
    """Write `model`'s adapter as PEFT's adapter_config.json + adapter_model.safetensors.
    Per-module ranks and alphas go to rank_pattern / alpha_pattern under full module names."""
    import peft  # interop only; lora_core itself does not need peft

    layers = lora_layers(model)
    _check_peft_representable(layers)
    entries = {n: _peft_rank_alpha(l) for n, l in layers.items()}
    default_r = _most_common(r for r, _ in entries.values())
    default_alpha = _most_common(a for _, a in entries.values())
    peft_config = peft.LoraConfig(
        r=default_r, lora_alpha=default_alpha, lora_dropout=config.dropout, bias=config.bias,
        target_modules=sorted(layers),
        rank_pattern={n: r for n, (r, _) in entries.items() if r != default_r},
        alpha_pattern={n: a for n, (_, a) in entries.items() if a != default_alpha},
        fan_in_fan_out=any(getattr(l, "fan_in_fan_out", False) for l in layers.values()),
        modules_to_save=list(config.trainable_modules) or None,
        base_model_name_or_path=base_model_name_or_path)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    peft_config.save_pretrained(str(directory))
    tensors = {_peft_key(k, layers): _peft_tensor(k, v, layers).contiguous().cpu()
               for k, v in adapter_state_dict(model, config).items()}
    save_file(tensors, str(directory / PEFT_WEIGHTS), metadata={"format": "pt"})
    return directory


# PEFT options that change what an adapter computes and that LoRALinear does not implement
_PEFT_UNSUPPORTED = ("use_dora", "use_rslora", "target_parameters", "trainable_token_indices",
                     "layer_replication", "lora_bias", "use_qalora", "alora_invocation_tokens")


def _read_peft_config(directory: Path):
    import peft

    path = directory / PEFT_CONFIG
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable PEFT adapter config ({err})") from None
    flags = [k for k in _PEFT_UNSUPPORTED if raw.get(k)]
    if raw.get("peft_type") != "LORA" or flags:
        raise ValueError(f"{path}: only plain LoRA adapters can be imported "
                         f"(peft_type={raw.get('peft_type')}, unsupported options {flags})")
    return peft.LoraConfig.from_pretrained(str(directory))


def inject_lora_by_path(model: nn.Module, ranks: dict[str, int], alpha: float,
                        dropout: float = 0.0) -> None:
    """Wrap each module named by its full path with its rank (Linear / Conv1D: LoRALinear,
    Embedding: LoRAEmbedding): how imported PEFT adapters, and their saved configs, apply."""
    for name, r in ranks.items():
        parent_path, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        base = getattr(parent, attr)
        if isinstance(base, nn.Embedding):
            wrapper = LoRAEmbedding(base, r, alpha)
        elif isinstance(base, nn.Linear) or type(base).__name__ == "Conv1D":
            wrapper = LoRALinear(base, r, alpha, dropout)
        else:
            raise ValueError(f"LoRA target {name} is a {type(base).__name__}: only Linear, "
                             "Conv1D and Embedding layers can be adapted")
        setattr(parent, attr, wrapper)


def _is_full_path_config(model: nn.Module, config: LoRAConfig) -> bool:
    """Targets that are all full module paths of `model` (an imported PEFT adapter's config),
    rather than weight types or paths inside a block."""
    names = dict(model.named_modules())
    return all(t in names and t.split(".")[0] in dict(model.named_children())
               for t in config.targets)


def import_peft(model: nn.Module, directory: str | Path, family: str | None = None) -> LoRAConfig:
    """Inject and load a PEFT LoRA adapter (plain LoRA: no DoRA, rsLoRA and the like).

    Which modules are adapted, with which rank and alpha, is decided by PEFT's own rules
    (`check_target_module_exists`: exact names or `.`-suffixes, a regex string,
    `layers_to_transform` / `layers_pattern`, modules_to_save excluded; `get_pattern_key` for
    rank_pattern / alpha_pattern). modules_to_save names absent from the model are ignored, as
    PEFT does (a SEQ_CLS adapter lists both `classifier` and `score`). The returned config holds
    full module paths and can be saved with `save_adapter` and loaded on a fresh model."""
    from peft.tuners.tuners_utils import check_target_module_exists

    try:
        from peft.utils.other import get_pattern_key
    except ImportError:  # older PEFT: the same rule, written out
        def get_pattern_key(keys, name):
            return next((k for k in keys if re.match(rf"(.*\.)?({k})$", name)), name)

    directory = Path(directory)
    pcfg = _read_peft_config(directory)
    module_names = [n for n, _ in model.named_modules() if n]
    to_save = [m for m in (pcfg.modules_to_save or [])
               if any(n == m or n.endswith("." + m) for n in module_names)]
    # PEFT's exclusion of modules_to_save reads the config; judge with the names found only
    pcfg.modules_to_save = to_save or None
    # True or a regex match adapts; an excluded module is falsy (PEFT's _ExcludedModule)
    targets = [n for n in module_names if check_target_module_exists(pcfg, n)]
    if not targets:
        raise ValueError(f"{directory / PEFT_CONFIG}: target_modules {pcfg.target_modules!r} "
                         f"(layers_to_transform {pcfg.layers_to_transform}) match no module "
                         "of this model: another architecture?")
    ranks = {n: pcfg.rank_pattern.get(get_pattern_key(pcfg.rank_pattern.keys(), n), pcfg.r)
             for n in targets}
    alphas = {n: pcfg.alpha_pattern.get(get_pattern_key(pcfg.alpha_pattern.keys(), n),
                                        pcfg.lora_alpha) for n in targets}
    inject_lora_by_path(model, ranks, pcfg.lora_alpha, pcfg.lora_dropout)
    layers = lora_layers(model)
    config = LoRAConfig(targets=ranks, alpha=pcfg.lora_alpha, dropout=pcfg.lora_dropout,
                        bias=pcfg.bias, trainable_modules=to_save, family=family)
    mark_only_lora_as_trainable(model, config.bias, config.trainable_modules)
    expected = adapter_state_dict(model, config)
    tensors = load_file(str(directory / PEFT_WEIGHTS))
    by_peft = {_peft_key(k, layers): k for k in expected}
    renamed = {by_peft.get(k, k): v for k, v in tensors.items()}
    copy_strict(model, renamed, expected, str(directory))
    with torch.no_grad():  # a per-module alpha: one config alpha, the ratio folded into B
        for name, alpha in alphas.items():
            if alpha != pcfg.lora_alpha:
                layers[name].lora_B.mul_(alpha / pcfg.lora_alpha)
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
