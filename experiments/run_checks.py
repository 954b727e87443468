"""Checks on a composed run config before any work: value ranges, `run.name` inside
`paths.results`, and what a resume may change.

`check_run_config(cfg)` raises one `RunConfigError` listing every bad field with its fix, so a
run that cannot start writes nothing; `resume_differences(old, new)` names the keys a resumed
run would change.
"""
from __future__ import annotations

import math
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping

from omegaconf import OmegaConf


class RunConfigError(ValueError):
    """A config value a run cannot start with; the message names each field and the fix."""


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# dotted key -> (test, what it must be); a key absent from the config is not checked
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "train.batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "train.epochs": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "train.grad_accum": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "train.max_steps": (lambda v: v is None or (_integer(v) and v >= 0), "an integer >= 0"),
    "train.warmup_steps": (lambda v: v is None or (_integer(v) and v >= 0), "an integer >= 0"),
    "train.warmup_ratio": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "train.lr": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "train.weight_decay": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "train.eps": (lambda v: _number(v) and v > 0, "a finite number > 0"),
    "train.clip_norm": (lambda v: v is None or (_number(v) and v >= 0), "a finite number >= 0"),
    "train.label_smoothing": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "train.log_every": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "train.save_every": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "train.autocast": (lambda v: v in (None, "none", "bf16"), "null, none or bf16"),
    "train.attention_kernel": (lambda v: v in ("auto", "default"),
                               "auto (math SDPA on CPU under bf16 for frozen-weight models) or default "
                               "(torch's choice)"),
    "train.compile": (lambda v: v is None or isinstance(v, bool), "null, true or false"),
    "train.fsdp": (lambda v: v is None or isinstance(v, bool), "null, true or false"),
    "train.patience": (lambda v: v is None or (_integer(v) and v >= 0),
                       "null or an integer >= 0 (0: no early stop)"),
    "train.min_evaluations": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "data.max_train": (lambda v: v is None or (_integer(v) and v >= 1), "null or an integer >= 1"),
    "data.max_valid": (lambda v: v is None or (_integer(v) and v >= 1), "null or an integer >= 1"),
    "data.max_eval_sources": (lambda v: v is None or (_integer(v) and v >= 1),
                              "null or an integer >= 1"),
    "data.sample_seed": (lambda v: v is None or _integer(v), "null or an integer"),
    "decode.num_beams": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "decode.max_new_tokens": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "decode.batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
}

_MISSING = object()


def _get(tree: Mapping, dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def run_name_problem(name: Any) -> str | None:
    """Why `run.name` cannot name a directory under `<results>/runs`, or None."""
    if not isinstance(name, str) or not name.strip():
        return "must be a non-empty relative path such as table3/gpt2_m_lora"
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or Path(name).is_absolute():
        return "is absolute; give a path relative to <paths.results>/runs"
    if ".." in path.parts:
        return "climbs out with '..'; runs stay under <paths.results>/runs (move paths.results)"
    return None


def check_run_config(cfg) -> None:
    """Every value a run needs, checked at once; raises RunConfigError naming them all."""
    tree = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    problems = []
    for key, (ok, what) in _RULES.items():
        value = _get(tree, key)
        if key == "train.lr" and _get(tree, "method.name") == "none" and value == 0:
            continue  # method=none trains nothing (few-shot prompting): its recipe says lr 0
        if value is not _MISSING and not ok(value):
            problems.append(f"{key}={value!r} must be {what}")
    name_problem = run_name_problem(_get(tree, "run.name"))
    if name_problem:
        problems.append(f"run.name={_get(tree, 'run.name')!r} {name_problem}")
    method = _get(tree, "method.name")
    if method is not _MISSING:
        from lora_core import METHODS

        if method not in METHODS:
            problems.append(f"method.name={method!r} is not one of the known methods "
                            f"{sorted(METHODS)}")
    targets = _get(tree, "method.targets")
    if targets is not _MISSING:
        problems += _lora_target_problems(targets, _get(tree, "method.r"))
    task = _get(tree, "task")
    if isinstance(task, Mapping):
        problems += _task_problems(task)
    device = _get(tree, "device")
    if device is not _MISSING and not (device in ("auto", "cpu") or str(device).startswith("cuda")):
        problems.append(f"device={device!r} must be auto, cpu or cuda[:N]")
    if problems:
        raise RunConfigError("the run cannot start, nothing was written:\n  " + "\n  ".join(problems)
                             + "\nFix them on the command line (key=value) or in the experiment file.")


def _lora_target_problems(targets: Any, r: Any) -> list[str]:
    """LoRA's weight types and rank: a list with one r, or (older records) a dict of ranks."""
    from lora_core import target_ranks

    try:
        target_ranks(targets, None if r is _MISSING else r)
    except ValueError as err:
        return [f"method.targets={targets!r}, method.r={None if r is _MISSING else r!r}: {err}"]
    return []


def _task_problems(task: Mapping) -> list[str]:
    """The task config names a job (task.kind, task.evaluate) and a registered scorer."""
    from .job import job_kind_problem
    from .metrics.registry import SCORERS

    problems = []
    kind_problem = job_kind_problem(task.get("kind"), task.get("evaluate"))
    if kind_problem:
        problems.append(kind_problem)
    if task.get("scorer") not in SCORERS:
        problems.append(f"task.scorer={task.get('scorer')!r} must be one of {', '.join(sorted(SCORERS))} "
                        "(experiments/metrics/registry.py)")
    return problems


# Keys a resume may change: where the run's files live, how it logs, the resume switches, and
# the profile's name (a stand-in run started under `paper` before the stand-in profiles resumes
# under its standin_* profile: the same settings, each compared key by key).
RESUME_MAY_CHANGE = ("run.resume", "run.new_dir", "paths", "logger", "device", "profile.name")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: tree}


def resume_differences(recorded: Mapping, now: Mapping) -> list[str]:
    """`key: recorded -> now` for every config value a resume would change (besides
    RESUME_MAY_CHANGE), sorted; empty when the run can go on as recorded."""
    old, new = _flatten(recorded), _flatten(now)
    free = lambda k: any(k == p or k.startswith(p + ".") for p in RESUME_MAY_CHANGE)  # noqa: E731
    return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
            for k in sorted(set(old) | set(new))
            # a key added to the configs since the run started reads as its null default
            if not free(k) and old.get(k) != new.get(k)]
