"""What one side of a comparison reads: run records (through `experiments.tables.collect`),
a record field, or a number in a results JSON. Owns `Evidence`, `gather` and `MissingEvidence`."""
from __future__ import annotations

# Records are read as the tables read them: `collect.scan` accepts complete records only, and
# each seed's value comes from `aggregate.seed_value` (its best epoch where the table takes it).
# A configuration another table owns (the experiment file's `run.same_as`) counts as this
# experiment's run, below a run of the experiment's own for the same seed.

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..paper_numbers import Column, PaperTable, load_table
from ..paths import CONF_DIR
from ..same_as import owner_of
from ..tables.aggregate import chosen_epoch, seed_value
from ..tables.collect import RunRecord, is_number
from .convergence import ConvergenceRule, check_convergence
from .per_example import per_example_scores
from .spec import Selector

STANDIN_MODELS = ("minilm_l6", "smollm2_135m", "gpt2_tiny")
# Profiles that check the pipeline (random init, a few steps) and measure nothing: evidence
# resting on such a run is gated like an unconverged one, whatever the claim asks.
PIPELINE_CHECK_PROFILES = ("smoke", "tiny")


def pipeline_check(r: RunRecord) -> str | None:
    if r.profile in PIPELINE_CHECK_PROFILES:
        return f"a {r.profile}-profile run (a pipeline check at random init, not a measurement)"
    return None


class MissingEvidence(LookupError):
    """A side of a claim has no records or artifact; the message names the command."""

    def __init__(self, what: str, command: str, gpu: bool):
        super().__init__(f"no evidence for {what}: make it with `{command}`"
                         + (" (on a GPU with the hub)" if gpu else ""))
        self.what, self.command, self.gpu = what, command, gpu


@dataclass
class Evidence:
    selector: Selector
    values: list[float]                 # per seed, per trial, or a single point / constant
    kind: str                           # seeds | trials | point | value
    seeds: list[int] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    per_example: dict = field(default_factory=dict)   # seed -> (scores array, references id)
    per_example_note: str | None = None
    unconverged: list[tuple[str, str]] = field(default_factory=list)
    budget: list[dict] = field(default_factory=list)   # one _budget() per record
    model: str | None = None
    artifact: str | None = None         # the results JSON read, for an artifact side
    caveat: str | None = None           # why the value cannot decide (the artifact says so)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) >= 2 else None


def experiment_model(experiment: str) -> str | None:
    """The model an experiment file overrides to (`- override /model: NAME`)."""
    path = CONF_DIR / "experiment" / f"{experiment}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for entry in data.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                if key.replace("override ", "").strip() == "/model":
                    return str(value)
    return None


def run_command(experiment: str) -> tuple[str, bool]:
    """The command that makes an experiment's records, and whether it needs a GPU."""
    from ..converge import FAMILIES

    gpu = experiment_model(experiment) not in STANDIN_MODELS
    family = experiment.split("/")[0]
    if family in FAMILIES:  # the converging stand-ins: their lr sweep first, then the seeds
        return f"scripts/converge.sh {family}", gpu
    return f"python -m experiments.run -m experiment={experiment} seed=1,2,3", gpu


def _shared_sources(experiment: str) -> set[str]:
    owner = owner_of(experiment)
    return {owner} if owner != experiment else set()


def _column(sel: Selector) -> tuple[PaperTable, Column]:
    if sel.table is not None:
        table = load_table(sel.table)
        return table, table.column(sel.column)
    column = Column(key="ledger", label="ledger", metrics=sel.metrics, scale=sel.scale,
                    better=sel.better)
    return PaperTable(0, "ledger", "ledger", "mean", sel.best_epoch, (column,), ()), column


def select_records(sel: Selector, records: list[RunRecord]) -> list[RunRecord]:
    """One record per seed: the experiment's own (latest rerun) before a shared one."""
    shared = _shared_sources(sel.experiment)
    chosen: dict[int, tuple[tuple, RunRecord]] = {}
    for r in records:
        name = r.data.get("experiment")
        own = name == sel.experiment
        if not own and name not in shared:
            continue
        if sel.tasks and r.task not in sel.tasks:
            continue
        if sel.n_train is not None and (r.data.get("data") or {}).get("train_examples") \
                != sel.n_train:
            continue
        rank = (own, r.rerun)
        if r.seed not in chosen or rank > chosen[r.seed][0]:
            chosen[r.seed] = (rank, r)
    return [chosen[s][1] for s in sorted(chosen)]


def _budget(r: RunRecord) -> dict:
    """What a record trained on and for how long (report.budget_lines summarises a claim's)."""
    data, train = r.data.get("data") or {}, r.data.get("train") or {}
    epochs = [e.get("epoch") for e in train.get("history") or [] if is_number(e.get("epoch"))]
    return {"record": r.path, "model": r.model_display,
            "train_examples": data.get("train_examples"), "steps": train.get("steps"),
            "epochs": max(epochs) if epochs else None,
            "max_epochs": ((r.data.get("config") or {}).get("train") or {}).get("epochs"),
            "stopped_early": train.get("stopped_early")}


