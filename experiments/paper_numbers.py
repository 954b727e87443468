"""The paper's reported numbers, as data: `experiments/paper/tableN.yaml` and `figureN.yaml`.
Owns loading and checking those files and reading a printed cell ("67.3±.6") into numbers."""
# Each table file holds the printed strings exactly as paper_spec §1 gives them, so every cell
# is traceable (`PaperCell.source`). A table file says:
#   table, title, source   the table number, a title and where the numbers come from
#   task                   the record task of every column (a column may name its own)
#   statistic              the paper's statistic over seeds: mean or median
#   best_epoch             true (each column's metric picks each seed's epoch), {by: METRIC}
#                          (one metric picks the epoch for every column) or false (last epoch)
#   columns                key, label, metric (a record key, or a list: the first present),
#                          task, scale (record value x scale = the paper's scale), decimals,
#                          better (higher | lower); kind: params (the # trainable column,
#                          record_key under `params`, default trainable) or mean_of (of: keys)
#   rows                   row (the id records name in their `row` field; † kept, * not),
#                          cited (*), dagger (†), model, method, params, cells (one printed
#                          string per column except params, in column order)
#   standins               extra rows of ours (stand-in models) -> the paper row they face
#   notes                  the paper's caveats, printed under the table
#   our_notes              how our runs differ from the paper's (stand-in columns, budgets)
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

PAPER_DIR = Path(__file__).with_name("paper")
STATISTICS = ("mean", "median")
# "67.3±.6", "1482.0 ± 1.0 (+2.2%)", ".30", "2.47": value, optional ±, optional bracketed note
_CELL = re.compile(r"^\s*(?P<value>[+-]?(?:\d+\.?\d*|\.\d+))\s*(?:±\s*(?P<pm>\d*\.?\d+))?"
                   r"\s*(?:\((?P<note>[^)]*)\))?\s*$")
_COUNT = re.compile(r"^\s*(?P<number>[\d,]*\.?\d+)\s*(?P<unit>[KMB]?)\s*$")
_UNITS = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}


class PaperDataError(ValueError):
    """A paper-number file is malformed; the message names the file and the entry."""


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


@dataclass(frozen=True)
class PaperCell:
    """One printed number of the paper: `printed` as in the spec, and what it means."""
    printed: str
    value: float
    pm: float | None
    decimals: int
    note: str | None
    source: str


def parse_cell(printed: str, source: str = "") -> PaperCell:
    m = _CELL.match(str(printed))
    if not m:
        raise PaperDataError(f"{source}: cannot read the printed cell {printed!r} "
                             "(expected e.g. '70.4', '67.3±.6' or '1482.0 ± 1.0 (+2.2%)')")
    return PaperCell(printed=str(printed).strip(), value=float(m["value"]),
                     pm=float(m["pm"]) if m["pm"] else None, decimals=_decimals(m["value"]),
                     note=m["note"], source=source)


@dataclass(frozen=True)
class ParamCount:
    """A printed parameter count ("0.35M", "175,255.8M", "175B") and its value."""
    printed: str
    value: float
    unit: str
    decimals: int


def parse_count(printed: str) -> ParamCount:
    # experiments.params has the same parser, but importing it loads torch and the model zoo;
    # the table builder must stay a reader of records.
    m = _COUNT.match(str(printed))
    if not m:
        raise PaperDataError(f"cannot read the parameter count {printed!r} (expected e.g. '0.35M')")
    number = m["number"].replace(",", "")
    return ParamCount(printed=str(printed).strip(), value=float(number) * _UNITS[m["unit"]],
                      unit=m["unit"], decimals=_decimals(number))


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "metric"            # metric | params | mean_of
    metrics: tuple[str, ...] = ()   # record keys, first present wins
    tasks: tuple[str, ...] = ()     # record tasks this column takes (empty: any)
    scale: float = 1.0
    decimals: int = 1
    better: str = "higher"
    of: tuple[str, ...] = ()
    record_key: str = "trainable"
    params: str | None = None       # a per-column |Θ| the paper prints (Table 1)
    n_train: int | None = None      # only runs trained on this many examples (Table 16's MNLI-n)


