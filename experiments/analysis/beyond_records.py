"""What the beyond-the-paper analyses (issue #27) read from run records: the runs under an
experiment folder, one final value of a metric per run, learning curves, and the figure that
says "no records yet" with the command that makes them. Owns `RunValue` and `records_under`.
"""
from __future__ import annotations

# A diverged run is not a missing run: its metric (or loss) is NaN or infinite, and the sweeps
# must see it to exclude its learning rate on purpose. So `final_value` returns NaN for a
# non-finite number and None only where the record holds no such value at all.

import json
import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ..tables.collect import RunRecord, scan

PREFIX = "beyond_smollm2"


@dataclass(frozen=True)
class RunValue:
    """One run's final value of a metric, with where it came from."""
    experiment: str
    seed: int
    record: str            # path relative to the results folder
    value: float           # NaN: the run diverged
    data: dict             # the whole record, for the config (lr, batch size, rank)


def records_under(results: Path, folder: str) -> list[RunRecord]:
    """Complete records whose experiment lies under `folder` (`beyond_smollm2/lr_sweep`), one
    per (experiment, seed): the latest rerun (`seed1-2` over `seed1`)."""
    records, _ = scan(results)
    chosen: dict[tuple[str, int], RunRecord] = {}
    for r in records:
        name = str(r.data.get("experiment"))
        if name != folder and not name.startswith(folder.rstrip("/") + "/"):
            continue
        key = (name, r.seed)
        if key not in chosen or r.rerun > chosen[key].rerun:
            chosen[key] = r
    return [chosen[k] for k in sorted(chosen)]


def kept_from_records(path: Path, results: Path) -> bool:
    """Whether an analysis JSON built from trained weights may stay where those weights are
    not on this machine (git-ignored: a fresh clone has the records only): every run it lists
    under "runs" still has a complete record. Else it must go, never outliving its runs."""
    if not path.is_file():
        return False
    runs = json.loads(path.read_text(encoding="utf-8")).get("runs") or []
    have = {(r.data.get("experiment"), r.seed) for r in scan(results)[0]}
    return bool(runs) and all((run["experiment"], int(run.get("seed", 1))) in have
                              for run in runs)


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or metric.endswith("perplexity")


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else math.nan


def curve(data: dict) -> list[dict]:
    """The record's learning curve, `train.curve`: [{step, tokens, loss[, dev_loss]}, ...]."""
    return list((data.get("train") or {}).get("curve") or [])


def final_value(data: dict, metric: str) -> float | None:
    """The run's final `metric`: `dev_loss` / `train_loss` from the end of its learning curve
    (else its history), any other name from its final metrics (else its last evaluation)."""
    train = data.get("train") or {}
    if metric in ("dev_loss", "train_loss"):
        key = "dev_loss" if metric == "dev_loss" else "loss"
        for point in reversed(curve(data)):
            if key in point:
                return _number(point[key])
        for entry in reversed(train.get("history") or []):
            if metric in entry:
                return _number(entry[metric])
        return None
    if metric in (data.get("metrics") or {}):
        return _number(data["metrics"][metric])
    for entry in reversed(train.get("history") or []):
        if metric in entry:
            return _number(entry[metric])
    return None


def main_dev_metric(data: dict) -> str | None:
    """The run's evaluation metric: the first `split/name` number of its last evaluation."""
    for entry in reversed((data.get("train") or {}).get("history") or []):
        for key, value in entry.items():
            if "/" in key and not key.endswith(("/n", "/unrecognised")) \
                    and _number(value) is not None:
                return key
    return None


def run_values(records: list[RunRecord], metric: str | None) -> list[RunValue]:
    """Each record's final `metric` (None: each record's own main dev metric); records
    without it are left out (they are listed by the caller as lacking it)."""
    out = []
    for r in records:
        name = metric or main_dev_metric(r.data)
        value = final_value(r.data, name) if name else None
        if value is not None:
            out.append(RunValue(str(r.data["experiment"]), r.seed, r.path, value, r.data))
    return out


def config_value(data: dict, dotted: str):
    node = data.get("config") or {}
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def run_list(values) -> list[dict]:
    return [{"experiment": v.experiment, "seed": v.seed, "record": v.record} for v in values]


def empty_figure(path: Path, title: str, message: str) -> Path:
    """A figure that says on the image why it has no data (no records yet, and the command)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(message, 80)), ha="center", va="center",
            fontsize=9, transform=ax.transAxes, family="monospace")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
