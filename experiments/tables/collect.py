"""Reading run records for the tables: every `record.json` under `<results>/runs`, accepted
(complete, with the fields a table needs) or skipped with its path and the reason."""
from __future__ import annotations

# Nothing is averaged from a record that is unreadable, unfinished or ambiguous about its
# table; it is reported instead, by path, so that a missing cell can be explained.

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..converge import FAMILIES as CONVERGE_FAMILIES
from ..paper_numbers import table_numbers
from ..record_migrations import RecordVersionError, migrate
from ..records import RECORD
from ..run_record import Record, RecordError

REQUIRED = ("experiment", "row", "model", "profile", "seed", "status")
_SEED_DIR = re.compile(r"^seed(\d+)(?:-(\d+))?$")
_TABLE_DIR = re.compile(r"^table(\d+)$")


# A stand-in profile (conf/profile/standin_*.yaml) reads as `paper` in the tables and the
# ledger: the records written before those profiles say `paper` (a stand-in ran the paper's
# recipe on another model, at the budget its experiment file set), so old and new runs of one
# cell share a row; aggregate.shown_profile shows them as stand-ins where the model is not the
# paper row's.
STANDIN_PROFILE_PREFIX = "standin"


def table_profile(profile: str) -> str:
    """The profile a record's runs are grouped and shown under."""
    return "paper" if profile.startswith(STANDIN_PROFILE_PREFIX) else profile


@dataclass(frozen=True)
class Skipped:
    path: str                 # relative to the results directory
    reason: str
    table: int | str | None   # the table it would have fed, where that can be told


@dataclass(frozen=True)
class RunRecord:
    path: str                 # relative to the results directory
    data: dict                # the run_record.Record it parsed to, as its JSON dict
    table: int | str | None   # a paper table's number, or a stand-in table's name
    rerun: int                # 1 for seed<k>/, N for seed<k>-N/

    @property
    def row(self) -> str:
        return str(self.data["row"])

    @property
    def profile(self) -> str:
        return table_profile(str(self.data["profile"]))

    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def model_display(self) -> str:
        return str(self.data.get("model_display") or self.data["model"])

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def task(self) -> str:
        return str(self.data.get("task") or "").lower()


def is_number(value) -> bool:
    """A usable metric value: a real number, not a bool, None or NaN (e.g. an uncomputed METEOR)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def table_from_experiment(experiment: str) -> int | None:
    """`table3/gpt2_m_lora` -> 3; stand-ins such as `e2e_smollm2/lora` name no table."""
    m = _TABLE_DIR.match(str(experiment).split("/", 1)[0])
    return int(m.group(1)) if m else None


# The run.table of stand-in tables the paper does not have, each read by its own module
# (tables/minilm.py, tables/smollm2.py), never by aggregate.build, which takes numbers only.
STANDIN_TABLES = ("2_minilm", "gpt3_smollm2", "s7_smollm2", "scaling_smollm2", "lowdata_smollm2")
# Record groups no table build reads: the converging stand-ins' lr sweeps, this one's and any
# superseded one's (experiments/converge.py), and the Section 7 MiniLM runs, read by the
# analyses and the claims ledger.
UNTABLED_GROUPS = (*dict.fromkeys(name for f in CONVERGE_FAMILIES.values()
                                  for name in (f.previous, f.analysis) if name), "s7_minilm")


def _table_field(value) -> int | str | None:
    if value is None or value == "":
        return None
    if str(value) in STANDIN_TABLES + UNTABLED_GROUPS:
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"its `table` field {value!r} is not a table number nor one of "
                         f"{', '.join(STANDIN_TABLES + UNTABLED_GROUPS)}") from None


def _rerun_index(path: Path) -> int:
    m = _SEED_DIR.match(path.parent.name)
    return int(m.group(2)) if m and m.group(2) else 1


def read_one(path: Path, results: Path) -> RunRecord | Skipped:
    rel = path.relative_to(results).as_posix()
    # Where the record cannot be parsed, its directory still says which table it belonged to.
    parts = path.relative_to(results / "runs").parts
    guessed = table_from_experiment(parts[0]) if len(parts) > 1 else None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return Skipped(rel, f"not valid JSON ({err})", guessed)
    except OSError as err:
        return Skipped(rel, f"unreadable ({err})", guessed)
    if not isinstance(data, dict):
        return Skipped(rel, f"not a run record (a JSON {type(data).__name__}, not an object)",
                       guessed)
    try:
        data = migrate(data, "this record")
    except RecordVersionError as err:
        return Skipped(rel, str(err), guessed)
    from_name = table_from_experiment(data.get("experiment", ""))
    try:
        from_field = _table_field(data.get("table"))
    except ValueError as err:
        return Skipped(rel, str(err), from_name or guessed)
    if from_name is not None and from_field is not None and from_name != from_field:
        return Skipped(rel, f"experiment {data['experiment']!r} says Table {from_name} but its "
                            f"`table` field says {from_field}", from_name)
    table = from_name if from_name is not None else from_field
    if isinstance(table, int) and table not in table_numbers():
        # no build would ever pick it up: say so rather than let it vanish from every table
        return Skipped(rel, f"names Table {table}, which has no paper numbers "
                            f"(experiments/paper/table{table}.yaml), so no table build reads "
                            "it: fix its experiment name or `table` field", table)
    missing = [k for k in REQUIRED if data.get(k) is None or data.get(k) == ""]
    if missing:
        return Skipped(rel, f"lacks {', '.join(missing)}", table)
    if data["status"] != "complete":
        return Skipped(rel, f"status {data['status']!r}, not complete", table)
    if not isinstance(data.get("metrics"), dict):
        return Skipped(rel, "complete but holds no `metrics` object", table)
    try:
        record = Record.from_dict(data, "this record")
    except RecordError as err:
        return Skipped(rel, str(err), table)
    return RunRecord(rel, record.to_dict(), table, _rerun_index(path))


def scan(results: Path) -> tuple[list[RunRecord], list[Skipped]]:
    """Every record under `<results>/runs`, in path order: (accepted, skipped)."""
    results = Path(results)
    runs = results / "runs"
    accepted, skipped = [], []
    if not runs.is_dir():
        return accepted, skipped
    for path in sorted(runs.rglob(RECORD)):
        found = read_one(path, results)
        (accepted if isinstance(found, RunRecord) else skipped).append(found)
    return accepted, skipped
