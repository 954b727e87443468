"""The run record as one typed, versioned structure: `Record`, parsed from JSON through the
migrations (record_migrations.py) and checked field by field; `records.write_record` is its one
writer, and the pipeline, the jobs, the tables, the claims and the analyses read it through here.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .record_migrations import SCHEMA_VERSION, RecordVersionError, migrate

STATUSES = ("running", "decoded", "complete")


class RecordError(ValueError):
    """A record whose fields do not have the types this schema gives them."""


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (
        isinstance(v, float) and math.isnan(v))


# field -> (test, what it must be); None passes for every field but status
_TYPES = {
    "experiment": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "status": (lambda v: v in STATUSES, "one of " + ", ".join(STATUSES)),
    "table": (lambda v: _int(v) or isinstance(v, str), "a table number or name"),
    "seed": (_int, "an integer"),
    "best_epoch": (_int, "an integer"), "predictions_epoch": (_int, "an integer"),
    "train_warmup_steps": (_int, "an integer"),
    "peak_memory_mb": (_number, "a number"),
    **{k: (lambda v: isinstance(v, str), "a string") for k in (
        "row", "model", "model_display", "model_source", "method", "task", "profile",
        "best_epoch_note")},
    **{k: (lambda v: isinstance(v, dict), "an object") for k in (
        "config", "params", "data", "environment", "distributed", "train", "weights", "decode",
        "metrics", "metrics_last_epoch")},
}


@dataclass
class Record:
    """One run: what it is (experiment, table, row, model, method, task, profile, seed), how far
    it got (`status`: running -> [decoded ->] complete), its resolved config, parameter counts,
    data summary, environment, training summary (history included), saved weights and hashes,
    and its metrics (a best-epoch job also: `best_epoch`, `metrics_last_epoch`)."""
    experiment: str | None = None
    table: int | str | None = None
    row: str | None = None
    model: str | None = None
    model_display: str | None = None
    model_source: str | None = None
    method: str | None = None
    task: str | None = None
    profile: str | None = None
    seed: int | None = None
    status: str = "running"
    config: dict | None = None
    params: dict | None = None
    data: dict | None = None
    init_from: Any = None          # what init_from_adapter loaded before training, or null
    environment: dict | None = None
    distributed: dict | None = None  # world size and strategy (distribution.py)
    train_warmup_steps: int | None = None
    train: dict | None = None      # TrainResult.summary(): steps, losses, history, wall time
    weights: dict | None = None    # path (relative to the results dir) -> sha256
    decode: dict | None = None
    peak_memory_mb: float | None = None
    metrics: dict | None = None
    best_epoch: int | None = None
    best_epoch_note: str | None = None
    metrics_last_epoch: dict | None = None
    predictions_epoch: int | None = None
    extra: dict = field(default_factory=dict)  # keys this schema does not name, kept as read
    schema_version: int = SCHEMA_VERSION

    # written even when null: the fields a run records when it starts
    ALWAYS = ("experiment", "table", "row", "model", "model_display", "model_source", "method",
              "task", "profile", "seed", "status", "config", "params", "data", "init_from")

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "record") -> Record:
        """`data` as read from a record.json (any schema version), migrated and checked;
        RecordError names `source` and each field that is wrong."""
        if not isinstance(data, Mapping):
            raise RecordError(f"{source} holds a JSON {type(data).__name__}, not a run record")
        data = migrate(dict(data), source)
        names = {f.name for f in fields(cls)} - {"extra"}
        problems = []
        for key, (ok, what) in _TYPES.items():
            value = data.get(key)
            required = key == "status"
            if (value is not None or required) and not ok(value):
                problems.append(f"`{key}` is {value!r}, must be {what}")
        if problems:
            raise RecordError(f"{source}: " + "; ".join(problems)
                              + " (move the record away, or fix the field)")
        return cls(**{k: v for k, v in data.items() if k in names},
                   extra={k: v for k, v in data.items() if k not in names})

    def to_dict(self) -> dict:
        """The JSON form: schema_version first, then the fields in schema order (a field never
        set is left out), then the unnamed keys."""
        out: dict = {"schema_version": self.schema_version}
        for f in fields(self):
            if f.name in ("schema_version", "extra"):
                continue
            value = getattr(self, f.name)
            if value is not None or f.name in self.ALWAYS:
                out[f.name] = value
        return {**out, **self.extra}


def read(path: Path) -> Record:
    """The record in the file `path`, migrated and checked; RecordError names the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RecordError(f"{path} is not valid JSON ({err})") from None
    try:
        return Record.from_dict(data, str(path))
    except RecordVersionError as err:
        raise RecordError(str(err)) from None