@dataclass(frozen=True)
class PaperRow:
    row: str
    cells: dict                     # column key -> PaperCell (or None where nothing is printed)
    params: ParamCount | None = None
    cited: bool = False
    dagger: bool = False
    model: str | None = None
    method: str | None = None

    @property
    def label(self) -> str:
        """The row as the paper marks it: `GPT-2 M FT*`, `GPT-2 M Adapter^L* (0.37M)`."""
        if not self.cited:
            return self.row
        m = re.match(r"^(.*?)(\s+\([^()]*\))?$", self.row)
        return f"{m.group(1)}*{m.group(2) or ''}"


@dataclass(frozen=True)
class PaperTable:
    number: int
    title: str
    source: str
    statistic: str
    best_epoch: bool | str          # True, False, or the metric that picks the epoch
    columns: tuple[Column, ...]
    rows: tuple[PaperRow, ...]
    standins: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    our_notes: tuple[str, ...] = ()  # how our runs differ (stand-in columns, budgets)
    path: Path | None = None

    @property
    def value_columns(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind != "params")

    @property
    def params_column(self) -> Column | None:
        return next((c for c in self.columns if c.kind == "params"), None)

    @property
    def tasks(self) -> set[str]:
        return {t for c in self.columns for t in c.tasks}

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(f"Table {self.number} has no column {key!r}; "
                       f"columns: {', '.join(c.key for c in self.columns)}")

    def row(self, row_id: str) -> PaperRow | None:
        want = normalise_row(row_id)
        return next((r for r in self.rows if normalise_row(r.row) == want), None)

    def cell(self, row_id: str, column: str) -> PaperCell | None:
        row = self.row(row_id)
        if row is None:
            raise KeyError(f"Table {self.number} has no row {row_id!r}")
        return row.cells.get(column)


def normalise_row(row: str) -> str:
    """Row ids compare without a trailing * (cited is a flag, not part of the id) and with
    single spaces; † stays, since a † row is a different setup."""
    return " ".join(str(row).replace("*", " ").split())


def _as_tuple(value) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def _column(entry: dict, table_task, where: str) -> Column:
    try:
        kind = entry.get("kind", "metric")
        if kind not in ("metric", "params", "mean_of"):
            raise PaperDataError(f"{where}: column {entry['key']!r} kind {kind!r}: "
                                 "choose metric, params or mean_of")
        if kind == "metric" and not entry.get("metric"):
            raise PaperDataError(f"{where}: column {entry['key']!r} needs a `metric`")
        if entry.get("better", "higher") not in ("higher", "lower"):
            raise PaperDataError(f"{where}: column {entry['key']!r} better: higher or lower")
        return Column(key=str(entry["key"]), label=str(entry.get("label", entry["key"])),
                      kind=kind, metrics=_as_tuple(entry.get("metric")),
                      tasks=tuple(str(t).lower() for t in _as_tuple(entry.get("task", table_task)))
                      if kind == "metric" else (),
                      scale=float(entry.get("scale", 1)), decimals=int(entry.get("decimals", 1)),
                      better=entry.get("better", "higher"), of=_as_tuple(entry.get("of")),
                      record_key=entry.get("record_key", "trainable"), params=entry.get("params"),
                      n_train=int(entry["n_train"]) if entry.get("n_train") is not None else None)
    except KeyError as err:
        raise PaperDataError(f"{where}: a column lacks {err}") from None


def _row(entry: dict, columns: tuple[Column, ...], source: str, where: str) -> PaperRow:
    if "row" not in entry:
        raise PaperDataError(f"{where}: a row lacks its `row` id: {entry}")
    value_cols = [c for c in columns if c.kind != "params"]
    cells = entry.get("cells") or []
    if len(cells) != len(value_cols):
        raise PaperDataError(f"{where}: row {entry['row']!r} has {len(cells)} cells for "
                             f"{len(value_cols)} columns ({', '.join(c.key for c in value_cols)})")
    parsed = {c.key: None if text is None else parse_cell(text, source)
              for c, text in zip(value_cols, cells)}
    params = entry.get("params")
    return PaperRow(row=str(entry["row"]), cells=parsed,
                    params=parse_count(params) if params is not None else None,
                    cited=bool(entry.get("cited")), dagger=bool(entry.get("dagger")),
                    model=entry.get("model"), method=entry.get("method"))


