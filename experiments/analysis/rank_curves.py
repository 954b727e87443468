"""Rank learning curves (LoRA Without Regret (c)): LoRA at r = 1 … 256 overlaid on FT's training
loss against tokens, and where each rank leaves FT's curve. Reads `train.curve` of the runs
under `beyond_smollm2/rank_curves/`; writes `analysis/rank_curves.json`, `figures/rank_curves.png`.
"""
from __future__ import annotations

# Departure, the capacity threshold of the claim: both curves are smoothed by a trailing mean
# over `window` logged points (a batch's loss is noisy), FT's is interpolated at LoRA's token
# counts, and a rank departs at the first point from which its loss stays above FT's by more
# than `tolerance` (relative) to the end of training. A rank that never departs is censored:
# its departure fraction is 1.0 (the whole run) and `departed` is false.
# A departure is a capacity threshold only where ranks differ: if the lowest and the highest
# rank follow one curve (smoothed, never more than `tolerance` apart, seed by seed), no rank ran
# out of capacity in the run, and where they leave FT's curve says nothing about capacity; the
# JSON's `caveat` then says so and the ledger's comparisons decide nothing.

import json
from pathlib import Path

import numpy as np

from lora_core.methods import target_ranks

from .beyond_records import PREFIX, curve, empty_figure, records_under, run_list, RunValue

FOLDER = f"{PREFIX}/rank_curves"
REFERENCE = "ft"
WINDOW, TOLERANCE = 5, 0.03
COMMAND = "make beyond-runs-rank_curves"
PAPER = {"work": "Schulman et al. (2025), LoRA Without Regret",
         "finding": "Low-rank LoRA follows FT's loss curve until it reaches a capacity "
                    "threshold, which comes later the larger r is."}


