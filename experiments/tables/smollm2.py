"""The converging SmolLM2 stand-ins (issue #23), one `View` each: records of `run.table:
gpt3_smollm2` -> `tables/table4_smollm2.md` + `.json` (Table 4's rows), of `run.table: s7_smollm2`
-> `tables/table5_6_smollm2.md` + `.json` (Tables 5 and 6), of `run.table: lowdata_smollm2` ->
`tables/table16_smollm2.md` + `.json` (Table 16 at n = 100), of `run.table: scaling_smollm2` ->
`tables/table15_smollm2.md` + `.json` (Table 15's cells of claims 06 and 16), every per-seed value
kept; the paper's GPT-3 rows beside."""
from __future__ import annotations

# Not built by aggregate.build: most of their columns (SST-2 and RTE as generation) have no
# paper value and the paper's WikiSQL and MNLI have no run of ours, so the paper's rows are a
# table of their own rather than a difference per cell. The short stand-in of the same
# rows (conf/experiment/table<N>_smollm2/) stays in table<N>.md.

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..converge import FAMILIES as CONVERGE_FAMILIES
from ..metrics.registry import SCORERS
from ..paper_numbers import load_table
from ..same_as import EXPERIMENT_DIR, SameAs, same_as_links
from .aggregate import record_params, shared_records
from .collect import RunRecord, Skipped, scan
from .standin import (BF16, MISSING, cell_stats, cells_json, converged_lines, count_text,
                      epochs_trained, family_of, keep_latest, mean_cell, median_cell,
                      path_family, per_label, stop_rule, trained_lines, write_pair)

MODEL = "SmolLM2-135M-Instruct"  # shown until a record names its model


@dataclass(frozen=True)
class Col:
    task: str
    label: str
    metric: str        # the history key read
    select_by: str     # the history key that picks each seed's best epoch
    scale: float       # to x100


# Each seed is read at the epoch its run kept: the one best by the metric its plateau rule
# watched (experiments/epoch_generation_job.py: <eval split>/<scorer's main metric>), dev
# accuracy for the label-word tasks, ROUGE-L for SAMSum, whose three columns all read that
# epoch, as its kept predictions do. SAMSum's eval split is its test split (conf/task/samsum.yaml:
# the offline corpus has no train split, so runs train on validation); ROUGE is already x100.
_ACC = f"dev/{SCORERS['label_words'].main}"
_ROUGE_BY = f"test/{SCORERS['samsum'].main}"
_SAMSUM = tuple(Col("samsum", f"SAMSum R{k}", f"test/ROUGE-{k}", _ROUGE_BY, 1.0) for k in "12L")
_SST2 = Col("sst2_gen", "SST-2 (gen)", _ACC, _ACC, 100.0)
_RTE = Col("rte_gen", "RTE (gen)", _ACC, _ACC, 100.0)


@dataclass(frozen=True)
class View:
    """One converging stand-in table."""
    folder: str                # conf/experiment/<folder>/, and its records' run.table
    key: str                   # `python -m experiments.tables table=<key>`; tables/table<key>.md
    paper: tuple[int, ...]     # the paper's tables it stands in for, rows in their order
    columns: tuple[Col, ...]
    title: str                 # what it holds, after "Table N stand-in: "
    run_command: str           # what makes its runs
    runs_note: str             # after the run command, when no run is complete yet
    about: str                 # its tasks against the paper's columns
    paper_note: str            # the paper's columns against ours

    @property
    def name(self) -> str:
        return f"table{self.key}"

    @property
    def command(self) -> str:
        return f"python -m experiments.tables table={self.key}"


