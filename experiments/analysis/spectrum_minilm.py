"""FT's ΔW spectrum on the converged MiniLM stand-in (LoRA Learns Less and Forgets Less §5, the
encoder side): for every GLUE task and seed of `glue_minilm/ft_<task>` (trained until the dev
metric stopped improving), the rank holding 90% of ΔW's energy Σσ² per weight type (query,
key, value, attention.output.dense, intermediate.dense, output.dense; median over the 6
blocks), beside the r of `glue_minilm/lora_<task>`. Writes `analysis/spectrum_minilm.json` and
`figures/spectrum_minilm.png`. Owns `build`.
"""
from __future__ import annotations

# Only runs that converged count (a run its runner says hit its epoch cap still improving is
# left out and listed under "not_included"). The ledger reads, per task, the smallest ratio FT rank / LoRA r over weight types and seeds:
# the reading most favourable to LoRA, as spectrum.py's. The SmolLM2 spectrum (spectrum.py)
# rests on a 1-epoch FT, which the claim cannot use: ΔW's rank grows as training goes on.

import json
from pathlib import Path

from lora_core.families import FAMILIES

from ..claims.convergence import explicit_flag
from .beyond_records import kept_from_records, records_under
from .inputs import MissingInputError
from .spectrum import (FRACTION, PAPER, _ft_weights, _pretrained, compare_to_r, lora_deltas,
                       module_deltas, spectrum_by_type)

TASKS = {"sst2": "SST-2", "mrpc": "MRPC", "cola": "CoLA", "rte": "RTE", "stsb": "STS-B"}
PREFIX = "glue_minilm"
COMMAND = "scripts/converge.sh glue_minilm ft lora"


def _seeds(found: list, experiment: str) -> list:
    """The complete records of `experiment`, one per seed, from one scan of glue_minilm."""
    return [r for r in found if r.data.get("experiment") == experiment]


def _lora_side(results: Path, store, found: list, task: str, blocks: str) -> dict | None:
    """LoRA's r (from its records' config) and its own B·A energy ranks (its first seed whose
    adapter is on this machine), or None where the task has no LoRA record."""
    from .inputs import load_run

    runs = _seeds(found, f"{PREFIX}/lora_{task}")
    if not runs:
        return None
    method = (runs[0].data.get("config") or {}).get("method") or {}
    side = {"experiment": f"{PREFIX}/lora_{task}", "r": int(method["r"]),
            "targets": method.get("targets")}
    for r in runs:
        try:
            lora = load_run(results, side["experiment"], r.seed, store.adapters_root)
        except MissingInputError:
            continue
        side.update(seed=r.seed, alpha=lora.alpha,
                    types=spectrum_by_type(lora_deltas(lora.tensors, lora.alpha, blocks)))
        break
    return side


def _build(store, out: Path) -> dict:
    results = Path(store.results)
    bases, tasks, missing = {}, {}, []   # the starting weights: one for pretrained runs
    found = records_under(results, PREFIX)   # one scan of the records for every task
    for task, display in TASKS.items():
        experiment = f"{PREFIX}/ft_{task}"
        runs = _seeds(found, experiment)
        if not runs:
            missing.append(f"{experiment}: no complete record")
            continue
        seeds = {}
        for run in runs:
            if explicit_flag(run.data) is False:   # ran to its epoch cap still improving
                missing.append(f"{experiment} seed {run.seed} (did not converge)")
                continue
            try:
                record, tuned = _ft_weights(results, experiment, run.seed)
            except MissingInputError:   # its weights are not on this machine (or changed)
                missing.append(f"{experiment} seed {run.seed}")
                continue
            blocks = FAMILIES[record["config"]["model"].get("family", "bert")].blocks
            model = record["config"]["model"]
            start = None if model.get("init", "pretrained") == "pretrained" else run.seed
            if start not in bases:   # a random init (smoke runs, tests) depends on the seed
                bases[start] = _pretrained(record)
            types = spectrum_by_type(module_deltas(bases[start], tuned, blocks))
            seeds[run.seed] = types
        lora = _lora_side(results, store, found, task, blocks) if seeds else None
        if not seeds or lora is None:
            continue
        per_seed = {s: {"types": t, **compare_to_r(t, lora["r"])} for s, t in seeds.items()}
        tasks[task] = {
            "task": display, "ft_experiment": experiment, "lora": lora, "seeds": per_seed,
            "min_ratio_to_lora_r": min(v["min_ratio_to_lora_r"] for v in per_seed.values()),
            "runs": [{"experiment": experiment, "seed": s} for s in sorted(per_seed)]}
    if not tasks:
        raise MissingInputError("no glue_minilm FT run has its weights on this machine ("
                                + (", ".join(missing[:3]) or "no records") + ", ...); FT's "
                                f"weights are git-ignored: the runs: {COMMAND}")
    model = next(iter(tasks.values()))
    first = _seeds(found, model["ft_experiment"])[0].data
    return {"analysis": "spectrum_minilm",
            "generated_by": "python -m experiments.analysis spectrum_minilm",
            "fraction": FRACTION, "model": first.get("model"),
            "model_display": first.get("model_display"), "paper": PAPER,
            "tasks": tasks, "not_included": missing,   # unconverged, or weights not here
            "min_ratio_to_lora_r": min(t["min_ratio_to_lora_r"] for t in tasks.values()),
            "runs": [run for t in tasks.values() for run in t["runs"]]}


def build(store, out: Path) -> list[Path]:
    """The JSON and its figure. Where no FT weights are on this machine (they are git-ignored:
    a fresh clone has the records only), a JSON already built from the same records is kept."""
    path = out / "spectrum_minilm.json"
    try:
        doc = _build(store, out)
    except MissingInputError:
        if kept_from_records(path, Path(store.results)):
            return [path]
        path.unlink(missing_ok=True)   # never outlives its runs
        raise
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path, plot(doc, out.parent / "figures" / "spectrum_minilm.png")]


def plot(doc: dict, path: Path) -> Path:
    """Per weight type and task: FT's energy rank (median over blocks and seeds), each type's
    largest possible rank, and LoRA's r."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = doc["tasks"]
    first = next(iter(next(iter(tasks.values()))["seeds"].values()))["types"]
    types = list(first)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for i, entry in enumerate(tasks.values()):
        ranks = [statistics.median(s["types"][t]["median"] for s in entry["seeds"].values())
                 for t in types]
        ax.plot([x + (i - 2) * 0.08 for x in range(len(types))], ranks, "o",
                label=f"FT ΔW, {entry['task']} ({len(entry['seeds'])} seed(s))")
    ax.plot(range(len(types)), [first[t]["max_rank"] for t in types], "_", ms=18, color="grey",
            label="largest possible")
    r = sorted({entry["lora"]["r"] for entry in tasks.values()})
    for value in r:
        ax.axhline(value, color="red", ls="--", lw=1, label=f"LoRA r = {value}")
    ax.set_xticks(list(range(len(types))), types, rotation=20, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(f"rank for {doc['fraction']:.0%} of Σσ² (median over blocks)")
    ax.set_title(f"Energy rank of FT's ΔW per weight type, {doc['model_display']} (converged runs)",
                 fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
