"""The MiniLM stand-in for Table 2: records of `run.table: 2_minilm` -> one table per budget
(`FAMILIES`: the experiment folder a record's experiment lies in), `tables/<name>.md` + `.json`
with every per-seed value; the paper's RoB-base rows beside ours, for orientation."""
from __future__ import annotations

# Not built by aggregate.build: the paper has no such table, its columns are five of Table 2's
# eight, and its rows compare methods on another model, so the paper's cells are shown in rows
# of their own rather than as a difference per cell.

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..metrics.glue import main_metric
from ..paper_numbers import load_table
from .aggregate import CellStats
from .collect import RunRecord, Skipped, is_number, scan

TABLE = "2_minilm"
# experiment folder -> (output name, what the budget is); the first is the stand-in's Table 2
FAMILIES = {
    "glue_minilm": ("table2_minilm", "trained until the dev metric stopped improving (issue #23)"),
    "table2_minilm": ("table2_minilm_short", "the first stand-in budget, 25-60 steps per run: "
                      "under-trained, kept for comparison"),
}
# (record task, column label, metric) in Table 2's column order; the metric also picks each
# seed's best epoch (App. D), as Table 2 does.
COLUMNS = [(task, label, f"dev/{main_metric(task)}")
           for task, label in (("sst2", "SST-2"), ("mrpc", "MRPC"), ("cola", "CoLA"),
                               ("rte", "RTE"), ("stsb", "STS-B"))]
# record row -> (label shown, the paper's row shown beside it, how it relates)
ROWS = {"MiniLM FT": ("FT", "RoB-base FT", ""),
        "MiniLM BitFit": ("BitFit", "RoB-base BitFit", ""),
        "MiniLM Adapter^H": ("Adapter^H", "RoB-large Adpt^H † (0.8M)",
                             "RoB-large, † setup: Table 2 has no RoB-base Adapter^H"),
        "MiniLM LoRA": ("LoRA", "RoB-base LoRA", "")}
MISSING = "–"


@dataclass
class Row:
    key: str                      # the record's row (e.g. "MiniLM LoRA")
    profile: str
    label: str
    cells: dict = field(default_factory=dict)        # column label -> CellStats | None
    trainable: list[int] = field(default_factory=list)   # without head, per record
    head: list[int] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)

    @property
    def avg(self) -> float | None:
        """Mean of the five task medians, only when all five are present (as Table 2's Avg)."""
        cells = [self.cells.get(label) for _, label, _ in COLUMNS]
        return statistics.fmean(c.median for c in cells) if all(cells) else None


def seed_value(record: RunRecord, metric: str) -> tuple[float, object] | None:
    """(value x100, epoch) at the seed's best epoch by `metric`; the final metrics otherwise."""
    history = [e for e in ((record.data.get("train") or {}).get("history") or [])
               if isinstance(e, dict) and is_number(e.get(metric))]
    if history:
        best = max(history, key=lambda e: e[metric])  # the first of equal bests
        return 100 * best[metric], best.get("epoch")
    value = record.data["metrics"].get(metric)
    return (100 * value, None) if is_number(value) else None


def family_of(record: RunRecord) -> str:
    return str(record.data.get("experiment", "")).split("/")[0]


def _path_family(path: str) -> str:
    """The experiment folder of a record path `.../runs/<folder>/...` (a skipped record)."""
    parts = Path(path).parts
    return parts[parts.index("runs") + 1] if "runs" in parts[:-1] else ""