VIEWS = {
    "gpt3_smollm2": View(
        folder="gpt3_smollm2", key="4_smollm2", paper=(4,),
        columns=(_SST2, _RTE, *_SAMSUM),
        title="SST-2, RTE and SAMSum", run_command="scripts/converge.sh gpt3_smollm2 ft lora_qv_r8",
        runs_note=" (the lr sweep of each cell named, then its runs seed by seed; any of these cells may be "
        f"named: {', '.join(CONVERGE_FAMILIES['gpt3_smollm2'].base_lr)})",
        about="two columns are other tasks: SST-2 and RTE as generation (a label word after the "
        "sentence, or after premise and hypothesis) stand in for MNLI-m, and there is no WikiSQL "
        "(its tables are not offline)",
        paper_note="its WikiSQL and MNLI-m have no column of ours, our SST-2 and RTE no value of the paper's"),
    "s7_smollm2": View(
        folder="s7_smollm2", key="5_6_smollm2", paper=(6, 5), columns=(_SST2, *_SAMSUM),
        title="LoRA's weight types and ranks, SST-2 and SAMSum",
        run_command="make evidence-runs-s7_smollm2",
        runs_note=" (the cells claims 07 and 08 compare, 3 seeds, once LoRA r_q=r_v=8's lr sweep has "
        "finished: `make gpt3-smollm2 GPT3_SMOLLM2_METHODS='ft lora_qv_r8'`); "
        "`python -m experiments.run experiment=s7_smollm2/<task>/<cell>` runs any other",
        about="the columns are other tasks: SST-2 as generation (a label word after the sentence) "
        "stands in for MultiNLI, SAMSum is a summarisation column the paper's tables do not "
        "have, and there is no WikiSQL (its tables are not offline)",
        paper_note="its WikiSQL and MultiNLI have no column of ours, our SST-2 and SAMSum no value of the "
        "paper's"),
    "scaling_smollm2": View(
        folder="scaling_smollm2", key="15_smollm2", paper=(15,), columns=(_SST2,),
        title="the cells of claims 06 and 16, SST-2",
        run_command="make scaling-smollm2",
        runs_note=" (the lr sweeps its cells train at first, gpt3_smollm2's and LoRA with a "
        "prefix's own, skipping those finished, then its cells, 3 seeds); `python -m "
        "experiments.run experiment=scaling_smollm2/sst2_gen/<cell>` runs one",
        about="the column is another task: SST-2 as generation (a label word after the sentence) "
        "stands in for MultiNLI, and there is no WikiSQL (its tables are not offline)",
        paper_note="its WikiSQL and MultiNLI have no column of ours, our SST-2 no value of the paper's"),
    "lowdata_smollm2": View(
        folder="lowdata_smollm2", key="16_smollm2", paper=(16,), columns=(_SST2, _RTE),
        title="100 training examples, SST-2 and RTE",
        run_command="make lowdata-smollm2",
        runs_note=" (the lr sweeps of its four methods on gpt3_smollm2 first, skipping those "
        "finished, then its cells, 3 seeds); `python -m experiments.run "
        "experiment=lowdata_smollm2/<task>/<cell>` runs one",
        about="the columns are other tasks at the same n: 100 examples of SST-2 and of RTE as "
        "generation (a label word after the sentence, or after premise and hypothesis) stand in "
        "for MNLI-100",
        paper_note="its MNLI-n have no column of ours; its MNLI-100 is the column ours compare with"),
}
TABLE4 = VIEWS["gpt3_smollm2"]


@dataclass
class Row:
    key: str                      # the record's row (e.g. "GPT-3 LoRA (37.7M)")
    profile: str
    label: str
    cells: dict = field(default_factory=dict)        # column label -> CellStats | None
    trainable: list[int] = field(default_factory=list)
    records: list[RunRecord] = field(default_factory=list)

    @property
    def cell_names(self) -> list[str]:
        """The experiment files (`<folder>/<task>/<cell>`) of its runs, by cell name."""
        return sorted({str(r.data["experiment"]).rsplit("/", 1)[-1] for r in self.records})


@dataclass
class Built:
    view: View
    rows: list[Row]
    skipped: list[Skipped]
    links: list[SameAs]           # this table's run.same_as links, read into its rows
    unrun_rows: list[str]         # paper rows with no experiment file here (Table 4's BitFit)


