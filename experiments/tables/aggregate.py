"""From run records to table rows: records grouped by (row, profile, model), one value per seed
(its best epoch where the paper takes it), and the seed statistics beside the paper's cell."""
from __future__ import annotations

# Records of different profiles or models never share a row; a paper row with no run of ours
# is kept, empty, so a table always shows every row the paper prints.

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..paper_numbers import Column, PaperRow, PaperTable, normalise_row
from ..same_as import same_as_links
from .collect import RunRecord, Skipped, is_number

PROFILE_ORDER = {"paper": 0, "stand-in": 1, "tiny": 2, "smoke": 3}


def shown_profile(profile: str, model: str, paper_row: PaperRow | None) -> str:
    """A `paper`-profile run of another model than the paper row's is a stand-in: the paper's
    method and recipe on an open model, at the budget its experiment file sets."""
    if profile == "paper" and paper_row is not None and paper_row.model \
            and model != paper_row.model:
        return "stand-in"
    return profile


@dataclass
class CellStats:
    """One table cell of ours: the per-seed values on the paper's scale and their statistics."""
    values: list[float]
    seeds: list[int]
    epochs: list                  # per seed: the history epoch taken, or None for final metrics
    statistic: str                # the table's: mean or median
    derived: bool = False         # a mean over other cells (Table 2's Avg), not over seeds

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds; none from a single seed."""
        return statistics.stdev(self.values) if self.n >= 2 and not self.derived else None

    @property
    def value(self) -> float:
        return self.median if self.statistic == "median" else self.mean


@dataclass
class BuiltRow:
    row: str                      # the label shown
    paper_row: PaperRow | None    # the paper row this row's cells are compared with
    extra: bool                   # a row the paper does not print (a stand-in, say)
    profile: str | None = None
    model: str | None = None
    model_display: str | None = None
    seeds: list[int] = field(default_factory=list)
    cells: dict = field(default_factory=dict)        # column key -> CellStats | None
    params: list[float] = field(default_factory=list)
    records: list[str] = field(default_factory=list)

    @property
    def has_runs(self) -> bool:
        return bool(self.records)


@dataclass
class BuiltTable:
    paper: PaperTable
    rows: list[BuiltRow]
    skipped: list[Skipped]

    @property
    def used_records(self) -> int:
        return sum(len(r.records) for r in self.rows)


def _history(record: RunRecord) -> list[dict]:
    train = record.data.get("train") or {}
    return [e for e in (train.get("history") or []) if isinstance(e, dict)]


def _selection(table: PaperTable, column: Column) -> tuple[tuple[str, ...], str] | None:
    """The metric keys that pick each seed's epoch for `column`, and which way is better."""
    if table.best_epoch is True:
        return column.metrics, column.better
    if isinstance(table.best_epoch, str):
        by = table.best_epoch
        better = next((c.better for c in table.columns if by in c.metrics), "higher")
        return (by,), better
    return None


def chosen_epoch(record: RunRecord, table: PaperTable, column: Column) -> dict | None:
    """The history entry a seed is read at: its best epoch by the selection metric where the
    history has it (the first of equal bests), else its last epoch; None without a history."""
    history = _history(record)
    selection = _selection(table, column)
    if selection:
        keys, better = selection
        for key in keys:
            candidates = [e for e in history if is_number(e.get(key))]
            if candidates:
                pick = max if better == "higher" else min
                return pick(candidates, key=lambda e: e[key])
    return history[-1] if history else None


def seed_value(record: RunRecord, table: PaperTable, column: Column) -> tuple[float, object] | None:
    """(value on the paper's scale, epoch taken or None for the final metrics), or None when
    the record has none of the column's metrics. A metric kept per epoch is read at the chosen
    epoch; one computed once after training (test-set BLEU, say) comes from `metrics`."""
    entry = chosen_epoch(record, table, column)
    metrics = record.data["metrics"]
    for key in column.metrics:
        if entry is not None and is_number(entry.get(key)):
            return entry[key] * column.scale, entry.get("epoch")
        if is_number(metrics.get(key)):
            return metrics[key] * column.scale, None
    return None


def _takes(column: Column, record: RunRecord) -> bool:
    if column.n_train is not None:
        data = record.data.get("data") or {}
        if data.get("train_examples") != column.n_train:
            return False
    return not column.tasks or record.task in column.tasks


def _group_key(record: RunRecord) -> tuple[str, str, str]:
    return normalise_row(record.row), record.profile, record.model


def _drop_superseded(records: list[RunRecord], skipped: list[Skipped]) -> list[RunRecord]:
    """A rerun of the same seed, task and training-set size (seed<k>-N) replaces the earlier
    run: the same seed counted twice would weigh it double. Runs on different n (Table 16's
    columns) are different cells, never reruns of each other."""
    def key(r: RunRecord) -> tuple:
        return _group_key(r), r.seed, r.task, (r.data.get("data") or {}).get("train_examples")

    latest: dict = {}
    for r in records:
        if key(r) not in latest or r.rerun > latest[key(r)].rerun:
            latest[key(r)] = r
    kept = []
    for r in records:
        winner = latest[key(r)]
        if winner is r:
            kept.append(r)
        else:
            why = (f"a run shared from another table, where this table's own run {winner.path} "
                   "is read" if r.rerun == 0 else f"superseded by the rerun {winner.path}")
            skipped.append(Skipped(r.path, why, r.table))
    return kept