def _dotted(data, key: str):
    for part in key.split("."):
        if isinstance(data, list) and part.lstrip("-").isdigit() and -len(data) <= int(part) \
                < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def main_metric(data: dict) -> str | None:
    """A record's dev/test metric in its history (for artifacts built from its adapters)."""
    for entry in reversed((data.get("train") or {}).get("history") or []):
        for key, value in entry.items():
            if "/" in key and is_number(value) and not key.endswith(("/n", "/unrecognised")):
                return key
    return None


def _from_records(sel: Selector, records: list[RunRecord], results: Path,
                  rule: ConvergenceRule) -> Evidence:
    chosen = select_records(sel, records)
    command, gpu = run_command(sel.experiment)
    if not chosen:
        raise MissingEvidence(sel.describe(), command, gpu)
    table, column = _column(sel)
    ev = Evidence(sel, [], "seeds", model=chosen[0].model_display)
    for r in chosen:
        if sel.kind == "field":
            value = _dotted(r.data, sel.field)
            got = (value * sel.scale, None) if is_number(value) else None
        else:
            got = seed_value(r, table, column)
        if got is None:
            continue
        ev.values.append(got[0])
        ev.seeds.append(r.seed)
        ev.records.append(r.path)
        ev.budget.append(_budget(r))
        if pipeline_check(r):
            ev.unconverged.append((r.path, pipeline_check(r)))
        elif sel.converges:
            conv = check_convergence(r.data, column.metrics, column.scale, column.better, rule)
            if not conv.converged:
                ev.unconverged.append((r.path, conv.reason))
        if sel.kind == "records":
            entry = chosen_epoch(r, table, column)
            scores, note = per_example_scores(r, results, column, got[0],
                                              entry.get("epoch") if entry else None)
            if scores is not None:
                ev.per_example[r.seed] = scores
            else:
                ev.per_example_note = note
    if not ev.values:
        # Its records are complete, so a rerun must go to a new directory.
        raise MissingEvidence(f"{sel.describe()}: its records hold no such value "
                              f"({', '.join(r.path for r in chosen)})",
                              command + " run.new_dir=true", gpu)
    return ev


def _from_artifact(sel: Selector, records: list[RunRecord], results: Path,
                   rule: ConvergenceRule) -> Evidence:
    path = Path(results) / sel.file
    if not path.is_file():
        # named relative to the results folder: the ledger's files must not carry this machine's paths
        raise MissingEvidence(f"{sel.file} (in the results folder)", sel.command, False)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MissingEvidence(f"{sel.file} (not valid JSON: {err})", sel.command, False) from None
    value = _dotted(data, sel.key)
    if isinstance(value, list) and value and all(is_number(v) for v in value):
        ev = Evidence(sel, [float(v) for v in value], "trials" if len(value) > 1 else "point")
    elif is_number(value):
        ev = Evidence(sel, [float(value)], "point")
    else:
        raise MissingEvidence(f"{sel.file}: key {sel.key!r} (absent or not a number)", sel.command,
                              False)
    ev.artifact = str(Path(sel.file))
    ev.records.append(ev.artifact)
    if sel.caveat_key and _dotted(data, sel.caveat_key):
        ev.caveat = str(_dotted(data, sel.caveat_key))
    ev.model = data.get("model_display") or data.get("model")
    runs = _dotted(data, sel.runs_key) if sel.runs_key else None
    for run in runs or []:
        found = [r for r in records if r.data.get("experiment") == run.get("experiment")
                 and r.seed == int(run.get("seed", 1))]
        if not found:
            ev.unconverged.append((f"{run.get('experiment')}/seed{run.get('seed')}",
                                   "its record is missing, so its training cannot be checked"))
            continue
        r = max(found, key=lambda x: x.rerun)
        ev.records.append(r.path)
        ev.budget.append(_budget(r))
        if pipeline_check(r):
            ev.unconverged.append((r.path, pipeline_check(r)))
        elif sel.converges:
            conv = check_convergence(r.data, (main_metric(r.data),), 1.0, "higher", rule)
            if not conv.converged:
                ev.unconverged.append((r.path, conv.reason))
    return ev


def gather(sel: Selector, records: list[RunRecord], results: Path,
           rule: ConvergenceRule) -> Evidence:
    """The evidence a selector names, or MissingEvidence naming the command that makes it."""
    if sel.kind == "value":
        return Evidence(sel, [sel.value], "value")
    if sel.kind == "artifact":
        return _from_artifact(sel, records, results, rule)
    return _from_records(sel, records, results, rule)