def read_table_file(path: Path) -> PaperTable:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    where = str(path)
    for key in ("table", "title", "source", "columns", "rows"):
        if key not in data:
            raise PaperDataError(f"{where}: missing `{key}`")
    statistic = data.get("statistic", "mean")
    if statistic not in STATISTICS:
        raise PaperDataError(f"{where}: statistic {statistic!r}: choose one of {STATISTICS}")
    best = data.get("best_epoch", False)
    best_epoch = best["by"] if isinstance(best, dict) else bool(best)
    columns = tuple(_column(c, data.get("task"), where) for c in data["columns"])
    keys = [c.key for c in columns]
    if len(set(keys)) != len(keys):
        raise PaperDataError(f"{where}: column keys repeat: {keys}")
    for c in columns:
        if c.kind == "mean_of" and not set(c.of) <= set(keys):
            raise PaperDataError(f"{where}: column {c.key!r} averages unknown columns {c.of}")
    rows = tuple(_row(r, columns, data["source"], where) for r in data["rows"])
    ids = [normalise_row(r.row) for r in rows]
    if len(set(ids)) != len(ids):
        raise PaperDataError(f"{where}: row ids repeat; tell repeated printed rows apart, "
                             "e.g. by their parameter count")
    if "shared_runs" in data:
        raise PaperDataError(f"{where}: shared_runs moved into the experiment files: give the "
                             "linking file `run.same_as: <experiment>` (experiments/same_as.py)")
    standins = {str(k): str(v) for k, v in (data.get("standins") or {}).items()}
    for standin, target in standins.items():
        if normalise_row(target) not in ids:
            raise PaperDataError(f"{where}: stand-in {standin!r} faces unknown row {target!r}")
    return PaperTable(number=int(data["table"]), title=data["title"], source=data["source"],
                      statistic=statistic, best_epoch=best_epoch, columns=columns, rows=rows,
                      standins=standins,
                      notes=tuple(data.get("notes") or ()),
                      our_notes=tuple(data.get("our_notes") or ()), path=Path(path))




def table_numbers() -> list[int]:
    """The tables with a file of paper numbers, in order."""
    found = (re.fullmatch(r"table(\d+)\.yaml", p.name) for p in PAPER_DIR.glob("table*.yaml"))
    return sorted(int(m.group(1)) for m in found if m)


@lru_cache(maxsize=None)
def load_table(number: int) -> PaperTable:
    path = PAPER_DIR / f"table{int(number)}.yaml"
    if not path.exists():
        raise PaperDataError(f"no paper numbers for Table {number}: {path} is absent "
                             f"(tables with data: {', '.join(map(str, table_numbers()))})")
    return read_table_file(path)


def load_all() -> list[PaperTable]:
    return [load_table(n) for n in table_numbers()]


@dataclass(frozen=True)
class FigureSpec:
    number: int
    title: str
    source: str
    table: int
    x: str
    xlog: bool
    series_by: str
    series: tuple[str, ...]
    panels: tuple[dict, ...]


def figure_numbers() -> list[int]:
    found = (re.fullmatch(r"figure(\d+)\.yaml", p.name) for p in PAPER_DIR.glob("figure*.yaml"))
    return sorted(int(m.group(1)) for m in found if m)


@lru_cache(maxsize=None)
def load_figure(number: int) -> FigureSpec:
    path = PAPER_DIR / f"figure{int(number)}.yaml"
    if not path.exists():
        raise PaperDataError(f"no figure spec for Figure {number}: {path} is absent "
                             f"(figures with data: {', '.join(map(str, figure_numbers()))})")
    d = yaml.safe_load(path.read_text(encoding="utf-8"))
    table = load_table(d["table"])
    for panel in d["panels"]:
        table.column(panel["column"])  # fails early, naming the column, if the table lacks it
    return FigureSpec(number=int(d["figure"]), title=d["title"], source=d["source"],
                      table=int(d["table"]), x=d.get("x", "params"), xlog=bool(d.get("xlog")),
                      series_by=d.get("series_by", "method"), series=tuple(d.get("series", ())),
                      panels=tuple(d["panels"]))