def smooth(values, window: int = WINDOW) -> np.ndarray:
    """Trailing mean over the last `window` points (fewer at the start)."""
    v = np.asarray(values, float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def departure(tokens, loss, ref_tokens, ref_loss, tolerance: float = TOLERANCE,
              window: int = WINDOW) -> dict:
    """Where the curve (tokens, loss) leaves the reference curve for good."""
    t, y = np.asarray(tokens, float), smooth(loss, window)
    ref = np.interp(t, np.asarray(ref_tokens, float), smooth(ref_loss, window))
    above = y > ref * (1 + tolerance)
    # the first index from which every later point is above: scan from the end
    first = t.size
    for i in range(t.size - 1, -1, -1):
        if not above[i]:
            break
        first = i
    departed = first < t.size
    at = float(t[first]) if departed else float(t[-1])
    return {"departed": bool(departed), "tokens": at, "fraction": at / float(t[-1]),
            "final_gap": float(y[-1] / ref[-1] - 1)}


def rank_spread(low: tuple, high: tuple, window: int = WINDOW) -> float:
    """The largest relative gap, either way, between two curves (tokens, loss) at the low
    curve's points, both smoothed: how far apart two ranks ever were."""
    t = np.asarray(low[0], float)
    y = smooth(low[1], window)
    ref = np.interp(t, np.asarray(high[0], float), smooth(high[1], window))
    return float(np.max(np.abs(y / ref - 1)))


def rank_caveat(ranks: dict, by_label: dict, tolerance: float = TOLERANCE) -> tuple[float | None, str | None]:
    """(largest gap between the lowest and the highest rank over their common seeds, the
    caveat when it stays within `tolerance`: no rank ran out of capacity)."""
    if len(ranks) < 2:
        return None, None
    order = sorted(ranks, key=lambda label: ranks[label]["r"] or 0)
    low, high = order[0], order[-1]
    highs = {r.seed: r for r in by_label[high]}
    gaps = [rank_spread(_series(r.data), _series(highs[r.seed].data))
            for r in by_label[low] if r.seed in highs]
    if not gaps:
        return None, None
    gap = max(gaps)
    if gap > tolerance:
        return gap, None
    return gap, (f"LoRA r={ranks[low]['r']} and r={ranks[high]['r']} follow one curve (at most "
                 f"{gap:.1%} apart, within the {tolerance:.0%} tolerance): no rank ran out of "
                 "capacity in this run, so where they leave FT's curve is not a capacity threshold")


def _series(data: dict) -> tuple[list[float], list[float]]:
    points = [p for p in curve(data) if "loss" in p and "tokens" in p]
    return [float(p["tokens"]) for p in points], [float(p["loss"]) for p in points]


def build(results: Path, out: Path, figures: Path) -> list[Path]:
    records = [r for r in records_under(results, FOLDER) if len(_series(r.data)[0]) >= 2]
    png = figures / "rank_curves.png"
    by_label: dict[str, list] = {}
    for r in records:
        by_label.setdefault(str(r.data["experiment"]).rsplit("/", 1)[1], []).append(r)
    if REFERENCE not in by_label or len(by_label) < 2:
        (out / "rank_curves.json").unlink(missing_ok=True)   # never outlives its records
        why = (f"no learning curves (train.curve) under runs/{FOLDER}/ for FT and a LoRA rank "
               f"yet; make them with `{COMMAND}`")
        return [empty_figure(png, "LoRA r = 1 … 256 against FT (LoRA Without Regret (c))", why)]
    ref = min(by_label[REFERENCE], key=lambda r: r.seed)
    ref_t, ref_y = _series(ref.data)
    ranks = {}
    for label, runs in sorted(by_label.items()):
        if label == REFERENCE:
            continue
        per_seed = []
        for r in runs:
            t, y = _series(r.data)
            ft = next((x for x in by_label[REFERENCE] if x.seed == r.seed), ref)
            per_seed.append({"seed": r.seed, "ft_seed": ft.seed,
                             **departure(t, y, *_series(ft.data))})
        r_value = _rank(runs[0].data)
        ranks[label] = {"r": r_value, "seeds": per_seed,
                        "departure_fraction": float(np.mean([s["fraction"] for s in per_seed])),
                        "departed": all(s["departed"] for s in per_seed)}
    spread, caveat = rank_caveat(ranks, by_label)
    doc = {"analysis": "rank_curves", "generated_by": "python -m experiments.analysis rank_curves",
           "model": ref.data.get("model"), "model_display": ref.data.get("model_display"),
           "task": ref.data.get("task"), "window": WINDOW, "tolerance": TOLERANCE,
           "rule": "departure: first logged point from which LoRA's smoothed train loss stays "
                   f"above FT's by more than {TOLERANCE:.0%} to the end (1.0: never)",
           "paper": PAPER, "ranks": ranks, "rank_spread": spread, "caveat": caveat,
           "runs": run_list([RunValue(str(r.data["experiment"]), r.seed, r.path, 0.0, r.data)
                             for r in records])}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rank_curves.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path, plot(by_label, doc, png)]


def _rank(data: dict) -> int | None:
    method = (data.get("config") or {}).get("method") or {}
    # a list with r (schema 3) or a dict of ranks (records before it): target_ranks reads both
    ranks = list(target_ranks(method["targets"], method.get("r")).values()) \
        if method.get("targets") else []
    return max(ranks) if ranks else None


def plot(by_label: dict, doc: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    labels = sorted((l for l in by_label if l != REFERENCE),
                    key=lambda l: doc["ranks"][l]["r"] or 0)
    colours = plt.cm.viridis(np.linspace(0.1, 0.9, max(1, len(labels))))
    ref = min(by_label[REFERENCE], key=lambda r: r.seed)
    t, y = _series(ref.data)
    ax.plot(t, smooth(y), color="black", lw=2.2, label="FT")
    for colour, label in zip(colours, labels):
        run = min(by_label[label], key=lambda r: r.seed)
        t, y = _series(run.data)
        ax.plot(t, smooth(y), color=colour, lw=1.3, label=f"LoRA r={doc['ranks'][label]['r']}")
        seed = doc["ranks"][label]["seeds"][0]
        if seed["departed"]:
            ax.axvline(seed["tokens"], color=colour, ls=":", lw=1)
    ax.set_xlabel("training tokens")
    ax.set_ylabel(f"train loss (trailing mean of {WINDOW} logged points)")
    ax.set_title(f"LoRA r = 1 … 256 against FT, {doc['model_display']} on {doc['task']}\n"
                 "(dotted: where a rank leaves FT's curve for good)", fontsize=10)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