def collect(results: Path, family: str = "glue_minilm") -> tuple[list[Row], list[Skipped]]:
    """The rows of one budget: records of this table whose experiment lies in `family`."""
    records, skipped = scan(results)
    mine_skipped = [s for s in skipped if s.table == TABLE and _path_family(s.path) == family]
    tasks = {t for t, _, _ in COLUMNS}
    latest: dict = {}
    for r in records:
        if r.table != TABLE or family_of(r) != family:
            if r.table == TABLE and family_of(r) not in FAMILIES and family == next(iter(FAMILIES)):
                mine_skipped.append(Skipped(r.path, f"experiment folder {family_of(r)!r} is none "
                                            f"of {sorted(FAMILIES)}", TABLE))
            continue
        if r.task not in tasks:
            mine_skipped.append(Skipped(r.path, f"task {r.task!r} is not a column", TABLE))
            continue
        key = (r.row, r.profile, r.seed, r.task)
        if key in latest:  # a rerun (seed<k>-N) replaces the earlier run of that seed
            old, new = sorted([latest[key], r], key=lambda x: x.rerun)
            mine_skipped.append(Skipped(old.path, f"superseded by the rerun {new.path}", TABLE))
            latest[key] = new
        else:
            latest[key] = r
    rows: dict = {}
    for (row, profile, _, _), r in sorted(latest.items(), key=lambda kv: kv[1].path):
        label = ROWS.get(row, (row, None, ""))[0]
        if profile != "paper":
            label += f" ({profile} profile)"
        rows.setdefault((row, profile), Row(row, profile, label)).records.append(r)
    order = list(ROWS)
    built = sorted(rows.values(), key=lambda x: (x.profile != "paper", x.profile,
                                                   order.index(x.key) if x.key in order else 99, x.key))
    for row in built:
        for task, label, metric in COLUMNS:
            values, seeds, epochs = [], [], []
            for r in sorted(row.records, key=lambda x: x.seed):
                got = seed_value(r, metric) if r.task == task else None
                if got is not None:
                    values.append(got[0])
                    seeds.append(r.seed)
                    epochs.append(got[1])
            row.cells[label] = CellStats(values, seeds, epochs, "median") if values else None
        for r in row.records:
            params = r.data.get("params") or {}
            if is_number(params.get("trainable_without_head")):
                row.trainable.append(int(params["trainable_without_head"]))
            if is_number(params.get("head")):
                row.head.append(int(params["head"]))
    return built, sorted(mine_skipped, key=lambda s: s.path)


# ---------------------------------------------------------------------------------- text
def _count(values: list[int]) -> str:
    if not values:
        return MISSING
    low, high = min(values), max(values)
    fmt = (lambda v: f"{v / 1e6:.2f}M") if high >= 1e6 else (lambda v: f"{v / 1e3:.1f}K")
    return fmt(low) if low == high else f"{fmt(low)}–{fmt(high)}"


def _median_cell(cell: CellStats | None) -> str:
    return f"{MISSING} (n=0)" if cell is None else f"{cell.median:.1f} (n={cell.n})"


def _mean_cell(cell: CellStats | None) -> str:
    if cell is None:
        return f"{MISSING} (n=0)"
    pm = "" if cell.std is None else f"±{cell.std:.1f}"
    return f"{cell.mean:.1f}{pm} (n={cell.n})"


