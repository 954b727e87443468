"""Learning-rate sweeps (issue #27, LoRA Without Regret (a)): the best learning rate per method
on the dev metric, and its ratio to FT's, from the runs of `beyond_smollm2/lr_sweep/<method>/`.
Writes `analysis/lr_sweep.json` and `figures/lr_sweep.png`. Owns `best_lr`, the rule.
"""
from __future__ import annotations

# The rule, stated once (and written into the JSON):
#   1. each lr's value is the mean over its seeds of the run's final dev metric;
#   2. an lr where any seed diverged (NaN or infinite metric) cannot be best: it is listed
#      as diverged, never averaged away;
#   3. the best is the highest mean (lowest for a loss); lrs within `tie_tolerance` of it are
#      tied, and the best lr is then the geometric mean of the tied lrs (the centre of the
#      plateau on the log axis the grid is spaced on), so a flat top does not pull the ratio
#      to either end of it;
#   4. a best (or tied) lr at either end of the grid is flagged `at_edge`: the optimum may lie
#      outside the grid, and the ratio is then a bound, not an estimate;
#   5. where the runs record their constant predictor's score (`train.chance`: the majority
#      share, MCC 0), an lr whose mean does not beat it has not begun to learn and cannot be
#      best (a tie of three lrs at MCC 0 is no optimum); if none beats it there is no best lr.
# The ratio to FT is best_lr(method) / best_lr(ft), also as log10 (LoRA Without Regret's
# "about 10x" is log10 ratio ≈ 1).

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .beyond_records import (PREFIX, RunValue, config_value, empty_figure, lower_is_better,
                             records_under, run_list, run_values)

FOLDER = f"{PREFIX}/lr_sweep"
REFERENCE = "ft"
COMMAND = "make lr-sweep"
PAPER = {"work": "Schulman et al. (2025), LoRA Without Regret, Thinking Machines Lab",
         "finding": "LoRA's optimal learning rate is about 10x full fine-tuning's, nearly "
                    "independent of the rank (higher still in very short runs, B starting at 0)."}


class SweepError(ValueError):
    """A sweep that cannot give a best lr; the message says which method and why."""


@dataclass
class BestLR:
    lr: float | None
    value: float | None
    tied: list[float] = field(default_factory=list)
    at_edge: str | None = None                 # "low" | "high" | "both" (all tied) | None
    diverged: list[float] = field(default_factory=list)
    means: dict[float, float] = field(default_factory=dict)   # lr -> mean (NaN: diverged)
    seeds: dict[float, int] = field(default_factory=dict)
    below_chance: list[float] = field(default_factory=list)  # did not beat `chance`


def best_lr(points: dict[float, list[float]], lower_better: bool = False,
            tie_tolerance: float = 0.0, chance: float | None = None) -> BestLR:
    """The best lr of one method's sweep: `points` maps lr -> per-seed final dev values;
    `chance` the constant predictor's value (rule 5), if known."""
    if tie_tolerance < 0:
        raise SweepError(f"tie_tolerance must be ≥ 0, got {tie_tolerance}")
    grid = sorted(lr for lr in points if points[lr])
    if not grid:
        raise SweepError("no runs in the sweep")
    if any(lr <= 0 for lr in grid):
        raise SweepError(f"learning rates must be positive, got {grid}")
    out = BestLR(None, None)
    for lr in grid:
        values = [float(v) for v in points[lr]]
        out.seeds[lr] = len(values)
        if any(not math.isfinite(v) for v in values):
            out.diverged.append(lr)
            out.means[lr] = math.nan
        else:
            out.means[lr] = statistics.fmean(values)
    finite = {lr: m for lr, m in out.means.items() if math.isfinite(m)}
    if not finite:
        raise SweepError(f"every learning rate diverged ({grid})")
    if chance is not None:
        out.below_chance = sorted(lr for lr, m in finite.items()
                                  if (m >= chance if lower_better else m <= chance))
        finite = {lr: m for lr, m in finite.items() if lr not in out.below_chance}
        if not finite:
            return out
    best = min(finite.values()) if lower_better else max(finite.values())
    out.tied = sorted(lr for lr, m in finite.items() if abs(m - best) <= tie_tolerance)
    out.lr = out.tied[0] if len(out.tied) == 1 else \
        math.exp(statistics.fmean(math.log(lr) for lr in out.tied))
    out.value = best
    if len(grid) > 1:
        ends = [name for name, lr in (("low", grid[0]), ("high", grid[-1])) if lr in out.tied]
        out.at_edge = "both" if len(ends) == 2 else (ends[0] if ends else None)
    return out


