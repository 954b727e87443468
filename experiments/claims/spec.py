"""The claims ledger as data: `experiments/claims/ledger/*.yaml`, one claim a file, read with
`yaml.safe_load` and checked here. Owns `Claim`, `Comparison`, `Selector`, `load_ledger`."""
from __future__ import annotations

# A claim is a list of comparisons `a RELATION b (margin δ)`; each side selects evidence:
#   records   {experiment, table, column}   a paper table's column gives metric, scale, epoch rule
#             {experiment, metric, scale, better}   the same, spelled out
#             {experiment, field}           a record field (peak_memory_mb, train.tokens_per_s)
#   artifact  {file, key, command}          a number or list in a results JSON (bench, analysis)
#   constant  {value}                       a threshold
# `plateau: {a: EXPERIMENT, b: EXPERIMENT}` on a comparison names the same sides trained to a
# plateau: read in place of a's and b's experiments once both have a run (evaluate.as_read).
# The paper's numbers are referenced, never retyped: {table, row, column} reads
# experiments/paper/tableN.yaml; {file, key} reads the `paper` block an analysis JSON carries.

from dataclasses import dataclass, field
from pathlib import Path

import re

import yaml

from ..paper_numbers import PaperDataError, load_table
from ..paths import CONF_DIR
from .convergence import ConvergenceRule
from .stats import RELATIONS

LEDGER_DIR = Path(__file__).with_name("ledger")
RULES_FILE = "rules.yaml"
_CLAIM_KEYS = {"id", "statement", "where", "stand_in", "comparisons", "paper_scale", "notes",
               "source"}
# A claim of later work (issue #27) names its source; a claim without one is the paper's.
_SOURCE_KEYS = {"work", "authors", "year", "url", "finding"}
_COMPARISON_KEYS = {"label", "a", "b", "relation", "margin", "relative_margin", "paper",
                    "trained_floor", "floor_sides", "point_decides", "paired", "plateau"}
_SELECTOR_KEYS = {"experiment", "table", "column", "metric", "scale", "better", "field", "file",
                  "key", "command", "runs_key", "value", "n_train", "converges", "caveat_key"}