def _budget(rows: list[Row]) -> list[str]:
    """The training budget, read from the records' resolved configs (one line per distinct one)."""
    if not any(row.records for row in rows):
        return ["No complete run yet: the budget is in the experiment files named above."]
    per_task: dict = {}
    lrs: dict = {}
    caps: dict = {}
    common = set()
    trained: dict = {}
    for row in rows:
        for r in row.records:
            cfg = r.data.get("config") or {}
            data, train, task = cfg.get("data", {}), cfg.get("train", {}), cfg.get("task", {})
            per_task.setdefault(r.task, set()).add(data.get("max_train") or "all")
            lrs.setdefault(row.label, set()).add(train.get("lr"))
            caps.setdefault(row.label, set()).add(train.get("epochs"))
            common.add((data.get("sample_seed"), train.get("batch_size"),
                        task.get("seq_len"), data.get("max_valid"), train.get("patience"),
                        train.get("autocast")))
            history = (r.data.get("train") or {}).get("history") or []
            trained.setdefault(row.label, []).append(len(history))
    tasks = ", ".join(f"{t} {'/'.join(str(v) for v in sorted(vs, key=str))}"
                      for t, vs in sorted(per_task.items()))
    lines = [f"Training examples per task (all, or a random subset of the train split): {tasks}."]
    # the paper trains the parameter-efficient methods for more epochs than FT: a cap per method
    one_cap = len(set().union(*caps.values())) == 1
    cap = next(iter(next(iter(caps.values())))) if one_cap else None
    for sample_seed, batch, seq, max_valid, patience, autocast in sorted(common, key=str):
        dev = "whole dev split" if max_valid is None else f"first {max_valid} dev examples"
        epochs = f"{cap} epoch{'' if cap == 1 else 's'}" if one_cap else "the epoch cap of its method (below)"
        length = (f"up to {epochs}, stopped once the dev metric did not improve for "
                  f"{patience} epoch{'' if patience == 1 else 's'} (after at least 3)"
                  if patience else epochs)
        amp = "; bf16 autocast (float32 weights and AdamW state)" if autocast == "bf16" else ""
        lines.append(f"Subset drawn with data.sample_seed {sample_seed} (the same for every "
                     f"method and seed); {length}, batch {batch}, sequences cut at "
                     f"{seq} tokens{amp}; scored on the {dev} after every epoch.")
    flags = [(r.data.get("train") or {}).get("converged") for row in rows for r in row.records]
    if any(f is not None for f in flags):
        lines.append(f"Runs whose dev metric stopped improving within the budget (the claims "
                     f"ledger's convergence rule): {sum(f is True for f in flags)} of {len(flags)}.")
    if any(len(set(v)) > 1 for v in trained.values()):
        lines.append("Epochs trained per run: " + "; ".join(
            f"{k} {min(v)}–{max(v)}" for k, v in trained.items()) + ".")
    if not one_cap:
        lines.append(f"Epoch cap per method: {_per_method(caps)}.")
    lines.append(f"Learning rate per method: {_per_method(lrs)}.")
    return lines


def _per_method(values: dict) -> str:
    return "; ".join(f"{k} {'/'.join(str(v) for v in sorted(vs, key=str))}" for k, vs in values.items())


def _paper_rows() -> list[tuple[str, list[str], str, str]]:
    t2 = load_table(2)
    out = []
    for _key, (_label, paper_row, why) in ROWS.items():
        row = t2.row(paper_row)
        cells = [row.cells[c].printed for _, c, _ in COLUMNS]
        avg = statistics.fmean(row.cells[c].value for _, c, _ in COLUMNS)
        out.append((f"paper: {row.label}", cells + [f"{avg:.1f}"], row.params.printed, why))
    return out


def summary_lines(rows: list[Row]) -> list[str]:
    """LoRA − FT on the average and LoRA's trainable share of FT's, where both rows exist."""
    profiles = sorted({r.profile for r in rows}, key=lambda p: (p != "paper", p))
    pairs = [({r.key: r for r in rows if r.profile == p}, p) for p in profiles]
    pairs = [(by, p) for by, p in pairs if "MiniLM FT" in by and "MiniLM LoRA" in by]
    if not pairs:
        return ["LoRA − FT: needs both rows (not all runs exist yet)."]
    by, profile = pairs[0]  # the stand-in's own budget first, else e.g. the demo's
    ft, lora = by["MiniLM FT"], by["MiniLM LoRA"]
    lines = [] if profile == "paper" else [f"({profile} profile rows:)"]
    if ft.avg is not None and lora.avg is not None:
        diff = f"{lora.avg - ft.avg:+.1f}".replace("-", "−")
        lines.append(f"LoRA − FT on the average: {diff} points "
                     f"({lora.avg:.1f} vs {ft.avg:.1f}).")
    else:
        lines.append("LoRA − FT on the average: – (an average needs all five tasks in both rows).")
    both = [c for _, c, _ in COLUMNS if ft.cells.get(c) and lora.cells.get(c)]
    if both:
        lines.append("LoRA − FT per task (medians): " + ", ".join(
            f"{c} " + f"{lora.cells[c].median - ft.cells[c].median:+.1f}".replace("-", "−")
            for c in both) + ".")
    if ft.trainable and lora.trainable:
        share = max(lora.trainable) / max(ft.trainable)
        lines.append(f"LoRA trains {max(lora.trainable):,} parameters, {100 * share:.2f}% of FT's "
                     f"{max(ft.trainable):,} (heads not counted in either).")
    return lines


