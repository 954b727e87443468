"""Run records written by older versions, read as the current schema: each migration lifts a
record by one `schema_version` when it is read; the file on disk is never rewritten.
"""
from __future__ import annotations

import copy
from typing import Callable

SCHEMA_VERSION = 3


class RecordVersionError(ValueError):
    """A record written by a newer version of the suite than this one."""


def _task_job_fields(data: dict) -> dict:
    """0 -> 1: the task config declares its job (`task.evaluate`) and scorer (`task.scorer`).
    Before, make_job chose them: classification -> GLUE scorer, best epoch; generation with a
    per-example scorer (SAMSum, WikiSQL, the *_gen label-word tasks) -> scored every epoch;
    other generation (E2E, WebNLG, DART) -> decoded once at the end, the task's own scorer."""
    task = (data.get("config") or {}).get("task")
    if not isinstance(task, dict) or "kind" not in task:
        return data
    name = str(task.get("name"))
    if task["kind"] == "classification":
        evaluate, scorer = "every_epoch", f"glue_{name}"
    elif name in ("samsum", "wikisql"):
        evaluate, scorer = "every_epoch", name
    elif name.endswith("_gen"):
        evaluate, scorer = "every_epoch", "label_words"
    else:
        evaluate, scorer = "end", name
    task.setdefault("evaluate", evaluate)
    task.setdefault("scorer", scorer)
    return data


def _deployed_count(data: dict) -> dict:
    """1 -> 2: every record names `init_from` (null: trained from the model's own weights) and
    holds `params.deployed`, the paper's count (trainable without heads, a prefix-layer's
    reparameterisation folded away). Records from before the pipeline counted it: for every
    method but pre_layer it is trainable_without_head (nothing folds); a pre_layer record's is
    recounted on the `meta` device from its own model and method config, as the run counts it.
    (This replaces scripts/backfill_deployed_params.py, which rewrote the files.)"""
    data.setdefault("init_from", None)
    params, config = data.get("params"), data.get("config")
    if not isinstance(params, dict) or "deployed" in params or not isinstance(config, dict):
        return data
    method = (config.get("method") or {}).get("name")
    if method != "pre_layer":
        if "trainable_without_head" in params:
            params["deployed"] = params["trainable_without_head"]
        return data
    params["deployed"] = _pre_layer_deployed(config)
    params["deployed_backfilled"] = True
    return data


def _pre_layer_deployed(config: dict) -> int:
    from lora_core import apply_method, count_parameters

    from .models import load_model, spec_from_config

    spec, _ = spec_from_config(config["model"])
    built = load_model(spec, init="meta", with_tokenizer=False)
    method = dict(config["method"])
    apply_method(built.model, method.pop("name"), family=spec.family, **method)
    return count_parameters(built.model).deployed


def _targets_as_list(data: dict) -> dict:
    """2 -> 3: LoRA's `targets` are a list of weight types with one rank `r` (conf/method/lora.yaml:
    a list replaces the default where a dict merged into it). A record's `{q: 8, k: 0, v: 8}`
    reads as `targets: [q, v], r: 8`, the config its experiment file composes to now, so a
    resume compares like with like; ranks that differ by type stay a dict (lora_core's
    target_ranks reads both)."""
    method = (data.get("config") or {}).get("method")
    if not isinstance(method, dict) or not isinstance(method.get("targets"), dict) \
            or "r" in method:
        return data
    ranks = {name: r for name, r in method["targets"].items() if r != 0}
    if len(set(ranks.values())) != 1:
        return data
    items = list(method.items())
    at = [k for k, _ in items].index("targets")
    new = items[:at] + [("targets", list(ranks)), ("r", next(iter(ranks.values())))] + items[at + 1:]
    data["config"]["method"] = dict(new)
    return data


# MIGRATIONS[v] lifts a record of schema_version v to v + 1 (a record without one is version 0).
MIGRATIONS: dict[int, Callable[[dict], dict]] = {0: _task_job_fields, 1: _deployed_count,
                                                 2: _targets_as_list}


def migrate(data: dict, source: str = "record") -> dict:
    """`data` (a record as read from JSON) lifted to SCHEMA_VERSION, as a new dict."""
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise RecordVersionError(f"{source}: schema_version={version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise RecordVersionError(f"{source}: schema_version {version} is newer than this suite "
                                 f"reads ({SCHEMA_VERSION}): update the code (git pull)")
    data = copy.deepcopy(data)
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version += 1
    return {"schema_version": version, **{k: v for k, v in data.items() if k != "schema_version"}}
