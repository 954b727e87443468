"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a JSON manifest (the path the engine is given, e.g. `checkpoints/last.json`)
holding the state's plain values, with each tensor replaced by a reference into one
safetensors file beside it. Neither format can run code when read, so a planted checkpoint can
at worst fail to load, with an error naming the file. The manifest is the commit point: the
tensors go to a new file first, then the manifest is swapped in atomically, so a kill at any
moment leaves either the old checkpoint or the new one.
"""
from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "lora-repro-checkpoint/1"
# JSON has no tensors, tuples or non-string keys: each becomes a tagged object.
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read back; the message names the file and what to do."""


def _fix(path: Path) -> str:
    return (f"move {path.parent} away to restart the run from the beginning (its record stays "
            "unfinished until then)")


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()  # no copy where it is already so
        return {_TENSOR: key}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        # the optimizer's state is keyed by parameter index (int)
        return {_ITEMS: [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k}]")]
                         for k, v in value.items()]}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(v, tensors, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors, where) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    raise TypeError(f"checkpoint state {where} is a {type(value).__name__}: only tensors, "
                    "numbers, strings, lists, tuples and dicts are stored")


def _decode(value: Any, tensors: dict[str, torch.Tensor], path: Path) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, path) for v in value]
    if not isinstance(value, dict):
        return value
    if _TENSOR in value:
        if value[_TENSOR] not in tensors:
            raise CheckpointError(f"{path}: refers to tensor {value[_TENSOR]!r}, which its "
                                  f"tensor file does not hold; {_fix(path)}")
        return tensors[value[_TENSOR]]
    if _TUPLE in value:
        return tuple(_decode(v, tensors, path) for v in value[_TUPLE])
    if _ITEMS in value:
        return {_decode(k, tensors, path): _decode(v, tensors, path) for k, v in value[_ITEMS]}
    if "__float__" in value:
        return float(value["__float__"])
    return {k: _decode(v, tensors, path) for k, v in value.items()}


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write `state` as the manifest `path` plus `<stem>-<id>.safetensors` beside it; the
    tensor files of earlier checkpoints at `path` are removed once the new one is in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    body = _encode(state, tensors, "state")
    weights = path.with_name(f"{path.stem}-{uuid.uuid4().hex[:12]}.safetensors")
    try:
        save_file(tensors, str(weights), metadata={"format": FORMAT})
    except RuntimeError:  # safetensors refuses tensors sharing storage: store each one apart
        save_file({k: v.clone() for k, v in tensors.items()}, str(weights),
                  metadata={"format": FORMAT})
    manifest = {"format": FORMAT, "tensors": weights.name,
                "tensor_bytes": weights.stat().st_size, "state": body}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    for old in path.parent.glob(f"{path.stem}-*.safetensors"):
        if old != weights:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The state `save_checkpoint` wrote at `path`; CheckpointError names the file when it is
    not such a checkpoint (a pickle from an older version, a cut-off or foreign file)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        older = " (a torch.save pickle from an older version? it is not loaded: pickle can " \
                "run code)" if raw[:2] in (b"PK", b"\x80\x02") else ""
        raise CheckpointError(f"{path}: not a lora-repro checkpoint manifest{older}: {err}; "
                              f"{_fix(path)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{path}: format {found!r}, expected {FORMAT!r}; {_fix(path)}")
    name = manifest.get("tensors")
    if not isinstance(name, str) or Path(name).name != name:
        raise CheckpointError(f"{path}: its `tensors` field {name!r} is not a file name beside "
                              f"it; {_fix(path)}")
    weights = path.with_name(name)
    if not weights.exists():
        raise CheckpointError(f"{path}: its tensor file {weights} is missing; {_fix(path)}")
    if weights.stat().st_size != manifest.get("tensor_bytes"):
        raise CheckpointError(f"{weights}: {weights.stat().st_size} bytes, the manifest {path} "
                              f"says {manifest.get('tensor_bytes')} (cut off?); {_fix(path)}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({err}); "
                              f"{_fix(path)}") from None
    return _decode(manifest.get("state"), tensors, path)