def _fill_row(row: BuiltRow, records: list[RunRecord], table: PaperTable,
              skipped: list[Skipped]) -> None:
    used = set()  # paths of records that gave at least one value
    for column in table.value_columns:
        if column.kind != "metric":
            continue
        values, seeds, epochs = [], [], []
        for r in records:
            if not _takes(column, r):
                continue
            got = seed_value(r, table, column)
            if got is not None:
                values.append(got[0])
                seeds.append(r.seed)
                epochs.append(got[1])
                used.add(r.path)
        row.cells[column.key] = CellStats(values, seeds, epochs, table.statistic) if values else None
    for r in records:
        if r.path not in used:
            wanted = sorted({m for c in table.value_columns if _takes(c, r) for m in c.metrics})
            skipped.append(Skipped(r.path, f"holds none of Table {table.number}'s metrics "
                                           f"({', '.join(wanted)})", table.number))
    for column in table.value_columns:
        if column.kind == "mean_of":
            parts = [row.cells.get(k) for k in column.of]
            row.cells[column.key] = (CellStats([statistics.fmean(p.value for p in parts)], [], [],
                                               "mean", derived=True)
                                     if all(parts) else None)
    kept = [r for r in records if r.path in used]
    row.seeds = sorted({r.seed for r in kept})
    row.records = [r.path for r in kept]
    params_key = table.params_column.record_key if table.params_column else "trainable"
    row.params = [n for n in (record_params(r, params_key) for r in kept) if n is not None]
    if kept:
        row.model_display = kept[0].model_display


def record_params(record: RunRecord, key: str) -> int | None:
    """A run's trainable count for the table: the deployed count where the record has one
    (a prefix-layer's reparameterisation folded away, as the paper counts), else `key`."""
    params = record.data.get("params")
    if not isinstance(params, dict):
        return None
    for k in ("deployed", key):
        if is_number(params.get(k)):
            return params[k]
    return None


def shared_records(table: PaperTable | int | str, records: list[RunRecord],
                   conf: Path | None = None) -> list[RunRecord]:
    """The runs of the configuration a file of this table names with `run.same_as` (another
    table's experiment, experiments/same_as.py), read as runs of that file: its row, the source
    path kept in `shared_from`. They rank below a run of this table's own for the same seed
    (rerun 0). `table`: a paper table or a stand-in table's run.table; `conf`: the experiment
    files' folder (default conf/experiment)."""
    number = table.number if isinstance(table, PaperTable) else table
    links = [s for s in same_as_links(conf) if str(s.table) == str(number)]
    if not links:
        return []
    # an owner two files of this table link to (none today) is read as the first by name
    by_owner = {}
    for s in links:
        by_owner.setdefault(s.owner, s)
    return [RunRecord(r.path, {**r.data, "experiment": by_owner[r.data["experiment"]].experiment,
                               "row": by_owner[r.data["experiment"]].row, "shared_from": r.path},
                      number, 0)
            for r in records if r.data.get("experiment") in by_owner]


def build(table: PaperTable, records: list[RunRecord], skipped: list[Skipped]) -> BuiltTable:
    """The table's rows: every paper row (one per profile and model that ran it, or one empty
    row), then rows the paper does not print, each compared with the paper row it stands in for.
    `skipped` holds what was skipped while reading; this table's share of it is kept."""
    mine_skipped = [s for s in skipped if s.table == table.number]
    mine = []
    for r in records + shared_records(table, records):
        if r.table != table.number:
            continue
        if table.tasks and r.task not in table.tasks:
            mine_skipped.append(Skipped(r.path, f"task {r.task!r} is not a column of Table "
                                                f"{table.number} ({', '.join(sorted(table.tasks))})",
                                        table.number))
            continue
        mine.append(r)
    mine = _drop_superseded(mine, mine_skipped)

    groups: dict[tuple, list[RunRecord]] = {}
    for r in mine:
        groups.setdefault(_group_key(r), []).append(r)

    def order(key):
        return PROFILE_ORDER.get(key[1], len(PROFILE_ORDER)), key[1], key[2]

    rows = []
    for paper_row in table.rows:
        keys = sorted((k for k in groups if k[0] == normalise_row(paper_row.row)), key=order)
        filled = []
        for key in keys:
            row = BuiltRow(paper_row.label, paper_row, extra=False,
                           profile=shown_profile(key[1], key[2], paper_row), model=key[2])
            _fill_row(row, groups[key], table, mine_skipped)
            if row.has_runs:
                filled.append(row)
        rows += filled or [BuiltRow(paper_row.label, paper_row, extra=False)]

    paper_ids = {normalise_row(r.row) for r in table.rows}
    standins = {normalise_row(k): v for k, v in table.standins.items()}
    extra_keys = sorted((k for k in groups if k[0] not in paper_ids),
                        key=lambda k: (k[0],) + order(k))
    for key in extra_keys:
        face = standins.get(key[0])
        facing_row = table.row(face) if face else None
        row = BuiltRow(groups[key][0].row, facing_row, extra=True,
                       profile=shown_profile(key[1], key[2], facing_row), model=key[2])
        _fill_row(row, groups[key], table, mine_skipped)
        if row.has_runs:
            rows.append(row)
    return BuiltTable(table, rows, sorted(mine_skipped, key=lambda s: s.path))