def to_markdown(rows: list[Row], skipped: list[Skipped], family: str = "glue_minilm") -> str:
    model = next((r.records[0].model_display for r in rows if r.records), "all-MiniLM-L6-v2")
    labels = [label for _, label, _ in COLUMNS]
    name, budget = FAMILIES[family]
    others = [f"`{n}.md` ({b})" for f, (n, b) in FAMILIES.items() if f != family]
    lines = ["# Table 2 stand-in: GLUE dev set on MiniLM-L6 (not RoBERTa)", "",
             f"Runs: `conf/experiment/{family}/`, {budget}. Other budgets: "
             + "; ".join(others) + ".", "",
             f"Model: {model}, the suite's offline stand-in (22.7M parameters, 6 layers x 384), "
             "with real pretrained weights, fine-tuned on a CPU budget far below the paper's. "
             "These are not RoBERTa numbers: the paper's RoB-base rows are printed below ours "
             "for orientation only, not as targets.", ""] + _budget(rows) + [
             "", "Each cell: median over seeds (the paper's statistic), each seed at its best "
             "epoch by the column's metric; n = seeds present. SST-2, MRPC, RTE: accuracy; "
             "CoLA: Matthews correlation; STS-B: Pearson; all x100. Avg: mean of the five "
             "medians, only when all five exist (the paper's Avg is over eight tasks; the paper "
             "rows' Avg here is over these five). # trainable excludes the classification "
             "head, as Table 2 does; the head is shown apart.", "",
             "| Row | # trainable | Head (not counted) | " + " | ".join(labels) + " | Avg |",
             "|---|---:|---:|" + "---:|" * (len(labels) + 1)]
    for row in rows:
        avg = MISSING if row.avg is None else f"{row.avg:.1f}"
        lines.append(f"| {row.label} | {_count(row.trainable)} | {_count(row.head)} | "
                     + " | ".join(_median_cell(row.cells.get(c)) for c in labels) + f" | {avg} |")
    if not rows:
        lines.append("| (no complete run yet) | | | " + " | ".join(MISSING for _ in labels)
                     + f" | {MISSING} |")
    notes = []
    for name, cells, params, why in _paper_rows():
        lines.append(f"| {name} | {params} | | " + " | ".join(cells) + " |")
        if why:
            notes.append(f"{name}: {why}.")
    lines += ["", *summary_lines(rows), *notes, "",
              "Mean ± sample std over seeds (n = seeds present):", "",
              "| Row | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in rows:
        lines.append(f"| {row.label} | " + " | ".join(_mean_cell(row.cells.get(c)) for c in labels)
                     + " |")
    if skipped:
        lines += ["", "Skipped records (not averaged):"]
        lines += [f"- `{s.path}`: {s.reason}" for s in skipped]
    lines += ["", f"Per-seed values and epochs: `{name}.json`. "
              "Rebuild: `python -m experiments.tables table=2_minilm` (`make table2_minilm`)."]
    return "\n".join(lines) + "\n"


def to_json(rows: list[Row], skipped: list[Skipped], family: str = "glue_minilm") -> dict:
    return {"table": TABLE, "experiments": family, "statistic": "median", "rows": [{
        "row": r.key, "label": r.label, "profile": r.profile,
        "trainable_without_head": sorted(set(r.trainable)), "head": sorted(set(r.head)),
        "avg_of_medians": r.avg, "records": [x.path for x in r.records],
        "cells": {label: None if c is None else {
            "median": c.median, "mean": c.mean, "std": c.std, "n": c.n, "values": c.values,
            "seeds": c.seeds, "epochs": c.epochs} for label, c in r.cells.items()}}
        for r in rows], "summary": summary_lines(rows),
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped]}


def write(results: Path, out: Path) -> list[Path]:
    folder = Path(out) / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for family, (name, _) in FAMILIES.items():
        rows, skipped = collect(results, family)
        md, js = folder / f"{name}.md", folder / f"{name}.json"
        md.write_text(to_markdown(rows, skipped, family), encoding="utf-8")
        js.write_text(json.dumps(to_json(rows, skipped, family), indent=1) + "\n", encoding="utf-8")
        written += [md, js]
    return written