class LedgerError(ValueError):
    """A claim file is malformed; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Selector:
    kind: str                        # records | field | artifact | value
    experiment: str | None = None
    table: int | None = None
    column: str | None = None
    metrics: tuple[str, ...] = ()
    scale: float = 1.0
    better: str = "higher"
    best_epoch: bool = True          # read each seed at its best epoch (the table's rule)
    tasks: tuple[str, ...] = ()
    field: str | None = None
    file: str | None = None
    key: str | None = None
    command: str | None = None
    runs_key: str | None = None      # an artifact's list of {experiment, seed} it was built from
    # an artifact's note, when set, on why its value cannot decide the relation (only a bound,
    # a probe the base model cannot do)
    caveat_key: str | None = None
    value: float | None = None
    n_train: int | None = None
    converges: bool = True           # does this evidence need converged runs?

    def describe(self) -> str:
        if self.kind == "value":
            return f"{self.value:g}"
        if self.kind == "artifact":
            return f"{self.file}:{self.key}"
        what = self.field or (f"Table {self.table} {self.column}" if self.column
                              else "/".join(self.metrics))
        n = f", n_train={self.n_train}" if self.n_train else ""
        return f"{self.experiment} ({what}{n})"


@dataclass(frozen=True)
class PaperRef:
    printed: str | None
    source: str


@dataclass(frozen=True)
class Comparison:
    label: str
    a: Selector
    b: Selector
    relation: str
    margin: float = 0.0
    relative_margin: float | None = None   # δ = relative_margin × |mean(b)|
    paper_a: PaperRef | None = None
    paper_b: PaperRef | None = None
    trained_floor: float | None = None     # these sides' seed medians must clear it
    # The levels are what FT and LoRA reach once trained; a baseline with far fewer
    # parameters (BitFit, adapters) may converge below them, so a claim about it floors a only.
    floor_sides: tuple[str, ...] = ("a", "b")
    point_decides: bool = False            # may a point value (no interval) decide the verdict?
    # Two artifact lists whose i-th values were measured together (a round of interleaved
    # timing trials): the interval is over the differences a_i − b_i, so the machine's drift
    # between rounds, which hits both sides alike, cancels.
    paired: bool = False
    # (a, b): the experiments of the same two sides trained to a plateau (issue #23's converging
    # stand-ins); the ledger reads them in place of a's and b's once both have a run
    # (evaluate.as_read), the shorter runs until then.
    plateau: tuple[str, str] | None = None


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    where: str
    comparisons: tuple[Comparison, ...]
    stand_in: str | None = None
    paper_scale: tuple[str, ...] = ()      # commands that run the paper's own setting (GPU)
    notes: tuple[str, ...] = ()
    path: Path | None = None
    source: dict | None = None             # later work: {work, authors, year, url, finding}


@dataclass(frozen=True)
class Rules:
    convergence: ConvergenceRule
    level: float = 0.95
    n_resamples: int = 10000
    bootstrap_seed: int = 0


@dataclass(frozen=True)
class Ledger:
    claims: tuple[Claim, ...]
    rules: Rules
    directory: Path = field(default=LEDGER_DIR)


def _unknown(data: dict, allowed: set, where: str) -> None:
    extra = set(data) - allowed
    if extra:
        raise LedgerError(f"{where}: unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")


def _tuple(value) -> tuple:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


def parse_selector(data, where: str) -> Selector:
    if isinstance(data, (int, float)) and not isinstance(data, bool):
        return Selector("value", value=float(data))
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: a side is {data!r}; give {{experiment: ...}}, "
                          "{file: ..., key: ...} or {value: NUMBER}")
    _unknown(data, _SELECTOR_KEYS, where)
    if "value" in data:
        return Selector("value", value=float(data["value"]))
    if "file" in data:
        if not data.get("key") or not data.get("command"):
            raise LedgerError(f"{where}: an artifact side needs `key` (a dotted path into the "
                              "JSON) and `command` (what writes the file)")
        return Selector("artifact", file=str(data["file"]), key=str(data["key"]),
                        command=str(data["command"]), runs_key=data.get("runs_key"),
                        converges=bool(data.get("converges", bool(data.get("runs_key")))),
                        caveat_key=data.get("caveat_key"))
    if not data.get("experiment"):
        raise LedgerError(f"{where}: a side needs `experiment`, `file` or `value`")
    experiment = str(data["experiment"])
    if not (CONF_DIR / "experiment" / f"{experiment}.yaml").is_file():
        raise LedgerError(f"{where}: experiment {experiment!r} has no file "
                          f"conf/experiment/{experiment}.yaml; name an existing experiment")
    n_train = int(data["n_train"]) if data.get("n_train") is not None else None
    if data.get("field"):
        return Selector("field", experiment=experiment, field=str(data["field"]),
                        scale=float(data.get("scale", 1)), better=data.get("better", "lower"),
                        n_train=n_train, converges=bool(data.get("converges", False)))
    if data.get("column") is not None:
        try:
            table = load_table(int(data["table"]))
            column = table.column(str(data["column"]))
        except (KeyError, TypeError, ValueError, PaperDataError) as err:
            raise LedgerError(f"{where}: table/column: {err}") from None
        return Selector("records", experiment=experiment, table=table.number,
                        column=column.key, metrics=column.metrics, scale=column.scale,
                        better=column.better, best_epoch=table.best_epoch is not False,
                        tasks=column.tasks, n_train=n_train,
                        converges=bool(data.get("converges", True)))
    if not data.get("metric"):
        raise LedgerError(f"{where}: a records side needs `table` and `column`, or `metric`")
    return Selector("records", experiment=experiment, metrics=_tuple(data["metric"]),
                    scale=float(data.get("scale", 1)), better=data.get("better", "higher"),
                    n_train=n_train, converges=bool(data.get("converges", True)))


def parse_paper_ref(data, where: str) -> PaperRef | None:
    if data is None:
        return None
    if isinstance(data, str):
        return PaperRef(data, "as stated in the text")
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: paper reference {data!r}: give {{table, row, column}}, "
                          "{file, key} or a quoted statement")
    if {"table", "row", "column"} <= set(data):
        try:
            cell = load_table(int(data["table"])).cell(str(data["row"]), str(data["column"]))
        except (KeyError, PaperDataError) as err:
            raise LedgerError(f"{where}: paper cell: {err}") from None
        return PaperRef(cell.printed if cell else None,
                        f"Table {data['table']}, {data['row']}, {data['column']}")
    if {"file", "key"} <= set(data):
        return PaperRef(None, f"{data['file']}:{data['key']}")   # read when the ledger is built
    raise LedgerError(f"{where}: paper reference {data!r}: give {{table, row, column}} or "
                      "{file, key}")


def parse_comparison(data, where: str) -> Comparison:
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: a comparison must be a mapping")
    _unknown(data, _COMPARISON_KEYS, where)
    for key in ("label", "a", "b", "relation"):
        if key not in data:
            raise LedgerError(f"{where}: a comparison lacks `{key}`")
    if data["relation"] not in RELATIONS:
        raise LedgerError(f"{where}: relation {data['relation']!r}: choose one of "
                          f"{', '.join(RELATIONS)}")
    where = f"{where} [{data['label']}]"
    a, b = parse_selector(data["a"], f"{where} a"), parse_selector(data["b"], f"{where} b")
    if a.kind == "value":
        raise LedgerError(f"{where}: side a must select evidence; put a constant on side b")
    paper = data.get("paper") or {}
    if not isinstance(paper, dict):
        raise LedgerError(f"{where}: paper: give {{a: REF, b: REF}}")
    margin = float(data.get("margin", 0.0))
    relative = data.get("relative_margin")
    if margin < 0 or (relative is not None and float(relative) < 0):
        raise LedgerError(f"{where}: margins are ≥ 0")
    paired = data.get("paired", False)
    if not isinstance(paired, bool) or (paired and not a.kind == b.kind == "artifact"):
        raise LedgerError(f"{where}: paired: true pairs two artifact lists measured together "
                          "(a file/key on both sides); remove it or select artifacts")
    sides = data.get("floor_sides", ["a", "b"])
    if not (isinstance(sides, list) and sides and set(sides) <= {"a", "b"}):
        raise LedgerError(f"{where}: floor_sides lists the sides trained_floor applies to, "
                          f"[a], [b] or [a, b]; got {sides!r}")
    if "floor_sides" in data and data.get("trained_floor") is None:
        raise LedgerError(f"{where}: floor_sides without trained_floor; add the floor or "
                          "remove floor_sides")
    plateau = _plateau(data.get("plateau"), a, b, where)
    return Comparison(label=str(data["label"]), a=a, b=b, relation=data["relation"],
                      margin=margin, relative_margin=float(relative) if relative is not None
                      else None, paper_a=parse_paper_ref(paper.get("a"), f"{where} paper.a"),
                      paper_b=parse_paper_ref(paper.get("b"), f"{where} paper.b"),
                      trained_floor=float(data["trained_floor"])
                      if data.get("trained_floor") is not None else None,
                      floor_sides=tuple(sides),
                      point_decides=bool(data.get("point_decides", False)), paired=paired,
                      plateau=plateau)


def _plateau(data, a: Selector, b: Selector, where: str) -> tuple[str, str] | None:
    """`plateau: {a: EXPERIMENT, b: EXPERIMENT}`, both files present, both sides run records."""
    if data is None:
        return None
    if not (isinstance(data, dict) and set(data) == {"a", "b"}):
        raise LedgerError(f"{where}: plateau: give {{a: EXPERIMENT, b: EXPERIMENT}}, the two "
                          "sides' experiments trained to a plateau")
    if a.experiment is None or b.experiment is None:
        raise LedgerError(f"{where}: plateau replaces the experiments of both sides; both must "
                          "select records (`experiment: ...`)")
    for side in ("a", "b"):
        name = str(data[side])
        if not (CONF_DIR / "experiment" / f"{name}.yaml").is_file():
            raise LedgerError(f"{where}: plateau.{side} {name!r} has no file "
                              f"conf/experiment/{name}.yaml; name an existing experiment")
    return str(data["a"]), str(data["b"])


def parse_claim(data, path: Path) -> Claim:
    where = str(path)
    if not isinstance(data, dict):
        raise LedgerError(f"{where}: a claim file holds one mapping")
    _unknown(data, _CLAIM_KEYS, where)
    for key in ("id", "statement", "where", "comparisons"):
        if not data.get(key):
            raise LedgerError(f"{where}: missing `{key}`")
    source = data.get("source")
    if source is not None:
        if not isinstance(source, dict) or not source.get("work") or not source.get("finding"):
            raise LedgerError(f"{where}: source: give a mapping with at least `work` (the "
                              "later work's title) and `finding` (what it reports, in its words)")
        _unknown(source, _SOURCE_KEYS, f"{where} source")
        source = {k: str(v) for k, v in source.items()}
    comparisons = tuple(parse_comparison(c, f"{where} comparisons[{i}]")
                        for i, c in enumerate(data["comparisons"]))
    for command in _tuple(data.get("paper_scale")):
        for names in re.findall(r"experiment=(\S+)", str(command)):
            for name in names.split(","):
                if not (CONF_DIR / "experiment" / f"{name}.yaml").is_file():
                    raise LedgerError(f"{where}: paper_scale names experiment {name!r}, which "
                                      f"has no conf/experiment/{name}.yaml")
    return Claim(id=str(data["id"]), statement=str(data["statement"]).strip(),
                 where=str(data["where"]), comparisons=comparisons,
                 stand_in=data.get("stand_in"), paper_scale=_tuple(data.get("paper_scale")),
                 notes=_tuple(data.get("notes")), path=path, source=source)


def load_rules(directory: Path) -> Rules:
    path = Path(directory) / RULES_FILE
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data = data or {}
    _unknown(data, {"convergence", "level", "n_resamples", "bootstrap_seed"}, str(path))
    return Rules(ConvergenceRule.from_dict(data.get("convergence"), str(path)),
                 float(data.get("level", 0.95)), int(data.get("n_resamples", 10000)),
                 int(data.get("bootstrap_seed", 0)))


def load_ledger(directory: Path = LEDGER_DIR) -> Ledger:
    """Every claim file under `directory` (sorted by name) and its rules.yaml."""
    directory = Path(directory)
    files = sorted(p for p in directory.glob("*.yaml") if p.name != RULES_FILE)
    if not files:
        raise LedgerError(f"{directory}: no claim files (*.yaml)")
    claims = []
    for path in files:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise LedgerError(f"{path}: not valid YAML ({err})") from None
        claims.append(parse_claim(data, path))
    ids = [c.id for c in claims]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise LedgerError(f"{directory}: claim ids repeat: {dupes}")
    return Ledger(tuple(claims), load_rules(directory), directory)
