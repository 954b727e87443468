"""What the stand-in tables built apart from the paper's (minilm.py, smollm2.py) share: each
seed's value at its best epoch, one run per seed, the cell texts and the budget lines."""
from __future__ import annotations

import json
from pathlib import Path

from ..best_epoch import best_epoch
from .aggregate import CellStats
from .collect import RunRecord, Skipped, is_number

MISSING = "–"


def seed_value(record: RunRecord, metric: str, select_by: str | None = None,
               scale: float = 100.0) -> tuple[float, object] | None:
    """(value x scale, epoch) at the seed's best epoch by `select_by` (default: `metric`), the
    first of equal bests; the final metrics where the history holds neither."""
    history = [e for e in ((record.data.get("train") or {}).get("history") or [])
               if isinstance(e, dict)]
    best = best_epoch(history, select_by or metric)
    if best is not None and is_number(best.get(metric)):
        return scale * best[metric], best.get("epoch")
    value = record.data["metrics"].get(metric)
    return (scale * value, None) if is_number(value) else None


def cell_stats(records: list[RunRecord], metric: str, select_by: str | None = None,
               scale: float = 100.0) -> CellStats | None:
    """The median cell over `records` (one per seed), seed by seed; None when none has a value."""
    values, seeds, epochs = [], [], []
    for r in sorted(records, key=lambda x: x.seed):
        got = seed_value(r, metric, select_by, scale)
        if got is not None:
            values.append(got[0])
            seeds.append(r.seed)
            epochs.append(got[1])
    return CellStats(values, seeds, epochs, "median") if values else None


def family_of(record: RunRecord) -> str:
    """The experiment folder of a record (`glue_minilm/lora_sst2` -> `glue_minilm`)."""
    return str(record.data.get("experiment", "")).split("/")[0]


def path_family(path: str) -> str:
    """The experiment folder of a record path `.../runs/<folder>/...` (a skipped record)."""
    parts = Path(path).parts
    return parts[parts.index("runs") + 1] if "runs" in parts[:-1] else ""


def keep_latest(records: list[RunRecord], key, table) -> tuple[list[RunRecord], list[Skipped]]:
    """One run per `key(record)`: a rerun (seed<k>-N) replaces the earlier run of its seed, and a
    run of this table's own replaces one shared from another table (rerun 0). Returns the kept
    runs in path order and the replaced ones as skipped, with the run that replaced each."""
    latest: dict = {}
    skipped = []
    for r in records:
        k = key(r)
        if k not in latest:
            latest[k] = r
            continue
        old, new = sorted([latest[k], r], key=lambda x: x.rerun)
        why = (f"a run shared from another table, where this table's own run {new.path} is read"
               if old.rerun == 0 else f"superseded by the rerun {new.path}")
        skipped.append(Skipped(old.path, why, table))
        latest[k] = new
    return sorted(latest.values(), key=lambda r: r.path), skipped


# ---------------------------------------------------------------------------------- text
def count_text(values: list[int]) -> str:
    """A parameter count, or its range over the records: 73.7K, 22.57M, 148.2K–148.6K."""
    if not values:
        return MISSING
    low, high = min(values), max(values)
    fmt = (lambda v: f"{v / 1e6:.2f}M") if high >= 1e6 else (lambda v: f"{v / 1e3:.1f}K")
    return fmt(low) if low == high else f"{fmt(low)}–{fmt(high)}"


def median_cell(cell: CellStats | None) -> str:
    return f"{MISSING} (n=0)" if cell is None else f"{cell.median:.1f} (n={cell.n})"


def mean_cell(cell: CellStats | None) -> str:
    if cell is None:
        return f"{MISSING} (n=0)"
    pm = "" if cell.std is None else f"±{cell.std:.1f}"
    return f"{cell.mean:.1f}{pm} (n={cell.n})"


def cells_json(cells: dict) -> dict:
    """Column label -> the cell's statistics and every per-seed value, seed and epoch."""
    return {label: None if c is None else {
        "median": c.median, "mean": c.mean, "std": c.std, "n": c.n, "values": c.values,
        "seeds": c.seeds, "epochs": c.epochs} for label, c in cells.items()}


def plural(n, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def stop_rule(epochs: str, patience, least: str | None = None) -> str:
    """How long a run trained: its epoch cap, and the plateau rule where one was set. `least`:
    the fewest evaluations before it may stop, where they differ from the engine's rule."""
    if not patience:
        return epochs
    if isinstance(patience, int) and least is None:   # the engine's rule: 3, and patience + 1
        return (f"up to {epochs}, stopped once the dev metric did not improve for "
                f"{plural(patience, 'epoch')} (after at least {max(3, patience + 1)})")
    what = plural(patience, 'epoch') if isinstance(patience, int) else patience
    return (f"up to {epochs}, stopped once the dev metric did not improve for {what} "
            f"(after at least {least or '3 evaluations, and one more than the patience'})")


def least_evaluations(train: dict) -> int:
    """The fewest evaluations before the plateau rule may stop a run (engine.py: the config's
    min_evaluations, 3 where unset, and one more than the patience)."""
    return max(int(train.get("min_evaluations") or 3), int(train.get("patience") or 0) + 1)


BF16 = "bf16 autocast (float32 weights and AdamW state)"


def per_label(values: dict) -> str:
    """`label v1/v2; label v` from label -> set of values (each sorted as text)."""
    return "; ".join(f"{k} {'/'.join(str(v) for v in sorted(vs, key=str))}" for k, vs in values.items())


def converged_lines(records: list[RunRecord]) -> list[str]:
    """How many runs stopped on the plateau rule (`train.converged`), where the records say."""
    flags = [(r.data.get("train") or {}).get("converged") for r in records]
    if not any(f is not None for f in flags):
        return []
    return [f"Runs whose dev metric stopped improving within the budget (the claims "
            f"ledger's convergence rule): {sum(f is True for f in flags)} of {len(flags)}."]


def trained_lines(trained: dict) -> list[str]:
    """Epochs trained per run, by label, where the runs of a label differ."""
    if not any(len(set(v)) > 1 for v in trained.values()):
        return []
    return ["Epochs trained per run: " + "; ".join(
        f"{k} {min(v)}–{max(v)}" for k, v in trained.items()) + "."]


def epochs_trained(record: RunRecord) -> int:
    return len((record.data.get("train") or {}).get("history") or [])


def write_pair(folder: Path, name: str, markdown: str, data: dict) -> list[Path]:
    """`<folder>/<name>.md` and `.json`."""
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"{name}.md", folder / f"{name}.json"
    md.write_text(markdown, encoding="utf-8")
    js.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return [md, js]
