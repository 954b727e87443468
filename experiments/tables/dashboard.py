"""The W&B summary run of a table: the regenerated table and its figures, logged offline to the
project of the table's seed runs (`lora-repro-tableN`), so `wandb sync` gives a dashboard."""
from __future__ import annotations

from pathlib import Path

from ..tracking import WandbTracker, make_tracker
from .aggregate import BuiltTable
from .render import grid

LONG_COLUMNS = ["row", "profile", "model", "seeds", "column", "ours", "std", "n", "paper",
                "paper_pm", "diff"]


def long_rows(built: BuiltTable) -> list[list]:
    """One line per (row, column) with numbers, for W&B bar charts and filters."""
    out = []
    for r in built.rows:
        for c in built.paper.value_columns:
            cell = r.cells.get(c.key)
            paper = r.paper_row.cells.get(c.key) if r.paper_row else None
            ours = cell.value if cell else None
            out.append([r.row, r.profile or "", r.model_display or "", len(r.seeds), c.label,
                        ours, cell.std if cell else None,
                        cell.n if cell and not cell.derived else None,
                        paper.value if paper else None, paper.pm if paper else None,
                        ours - paper.value if ours is not None and paper else None])
    return out


def log_summary(built: BuiltTable, figures: list[Path], results: Path,
                mode: str = "offline") -> str | None:
    """Log the table as a `wandb.Table` (as shown, and long form) and the figures as images.
    Returns the run's directory, or None when W&B is disabled (WANDB_MODE=disabled)."""
    n = built.paper.number
    tracker = make_tracker({"name": "wandb", "mode": mode}, project=f"table{n}", group="summary",
                           name=f"table{n}-summary",
                           config={"table": n, "title": built.paper.title,
                                   "source": built.paper.source,
                                   "statistic": built.paper.statistic,
                                   "records": [p for r in built.rows for p in r.records]},
                           directory=Path(results) / "wandb")
    if not isinstance(tracker, WandbTracker):
        return None
    import wandb

    shown = grid(built)
    payload = {"table": wandb.Table(columns=shown[0], data=shown[1:]),
               "cells": wandb.Table(columns=LONG_COLUMNS, data=long_rows(built))}
    for path in figures:
        payload[Path(path).stem] = wandb.Image(str(path))
    tracker.log(0, payload)
    tracker.summary({"records_used": built.used_records, "records_skipped": len(built.skipped),
                     "rows_with_runs": sum(r.has_runs for r in built.rows)})
    run_dir = str(Path(tracker.run.dir).parent)
    tracker.finish()
    return run_dir
