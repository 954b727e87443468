"""Many named adapters on one frozen model: load, activate, route per batch row, switch merged.

The paper's deployment story (§4.1, §4.2): one frozen W0, many task updates ΔW_n = (α/r)·B_n·A_n.
    add_adapter(model, name, directory)      # this suite's adapter or PEFT's, under a name
    set_adapter(model, name)                 # h = W0·x + ΔW_name·x for every row (None: W0·x)
    with adapter_routing(model, names): ...  # row i gets ΔW_names[i] (None: the base model)
    switch_merged(model, name)               # W0 + ΔW_cur -> W0 + ΔW_name, exact, no drift
A mixed batch costs one base matmul plus one low-rank pair per distinct adapter in it.
"""
from __future__ import annotations

import json
import math
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
from safetensors.torch import load_file
from torch import nn

from .families import family_of, find_blocks
from .layers import LoRALayer
from .lora import _module_plan
from .routed_linear import RoutedLinear, block_update
from .state import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_CONFIG, PEFT_PREFIX, PEFT_WEIGHTS, read_adapter_config

_STATE_ATTR = "_lora_named_adapters"
_NAME = re.compile(r"[A-Za-z0-9_\-]+")


class AdapterState:
    """What one model's named adapters are doing; shared by all its `RoutedLinear` layers."""

    def __init__(self):
        self.sources: dict[str, str] = {}  # name -> directory it was loaded from
        self.active: str | None = None     # set_adapter
        self.merged: str | None = None     # switch_merged
        self.route: tuple[str | None, ...] | None = None  # adapter_routing
        self._groups: dict = {}
        self._uniform = False  # every routed row has the same adapter

    def groups_for(self, x: torch.Tensor, layer: nn.Module) -> list:
        """[(adapter name, rows)] for the input `x` of `layer`; rows is a slice or an index."""
        if self.route is None:
            return [] if self.active is None else [(self.active, slice(None))]
        if self._uniform:  # one adapter for the whole batch: any input shape works
            name = self.route[0]
            return [] if name is None else [(name, slice(None))]
        n, batch = len(self.route), (x.shape[0] if x.dim() >= 2 else 0)
        if batch == 0 or batch % n:
            raise ValueError(
                f"adapter_routing got {n} names but {type(layer).__name__} sees an input of shape "
                f"{tuple(x.shape)}, whose first dimension is not a multiple of {n} rows. The model "
                "mixes rows inside this projection (DeBERTa's relative-position embeddings pass "
                "through its query/key projections once for the whole batch), so a per-row "
                "update is not defined here: run such models one adapter at a time (set_adapter).")
        key = (batch, x.device)
        if key not in self._groups:
            self._groups[key] = _groups(self.route, batch // n, x.device)
        return self._groups[key]


def _groups(route: Sequence[str | None], repeat: int, device) -> list:
    """Rows per adapter after each row is repeated `repeat` times in place (beam search and
    num_return_sequences expand a batch that way, as `repeat_interleave`)."""
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(route):
        if name is not None:
            rows.setdefault(name, []).extend(range(i * repeat, (i + 1) * repeat))
    out = []
    for name, idx in rows.items():
        if idx == list(range(idx[0], idx[-1] + 1)):  # contiguous: a view, no gather
            out.append((name, slice(idx[0], idx[-1] + 1)))
        else:
            out.append((name, torch.tensor(idx, device=device)))
    return out


def _state(model: nn.Module, create: bool = False) -> AdapterState:
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        if not create:
            raise ValueError("this model has no named adapters: call "
                             "lora_core.add_adapter(model, name, directory) first")
        state = AdapterState()
        object.__setattr__(model, _STATE_ATTR, state)
    return state


def _check_known(state: AdapterState, name: str | None, what: str) -> None:
    if name is not None and name not in state.sources:
        raise ValueError(f"{what}: unknown adapter {name!r}; this model has "
                         f"{sorted(state.sources)} (add_adapter loads more; None = the base model)")


def adapter_names(model: nn.Module) -> list[str]:
    """The names added with `add_adapter`, in the order they were added."""
    state = getattr(model, _STATE_ATTR, None)
    return [] if state is None else list(state.sources)


# ------------------------------------------------------------------------------ reading files

def _read_ours(model: nn.Module, directory: Path, family: str | None) -> dict:
    config = read_adapter_config(directory)
    where = directory / ADAPTER_CONFIG
    if config.embedding_r or config.bias != "none" or config.trainable_modules:
        raise ValueError(
            f"{where}: embedding_r={config.embedding_r}, bias={config.bias!r}, trainable_modules="
            f"{config.trainable_modules}: named adapters serve LoRA updates of linear projections "
            "only (a trained head or bias is a whole per-task module, not a low-rank update). "
            "Load this adapter with load_adapter on its own model instead.")
    tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    fam = family_of(model, config.family or family)
    blocks_name, blocks = find_blocks(model, fam)
    layers = range(len(blocks)) if config.layers is None else config.layers
    plan = {}
    for i in layers:
        for path, (r, mask) in _module_plan(blocks[i], fam, config.targets,
                                            f"{blocks_name}.{i}").items():
            full = f"{blocks_name}.{i}.{path}"
            plan[full] = dict(A=_take(tensors, f"{full}.lora_A", directory),
                              B=_take(tensors, f"{full}.lora_B", directory),
                              r=r, scaling=config.alpha / r, enable=mask)
    if tensors:
        raise ValueError(f"{directory / ADAPTER_WEIGHTS} holds tensors its config does not "
                         f"explain: {sorted(tensors)[:5]} (config and weights from different runs?)")
    return plan


def _take(tensors: dict, key: str, directory: Path) -> torch.Tensor:
    if key not in tensors:
        raise ValueError(f"{directory / ADAPTER_WEIGHTS} lacks {key}: the adapter was saved from "
                         "another architecture or its config was edited")
    return tensors.pop(key)


def _read_peft(directory: Path) -> dict:
    where = directory / PEFT_CONFIG
    raw = json.loads(where.read_text())
    if raw.get("peft_type") != "LORA" or raw.get("use_dora") or raw.get("alpha_pattern"):
        raise ValueError(f"{where}: only plain LoRA adapters can be added (peft_type="
                         f"{raw.get('peft_type')}, use_dora={raw.get('use_dora')}, "
                         f"alpha_pattern={raw.get('alpha_pattern')})")
    tensors = load_file(str(directory / PEFT_WEIGHTS))
    other = sorted(k for k in tensors if not re.search(r"\.lora_[AB]\.weight$", k))
    if other:
        raise ValueError(f"{directory / PEFT_WEIGHTS} holds tensors that are not linear LoRA "
                         f"updates: {other[:5]} (modules_to_save, biases or embedding LoRA); "
                         "named adapters serve LoRA updates of linear projections only")
    alpha, plan = float(raw["lora_alpha"]), {}
    for key in tensors:
        if key.endswith(".lora_A.weight"):
            path = key[:-len(".lora_A.weight")].removeprefix(PEFT_PREFIX)
            A, B = tensors[key], tensors.get(key.replace(".lora_A.", ".lora_B."))
            if B is None:
                raise ValueError(f"{directory / PEFT_WEIGHTS}: {key} has no lora_B beside it")
            r = A.shape[0]  # PEFT's rank_pattern shows in the shapes
            scaling = alpha / math.sqrt(r) if raw.get("use_rslora") else alpha / r
            plan[path] = dict(A=A, B=B, r=r, scaling=scaling, enable=None)
    return plan


def _read_adapter(model: nn.Module, directory: str | Path, family: str | None) -> dict:
    directory = Path(directory)
    if (directory / ADAPTER_CONFIG).exists():
        return _read_ours(model, directory, family)
    if (directory / PEFT_CONFIG).exists():
        return _read_peft(directory)
    raise FileNotFoundError(f"{directory} holds neither {ADAPTER_CONFIG} (this suite's adapter, "
                            f"save_adapter) nor {PEFT_CONFIG} (PEFT's, export_peft or "
                            "PeftModel.save_pretrained)")


# ------------------------------------------------------------------------------ public API

def add_adapter(model: nn.Module, name: str, directory: str | Path,
                family: str | None = None) -> nn.Module:
    """Load the adapter saved in `directory` (this suite's format or PEFT's) under `name`.

    Each projection it adapts becomes (or already is) a `RoutedLinear`; the model's weights and
    its outputs are unchanged until the adapter is activated, routed to or merged. Nothing is
    changed if any check fails. Dropout is not applied: named adapters are for inference.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"adapter name {name!r}: use letters, digits, '_' and '-' only")
    state = _state(model, create=True)
    if name in state.sources:
        raise ValueError(f"adapter {name!r} is already loaded (from {state.sources[name]}); "
                         "choose another name")
    if state.route is not None:
        raise RuntimeError("add_adapter inside adapter_routing: add adapters before routing")
    plan = _read_adapter(model, directory, family)
    modules = dict(model.named_modules())
    staged = []
    for path, entry in plan.items():
        module = modules.get(path)
        if module is None:
            raise ValueError(f"adapter {directory} adapts {path!r}, which this model does not "
                             "have (an adapter of another architecture?)")
        if isinstance(module, LoRALayer):
            raise ValueError(f"{path} already carries a LoRA from apply_lora/load_adapter: named "
                             "adapters start from the base model (save_adapter that LoRA, then "
                             "add_adapter it by name on a fresh model)")
        layer = module if isinstance(module, RoutedLinear) else RoutedLinear(module, state)
        A, B, r = entry["A"], entry["B"], entry["r"]
        n_on = sum(entry["enable"]) if entry["enable"] else 1
        slice_out = layer.out_features // (len(entry["enable"]) if entry["enable"] else 1)
        if A.shape != (n_on * r, layer.in_features) or B.shape != (n_on * slice_out, r):
            raise ValueError(f"adapter {directory}: {path} has A {tuple(A.shape)} and B "
                             f"{tuple(B.shape)}, this model needs {(n_on * r, layer.in_features)}"
                             f" and {(n_on * slice_out, r)} (another model size?)")
        staged.append((path, module, layer,
                       block_update(A, B, r, entry["scaling"], layer.out_features, entry["enable"])))
    for path, module, layer, update in staged:
        if layer is not module:
            parent_path, _, attr = path.rpartition(".")
            setattr(model.get_submodule(parent_path) if parent_path else model, attr, layer)
        layer.add(name, update)
    state.sources[name] = str(directory)
    return model


def set_adapter(model: nn.Module, name: str | None) -> None:
    """Make `name` the adapter every row uses (unmerged); None = the base model."""
    state = _state(model)
    if state.route is not None:
        raise RuntimeError("set_adapter inside adapter_routing: the routing decides per row")
    if state.merged is not None:
        raise RuntimeError(f"adapter {state.merged!r} is merged into the weights "
                           "(switch_merged): call switch_merged(model, None) before set_adapter")
    _check_known(state, name, "set_adapter")
    state.active = name


@contextmanager
def adapter_routing(model: nn.Module, names: Sequence[str | None]) -> Iterator[nn.Module]:
    """Within the block, batch row i gets exactly adapter `names[i]`'s update (None: base).

    Works for `model(...)` and `model.generate(...)` (a batch expanded for beams or several
    returned sequences, row i repeated in place, is routed row by row too).
    """
    state = _state(model)
    if state.merged is not None:
        raise RuntimeError(f"adapter {state.merged!r} is merged into the weights, which serve "
                           "every row alike: call switch_merged(model, None) before routing")
    if state.route is not None:
        raise RuntimeError("adapter_routing is already active on this model (nested routing)")
    names = tuple(names)
    if not names:
        raise ValueError("adapter_routing needs one adapter name (or None) per batch row")
    for name in set(names):
        _check_known(state, name, "adapter_routing")
    state.route, state._groups, state._uniform = names, {}, len(set(names)) == 1
    try:
        yield model
    finally:
        state.route, state._groups = None, {}


def switch_merged(model: nn.Module, name: str | None) -> None:
    """Fold adapter `name` into the weights in place of the current one (None: back to W0).

    Each switch subtracts the current ΔW and adds the new one; weights that subtraction cannot
    round back to W0 were kept when merging, so after any number of switches the weights are
    bit-identical to a fresh W0 + ΔW_name.
    """
    state = _state(model)
    if state.route is not None:
        raise RuntimeError("switch_merged inside adapter_routing: leave the routing block first")
    if state.active is not None:
        raise RuntimeError(f"adapter {state.active!r} is active unmerged (set_adapter); call "
                           "set_adapter(model, None) first, or it would be applied on top")
    _check_known(state, name, "switch_merged")
    if name == state.merged:
        return
    layers = [m for m in model.modules() if isinstance(m, RoutedLinear)]
    for layer in layers:
        layer.unmerge()
    for layer in layers if name is not None else ():
        layer.merge(name)
    state.merged = name