def method_label(experiment: str) -> str:
    """`beyond_smollm2/lr_sweep/lora_r8/lr_1e-3` -> `lora_r8`."""
    parts = experiment.split("/")
    return parts[-2] if len(parts) >= 2 else experiment


def sweep_points(values: list[RunValue]) -> dict[str, dict[float, list[float]]]:
    """method label -> lr (the one the run trained with, from its config) -> values."""
    out: dict[str, dict[float, list[float]]] = {}
    for v in values:
        lr = config_value(v.data, "train.lr")
        if not isinstance(lr, (int, float)):
            raise SweepError(f"{v.record}: config.train.lr is {lr!r}, not a number")
        out.setdefault(method_label(v.experiment), {}).setdefault(float(lr), []).append(v.value)
    return out


def sweep_chance(values: list[RunValue], metric: str) -> dict[str, float]:
    """method label -> the constant predictor's value its runs record for `metric`
    (`train.chance`; one task, so one value); methods whose runs record none are left out."""
    out: dict[str, float] = {}
    for v in values:
        chance = (v.data.get("train") or {}).get("chance")
        if isinstance(chance, dict) and chance.get("metric") == metric:
            out[method_label(v.experiment)] = float(chance["value"])
    return out


def summarise(points: dict[str, dict[float, list[float]]], metric: str,
              tie_tolerance: float = 0.0, chance: dict[str, float] | None = None) -> dict:
    """Every method's best lr and its ratio to FT's; the JSON's numbers. `chance`: method ->
    its runs' constant-predictor value (rule 5)."""
    lower = lower_is_better(metric)
    chance = chance or {}
    bests = {m: best_lr(p, lower, tie_tolerance, chance.get(m)) for m, p in sorted(points.items())}
    ref = bests.get(REFERENCE)
    if ref is not None and ref.lr is None:
        ref = None  # no FT lr learnt: no ratio to it
    grids = {m: sorted(p) for m, p in points.items()}
    methods, ratios, bounds = {}, {}, {}
    for m, b in bests.items():
        entry = {"grid": grids[m], "mean_by_lr": {f"{lr:g}": _num(v) for lr, v in b.means.items()},
                 "seeds_by_lr": {f"{lr:g}": n for lr, n in b.seeds.items()},
                 "best_lr": b.lr, "best_value": b.value, "tied": b.tied, "at_edge": b.at_edge,
                 "diverged": b.diverged, "ratio_to_ft": None, "log10_ratio_to_ft": None,
                 **({"chance": chance[m], "below_chance": b.below_chance} if m in chance else {})}
        if ref is not None and m != REFERENCE and b.lr is not None:
            entry["ratio_to_ft"] = b.lr / ref.lr
            # rounded: 3e-4 / 3e-5 is 10 to the grid's precision, not 10^0.9999999999999999
            entry["log10_ratio_to_ft"] = round(math.log10(b.lr / ref.lr), 9)
            ratios[m] = entry["log10_ratio_to_ft"]
            bounds[m] = edge_note({REFERENCE: ref, m: b})
        methods[m] = entry
    lora = [math.log10(b.lr) for m, b in bests.items() if m.startswith("lora") and b.lr]
    return {"metric": metric, "lower_is_better": lower, "tie_tolerance": tie_tolerance,
            "same_grid": len({tuple(g) for g in grids.values()}) == 1,
            "grids_differ": sorted(m for m, g in grids.items() if g != grids.get(REFERENCE, g)),
            "reference": REFERENCE if ref is not None else None,
            "methods": methods, "log10_ratio_to_ft": ratios,
            "at_edge": sorted(m for m, b in bests.items() if b.at_edge),
            # why a ratio (or the spread) is a bound rather than an estimate; null: it is not
            "ratio_is_bound": bounds,
            "lora_log10_spread": round(max(lora) - min(lora), 9) if len(lora) >= 2 else None,
            "spread_is_bound": edge_note({m: b for m, b in bests.items() if m.startswith("lora")})}