def _experiment_rows(conf: Path, folder: str) -> set[str]:
    """The run.row of every experiment file in conf/experiment/<folder>/."""
    return {str(((yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get("run") or {}).get("row"))
            for p in sorted((conf / folder).rglob("*.yaml"))}


def paper_row_order(view: View) -> list[str]:
    """The paper's rows of the view's tables in their order, each once; Table 5's "Wq (r=8)" is
    named as Table 6 names a cell ("Wq r=8"), as the s7_smollm2 files name theirs."""
    rows = [re.sub(r" \(r=(\d+)\)$", r" r=\1", p.row) for n in view.paper for p in load_table(n).rows]
    return list(dict.fromkeys(rows))


def collect(results: Path, conf: Path | None = None, view: View = TABLE4) -> Built:
    """The rows: this table's records (and those a file of it names with run.same_as), one per
    row, task and seed; `conf` is the experiment files' folder (default conf/experiment)."""
    conf = Path(conf or EXPERIMENT_DIR)
    folder = view.folder
    records, skipped = scan(results)
    mine_skipped = [s for s in skipped if s.table == folder or path_family(s.path) == folder]
    tasks = {c.task for c in view.columns}
    mine = []
    for r in records + shared_records(folder, records, conf):
        if r.table != folder:
            continue
        if family_of(r) != folder:
            mine_skipped.append(Skipped(r.path, f"experiment {r.data['experiment']!r} is not in "
                                        f"conf/experiment/{folder}/, the only folder this table "
                                        "reads", folder))
        elif r.task not in tasks:
            mine_skipped.append(Skipped(r.path, f"task {r.task!r} is not a column "
                                        f"({', '.join(sorted(tasks))})", folder))
        else:
            mine.append(r)
    kept, replaced = keep_latest(mine, lambda r: (r.row, r.profile, r.seed, r.task), folder)
    rows: dict = {}
    for r in kept:
        label = r.row if r.profile == "paper" else f"{r.row} ({r.profile} profile)"
        rows.setdefault((r.row, r.profile), Row(r.row, r.profile, label)).records.append(r)
    order = paper_row_order(view)
    built = sorted(rows.values(), key=lambda x: (x.profile != "paper", x.profile,
                                                   order.index(x.key) if x.key in order else 99, x.key))
    for row in built:
        for c in view.columns:
            row.cells[c.label] = cell_stats([r for r in row.records if r.task == c.task],
                                            c.metric, c.select_by, c.scale)
        row.trainable = [n for n in (record_params(r, "trainable") for r in row.records)
                         if n is not None]
    links = [s for s in same_as_links(conf) if str(s.table) == folder]
    unrun = [p for p in order if p not in _experiment_rows(conf, folder)]
    return Built(view, built, sorted(mine_skipped + replaced, key=lambda s: s.path), links, unrun)


# ---------------------------------------------------------------------------------- text
def _joined(values: set) -> str:
    return "/".join(str(v) for v in sorted(values, key=str))


PRELAYER_METHODS = ("pre_layer", "lora_pre_layer")


def budget_lines(rows: list[Row], view: View = TABLE4) -> list[str]:
    """The training budget, read from the records' resolved configs: one line per task, one for
    what every run shares, how many converged, the lr per row."""
    records = [r for row in rows for r in row.records]
    if not records:
        return [f"No complete run yet: the budget is in the experiment files named above. "
                f"`{view.run_command}` makes them{view.runs_note}."]
    per_task: dict = {}
    common: dict = {"seed": set(), "patience": set(), "autocast": set(), "beams": set()}
    lrs: dict = {}
    inits: dict = {}
    trained: dict = {}
    for row in rows:
        for r in row.records:
            cfg = r.data.get("config") or {}
            data, train = cfg.get("data") or {}, cfg.get("train") or {}
            task, decode = cfg.get("task") or {}, cfg.get("decode") or {}
            ran = r.data.get("data") or {}
            splits = task.get("splits") or {}
            t = per_task.setdefault(r.task, {k: set() for k in ("train", "split", "eval",
                                                                  "epochs", "batch", "seq")})
            t["train"].add(ran.get("train_examples") or data.get("max_train") or "all")
            t["split"].add(splits.get("train", "train"))
            evals = ran.get("eval_examples") or {splits.get("eval", "eval"):
                                                 data.get("max_eval_sources") or "all"}
            t["eval"].update(f"{v} {k}" for k, v in evals.items())
            t["epochs"].add(train.get("epochs"))
            t["batch"].add(train.get("batch_size"))
            t["seq"].add(task.get("seq_len"))
            common["seed"].add(data.get("sample_seed"))
            common["patience"].add(train.get("patience"))
            common["autocast"].add(train.get("autocast"))
            common["beams"].add(decode.get("num_beams"))
            lrs.setdefault(row.label, set()).add(train.get("lr"))
            method = cfg.get("method") or {}
            if method.get("name") in PRELAYER_METHODS:  # records before the init field: random
                inits.setdefault(row.label, set()).add(method.get("init", "random"))
            trained.setdefault(row.label, []).append(epochs_trained(r))
    labels = {c.task: c.label.split(" ")[0] for c in view.columns}
    lines = [f"{labels[task]}: {_joined(t['train'])} training examples of its "
             f"{_joined(t['split'])} split, up to {_joined(t['epochs'])} epochs, batch "
             f"{_joined(t['batch'])}, sequences cut at {_joined(t['seq'])} tokens; scored on "
             f"{_joined(t['eval'])} items after every epoch."
             for task, t in sorted(per_task.items(), key=lambda kv: list(labels).index(kv[0]))]
    patience = common["patience"]
    rule = stop_rule("its task's epoch cap",
                     next(iter(patience)) if len(patience) == 1 else _joined(patience))
    amp = f"; {BF16}" if common["autocast"] == {"bf16"} else ""
    beams = "greedy decoding" if common["beams"] == {1} else f"{_joined(common['beams'])} beams"
    lines.append(f"Subsets drawn with data.sample_seed {_joined(common['seed'])} (the same for "
                 f"every method and seed); each run {rule}{amp}; {beams}.")
    lines += converged_lines(records)
    by_row = {row.label: [(r.data.get("train") or {}).get("converged") for r in row.records]
              for row in rows}
    if any(f is not None for flags in by_row.values() for f in flags):
        lines.append("Per row: " + "; ".join(f"{k} {sum(f is True for f in v)} of {len(v)}"
                                             for k, v in by_row.items()) + ".")
    lines += trained_lines(trained)
    lines.append(f"Learning rate per row: {per_label(lrs)}.")
    if inits:
        lines.append(f"PreLayer's starting activations per row: {per_label(inits)} (real_tokens: "
                     "the block inputs of real tokens; random: Li & Liang's random MLP output, "
                     "whose step-0 loss is above a uniform guess; results/bench/prefix_init.md).")
    return lines


def _paper_table(number: int) -> list[str]:
    table = load_table(number)
    columns = [c for c in table.value_columns if c.kind == "metric"
               and any(p.cells.get(c.key) for p in table.rows)]
    lines = ["| Row | # trainable | " + " | ".join(c.label for c in columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for p in table.rows:
        cells = [p.cells[c.key].printed if p.cells.get(c.key) else MISSING for c in columns]
        params = p.params.printed if p.params else MISSING
        lines.append(f"| paper: {p.label} | {params} | " + " | ".join(cells) + " |")
    return lines


def tables_text(numbers) -> str:
    """(6, 5) -> "Tables 5 and 6"."""
    ns = sorted(numbers)
    return f"Table {ns[0]}" if len(ns) == 1 else f"Tables {', '.join(map(str, ns[:-1]))} and {ns[-1]}"


def _link_note(links: list[SameAs]) -> list[str]:
    if not links:
        return []
    return ["Cells whose experiment file names another's configuration (run.same_as, "
            "experiments/same_as.py) read that cell's runs, listed in the JSON by the owner's "
            "record path: " + "; ".join(f"{s.experiment} reads {s.owner}" for s in links) + "."]


def _cell_note(view: View, accuracy: str) -> list[str]:
    """How a cell is read, for the view's columns (SAMSum's sentences only where it has them)."""
    samsum = any(c.task == "samsum" for c in view.columns)
    by = (f"{accuracy} by dev accuracy, SAMSum by ROUGE-L (the metric its runs stop and keep "
          "predictions by), its three ROUGE columns read at that one epoch" if samsum else
          f"{accuracy} by dev accuracy (the metric its runs stop and keep predictions by)")
    scale = ("Accuracy x100; SAMSum: ROUGE-1/2/L F1 on the first dialogues of its test split (the "
             "offline corpus has no train split: runs train on validation)." if samsum else
             "Accuracy x100.")
    return [f"Each cell: median over seeds, each seed at its best epoch: {by}; n = seeds present. "
            f"{scale} Means over seeds are in the second table. # trainable: as deployed "
            "(PreLayer's prefixes folded, as the paper counts)."]


def to_markdown(built: Built) -> str:
    rows, view = built.rows, built.view
    model = next((r.records[0].model_display for r in rows if r.records), MODEL)
    labels = [c.label for c in view.columns]
    accuracy = " and ".join(c.label.split(" ")[0] for c in view.columns if c.metric == _ACC)
    shorts = " and ".join(f"`conf/experiment/table{n}_smollm2/` in `table{n}.md`"
                          for n in sorted(view.paper))
    lines = [f"# {tables_text(view.paper)} stand-in: {view.title} on {model} (not GPT-3)", "",
             f"Runs: `conf/experiment/{view.folder}/`, trained until the dev metric stopped "
             f"improving (issue #23). The short, under-trained stand-in of the same rows: {shorts}.",
             "", f"Model: {model}, the suite's offline stand-in for GPT-3 175B, with real pretrained "
             "weights, fine-tuned on a CPU budget far below the paper's. These are not GPT-3 "
             f"numbers, and {view.about}. The paper's rows are printed below ours for orientation "
             "only, not as targets.", "", *budget_lines(rows, view), "",
             *_cell_note(view, accuracy),
             "", "| Row | Cell | # trainable | " + " | ".join(labels) + " |",
             "|---|---|---:|" + "---:|" * len(labels)]
    for row in rows:
        lines.append(f"| {row.label} | {', '.join(row.cell_names)} | {count_text(row.trainable)} "
                     "| " + " | ".join(median_cell(row.cells.get(c)) for c in labels) + " |")
    if not rows:
        lines.append("| (no complete run yet) | | | " + " | ".join(MISSING for _ in labels) + " |")
    for n in view.paper:
        lines += ["", f"The paper's Table {n} (GPT-3 175B; experiments/paper/table{n}.yaml), for "
                  f"orientation: {view.paper_note}.", "", *_paper_table(n)]
    if built.unrun_rows:
        lines += ["", f"No experiment file in conf/experiment/{view.folder}/ for: "
                  f"{', '.join(built.unrun_rows)} ("
                  + " and ".join(f"`table{n}.md`" for n in sorted(view.paper))
                  + (" says why)." if len(view.paper) == 1 else " say why).")]
    if rows:
        lines += ["", "Mean ± sample std over seeds (n = seeds present):", "",
                  "| Row | " + " | ".join(labels) + " |", "|---|" + "---:|" * len(labels)]
    for row in rows:
        lines.append(f"| {row.label} | " + " | ".join(mean_cell(row.cells.get(c)) for c in labels)
                     + " |")
    if built.links:
        lines += ["", *_link_note(built.links)]
    if built.skipped:
        lines += ["", "Skipped records (not averaged):"]
        lines += [f"- `{s.path}`: {s.reason}" for s in built.skipped]
    lines += ["", f"Per-seed values and epochs: `{view.name}.json`. "
              f"Rebuild: `{view.command}` (`make {view.name}`)."]
    return "\n".join(lines) + "\n"


def to_json(built: Built) -> dict:
    view = built.view
    return {"table": view.folder, "experiments": f"conf/experiment/{view.folder}",
            "statistic": "median",
            "columns": [{"label": c.label, "task": c.task, "metric": c.metric,
                         "best_epoch_by": c.select_by, "scale": c.scale} for c in view.columns],
            "rows": [{"row": r.key, "label": r.label, "profile": r.profile,
                      "cells_of": r.cell_names, "trainable": sorted(set(r.trainable)),
                      "records": [x.path for x in r.records],
                      "converged": {x.path: (x.data.get("train") or {}).get("converged")
                                    for x in r.records},
                      "cells": cells_json(r.cells)} for r in built.rows],
            "budget": budget_lines(built.rows, view),
            "same_as": {s.experiment: s.owner for s in built.links},
            "skipped": [{"path": s.path, "reason": s.reason} for s in built.skipped]}


def write(results: Path, out: Path, conf: Path | None = None, view: View = TABLE4) -> list[Path]:
    built = collect(results, conf, view)
    return write_pair(Path(out) / "tables", view.name, to_markdown(built), to_json(built))
