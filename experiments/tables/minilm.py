"""The MiniLM stand-in for Table 2: records of `run.table: 2_minilm` -> one table per budget
(`FAMILIES`: the experiment folder a record's experiment lies in), `tables/<name>.md` + `.json`
with every per-seed value; the paper's RoB-base rows beside ours, for orientation."""
from __future__ import annotations

# Not built by aggregate.build: the paper has no such table, its columns are five of Table 2's
# eight, and its rows compare methods on another model, so the paper's cells are shown in rows
# of their own rather than as a difference per cell.

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..metrics.glue import main_metric
from ..paper_numbers import load_table
from .collect import RunRecord, Skipped, is_number, scan
from .standin import (BF16, MISSING, cell_stats, cells_json, converged_lines, count_text,
                      epochs_trained, family_of, keep_latest, mean_cell, median_cell,
                      path_family, least_evaluations, per_label, plural, stop_rule, trained_lines,
                      write_pair)

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


def collect(results: Path, family: str = "glue_minilm") -> tuple[list[Row], list[Skipped]]:
    """The rows of one budget: records of this table whose experiment lies in `family`."""
    records, skipped = scan(results)
    mine_skipped = [s for s in skipped if s.table == TABLE and path_family(s.path) == family]
    tasks = {t for t, _, _ in COLUMNS}
    mine = []
    for r in records:
        if r.table != TABLE or family_of(r) != family:
            if r.table == TABLE and family_of(r) not in FAMILIES and family == next(iter(FAMILIES)):
                mine_skipped.append(Skipped(r.path, f"experiment folder {family_of(r)!r} is none "
                                            f"of {sorted(FAMILIES)}", TABLE))
            continue
        if r.task not in tasks:
            mine_skipped.append(Skipped(r.path, f"task {r.task!r} is not a column", TABLE))
            continue
        mine.append(r)
    kept, replaced = keep_latest(mine, lambda r: (r.row, r.profile, r.seed, r.task), TABLE)
    mine_skipped += replaced
    rows: dict = {}
    for r in kept:
        label = ROWS.get(r.row, (r.row, None, ""))[0]
        if r.profile != "paper":
            label += f" ({r.profile} profile)"
        rows.setdefault((r.row, r.profile), Row(r.row, r.profile, label)).records.append(r)
    order = list(ROWS)
    built = sorted(rows.values(), key=lambda x: (x.profile != "paper", x.profile,
                                                   order.index(x.key) if x.key in order else 99, x.key))
    for row in built:
        for task, label, metric in COLUMNS:
            row.cells[label] = cell_stats([r for r in row.records if r.task == task], metric)
        for r in row.records:
            params = r.data.get("params") or {}
            if is_number(params.get("trainable_without_head")):
                row.trainable.append(int(params["trainable_without_head"]))
            if is_number(params.get("head")):
                row.head.append(int(params["head"]))
    return built, sorted(mine_skipped, key=lambda s: s.path)


# ---------------------------------------------------------------------------------- text
def _budget(rows: list[Row]) -> list[str]:
    """The training budget, read from the records' resolved configs (one line per distinct one)."""
    if not any(row.records for row in rows):
        return ["No complete run yet: the budget is in the experiment files named above."]
    per_task: dict = {}
    lrs: dict = {}
    caps: dict = {}
    patience: dict = {}
    least: dict = {}
    common = set()
    trained: dict = {}
    records = [r for row in rows for r in row.records]
    for row in rows:
        for r in row.records:
            cfg = r.data.get("config") or {}
            data, train, task = cfg.get("data", {}), cfg.get("train", {}), cfg.get("task", {})
            per_task.setdefault(r.task, set()).add(data.get("max_train") or "all")
            lrs.setdefault(row.label, set()).add(train.get("lr"))
            caps.setdefault(row.label, set()).add(train.get("epochs"))
            patience.setdefault(r.task, set()).add(train.get("patience"))
            if train.get("patience"):
                least.setdefault(r.task, set()).add(least_evaluations(train))
            common.add((data.get("sample_seed"), train.get("batch_size"),
                        task.get("seq_len"), data.get("max_valid"), train.get("autocast")))
            trained.setdefault(row.label, []).append(epochs_trained(r))
    tasks = ", ".join(f"{t} {'/'.join(str(v) for v in sorted(vs, key=str))}"
                      for t, vs in sorted(per_task.items()))
    lines = [f"Training examples per task (all, or a random subset of the train split): {tasks}."]
    # the paper trains the parameter-efficient methods for more epochs than FT: a cap per method
    one_cap = len(set().union(*caps.values())) == 1
    cap = next(iter(next(iter(caps.values())))) if one_cap else None
    # small train splits wait more epochs for a new best (experiments.converge.plateau_patience)
    one_patience = len(set().union(*patience.values())) == 1
    # ...and do not stop before they have seen enough examples (converge.plateau_min_evaluations)
    one_least = len(set().union(set(), *least.values())) <= 1
    for sample_seed, batch, seq, max_valid, autocast in sorted(common, key=str):
        dev = "whole dev split" if max_valid is None else f"first {max_valid} dev examples"
        epochs = plural(cap, "epoch") if one_cap else "the epoch cap of its method (below)"
        length = stop_rule(epochs, next(iter(next(iter(patience.values())))) if one_patience
                           else "its task's patience (below)",
                           None if one_least else "its task's fewest epochs (below)")
        amp = f"; {BF16}" if autocast == "bf16" else ""
        lines.append(f"Subset drawn with data.sample_seed {sample_seed} (the same for every "
                     f"method and seed); {length}, batch {batch}, sequences cut at "
                     f"{seq} tokens{amp}; scored on the {dev} after every epoch.")
    lines += converged_lines(records) + trained_lines(trained)
    if not one_cap:
        lines.append(f"Epoch cap per method: {per_label(caps)}.")
    if not one_patience:
        lines.append(f"Patience (epochs without a new best before a run stops) per task: "
                     f"{per_label(dict(sorted(patience.items())))}.")
    if not one_least:
        lines.append(f"Fewest epochs before the plateau rule may stop a run, per task: "
                     f"{per_label(dict(sorted(least.items())))}.")
    lines.append(f"Learning rate per method: {per_label(lrs)}.")
    return lines


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
        lines.append(f"| {row.label} | {count_text(row.trainable)} | {count_text(row.head)} | "
                     + " | ".join(median_cell(row.cells.get(c)) for c in labels) + f" | {avg} |")
    if not rows:
        lines.append("| (no complete run yet) | | | " + " | ".join(MISSING for _ in labels)
                     + f" | {MISSING} |")
    notes = []
    for paper_row, cells, params, why in _paper_rows():
        lines.append(f"| {paper_row} | {params} | | " + " | ".join(cells) + " |")
        if why:
            notes.append(f"{paper_row}: {why}.")
    lines += ["", *summary_lines(rows), *notes, "",
              "Mean ± sample std over seeds (n = seeds present):", "",
              "| Row | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in rows:
        lines.append(f"| {row.label} | " + " | ".join(mean_cell(row.cells.get(c)) for c in labels)
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
        "cells": cells_json(r.cells)}
        for r in rows], "summary": summary_lines(rows),
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped]}


def write(results: Path, out: Path) -> list[Path]:
    written = []
    for family, (name, _) in FAMILIES.items():
        rows, skipped = collect(results, family)
        written += write_pair(Path(out) / "tables", name, to_markdown(rows, skipped, family),
                              to_json(rows, skipped, family))
    return written
