"""Experiment files that name another file's configuration (`run.same_as: <experiment>` in
conf/experiment): one run fills both tables' cells, read by the table builder and the grid.

The file named is the configuration's owner: its runs are made (the grid runs the owner in
place of every file linking to it) and read as runs of each linking file, one hop, so an owner
never links on (`same_as_links` refuses a chain or a cycle).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from .paths import CONF_DIR

EXPERIMENT_DIR = CONF_DIR / "experiment"


class SameAsError(ValueError):
    """A `run.same_as` that names no experiment file, or one that links on."""


@dataclass(frozen=True)
class SameAs:
    experiment: str     # the file that links (its cell reads the owner's runs)
    owner: str          # the experiment whose runs they are
    table: int | str    # the linking file's run.table
    row: str            # the linking file's run.row: the owner's runs are read under it


def _run_block(path: Path) -> dict:
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("run") or {}


@lru_cache(maxsize=None)
def _links(root: Path) -> tuple[SameAs, ...]:
    found = []
    for path in sorted(root.rglob("*.yaml")):
        if "same_as:" not in path.read_text(encoding="utf-8"):
            continue  # a cheap test first: parsing all files costs a second
        run = _run_block(path)
        if not run.get("same_as"):
            continue
        name = str(path.relative_to(root).with_suffix(""))
        owner = str(run["same_as"])
        if not (root / f"{owner}.yaml").is_file():
            raise SameAsError(f"{path}: run.same_as names {owner!r}, but {root / owner}.yaml does "
                              "not exist: name an experiment file under conf/experiment")
        if run.get("table") is None or not run.get("row"):
            raise SameAsError(f"{path}: run.same_as needs run.table and run.row, which say "
                              "where the owner's runs are read")
        found.append(SameAs(name, owner, run["table"], str(run["row"])))
    linking = {s.experiment for s in found}
    for s in found:
        if s.owner in linking:
            raise SameAsError(f"conf/experiment/{s.experiment}.yaml: run.same_as names "
                              f"{s.owner!r}, which links on itself: name its owner instead "
                              "(links are read one hop)")
    return tuple(found)


def same_as_links(root: Path | None = None) -> tuple[SameAs, ...]:
    """Every link under conf/experiment (or `root`), by the linking file's name."""
    return _links(Path(root or EXPERIMENT_DIR))


def owner_of(experiment: str, root: Path | None = None) -> str:
    """The experiment whose runs fill `experiment`'s cell: its same_as owner, or itself."""
    return next((s.owner for s in same_as_links(root) if s.experiment == experiment), experiment)