def edge_note(bests: dict[str, BestLR]) -> str | None:
    """Which of these methods' best lrs lie at an end of their grid, in words; None if none:
    then every ratio between them is an estimate, else only a bound (the optimum may lie
    beyond the grid)."""
    ends = [f"{m}'s best lr is at the {b.at_edge} end of the grid ("
            + ", ".join(f"{lr:g}" for lr in b.tied) + (" tied)" if len(b.tied) > 1 else ")")
            for m, b in sorted(bests.items()) if b.at_edge]
    return "; ".join(ends) + ": the optimum may lie beyond it, so the ratio is only a bound" \
        if ends else None


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


RULE = ("each lr: mean over seeds of the run's dev metric (GLUE: at its best epoch); an lr "
        "with a diverged seed (NaN) cannot be best; ties within tie_tolerance: the geometric mean of the tied lrs; a best "
        "lr at an end of the grid is flagged at_edge (the ratio is then a bound); where the runs "
        "record their constant predictor's score (chance), an lr not beating it cannot be best")


def build(results: Path, out: Path, figures: Path, metric: str | None = None,
          tie_tolerance: float = 0.0, folder: str = FOLDER, name: str = "lr_sweep",
          command: str = COMMAND) -> list[Path]:
    """`<out>/<name>.json` and `<figures>/<name>.png` from the runs under `runs/<folder>/`
    (`<folder>/<method>/lr_<lr>`); the defaults are issue #27's SmolLM2 sweep."""
    records = records_under(results, folder)
    values = run_values(records, metric)
    png = figures / f"{name}.png"
    if not values:
        # a JSON left from an earlier build must not outlive the records it came from
        (out / f"{name}.json").unlink(missing_ok=True)
        why = (f"{len(records)} complete records under runs/{folder}/ hold no {metric}"
               if records and metric else
               f"no complete records under runs/{folder}/ yet; make them with `{command}` "
               "(one run per method and lr, resumable)")
        return [empty_figure(png, f"Learning-rate sweep ({folder})", why)]
    metric = metric or _common_metric(values)
    doc = {"analysis": name, "generated_by": f"python -m experiments.analysis {name}",
           "model": values[0].data.get("model"), "model_display": values[0].data.get("model_display"),
           "task": values[0].data.get("task"), "rule": RULE,
           **({"paper": PAPER} if folder == FOLDER else {}),
           **summarise(sweep_points(values), metric, tie_tolerance, sweep_chance(values, metric)),
           "runs": run_list(values)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path, plot(doc, png)]


def _common_metric(values: list[RunValue]) -> str:
    from .beyond_records import main_dev_metric

    names = {main_dev_metric(v.data) for v in values}
    if len(names) != 1:
        raise SweepError(f"the sweep's runs report different dev metrics {sorted(map(str, names))}"
                         "; pass --metric NAME")
    return names.pop()


def plot(doc: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m, e in doc["methods"].items():
        lrs = [float(k) for k in e["mean_by_lr"]]
        ys = [e["mean_by_lr"][k] for k in e["mean_by_lr"]]
        ok = [(x, y) for x, y in zip(lrs, ys) if y is not None]
        best = "no lr beat chance" if e["best_lr"] is None else f"best {e['best_lr']:.2g}"
        line, = ax.plot(*zip(*ok), marker="o", label=f"{m} ({best})")
        if e["best_lr"] is not None:
            ax.axvline(e["best_lr"], color=line.get_color(), ls=":", lw=1)
        for x in e["diverged"]:
            ax.plot([x], [min(y for _, y in ok)], marker="x", color=line.get_color(), ms=9)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(doc["metric"] + (" (lower is better)" if doc["lower_is_better"] else ""))
    ax.set_title(f"LR sweep, {doc['model_display']} on {doc['task']} (x: diverged)")
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
