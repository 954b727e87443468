"""GLUE (Table 2) from the original GLUE tsv files (`<data>/glue/<TASK>/{train,dev}.tsv`), or
from the hub's nyu-mll/glue when they are absent and the hub is allowed (same label ids).

Each task yields `ClassificationExample`s with HF `glue` label ids (e.g. RTE/QNLI:
entailment = 0), so metrics and checkpoints agree with the official run_glue.py.
"""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from .base import DataFormatError, DataMissingError, find_data_file, read_data_text
from .hub import HubSource, rows_from_hub

csv.field_size_limit(sys.maxsize)


@dataclass
class ClassificationExample:
    text_a: str
    text_b: str | None
    label: float | int
    source: str = ""  # the file read, or hub:<repo>/<config>/<split>


@dataclass(frozen=True)
class GlueTask:
    folder: str
    columns: tuple[str, str | None, str]  # text_a, text_b, label (names, or indices for CoLA)
    labels: tuple[str, ...] | None  # label strings in HF id order; None = regression
    header: bool = True
    splits: tuple[str, ...] = ("train", "dev")

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 1


GLUE_TASKS = {
    "mnli": GlueTask("MNLI", ("sentence1", "sentence2", "gold_label"),
                     ("entailment", "neutral", "contradiction"),
                     splits=("train", "dev_matched", "dev_mismatched")),
    "sst2": GlueTask("SST-2", ("sentence", None, "label"), ("0", "1")),
    "mrpc": GlueTask("MRPC", ("#1 String", "#2 String", "Quality"), ("0", "1")),
    "cola": GlueTask("CoLA", ("3", None, "1"), ("0", "1"), header=False),
    "qnli": GlueTask("QNLI", ("question", "sentence", "label"), ("entailment", "not_entailment")),
    "qqp": GlueTask("QQP", ("question1", "question2", "is_duplicate"), ("0", "1")),
    "rte": GlueTask("RTE", ("sentence1", "sentence2", "label"), ("entailment", "not_entailment")),
    "stsb": GlueTask("STS-B", ("sentence1", "sentence2", "score"), None),
}


# The hub's copy: nyu-mll/glue, one config per task, split names and text columns of its own;
# its label ids are the order of GlueTask.labels.
HUB_REPO = "nyu-mll/glue"
HUB_SPLITS = {"dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched"}
HUB_COLUMNS = {"mnli": ("premise", "hypothesis"), "sst2": ("sentence", None),
               "mrpc": ("sentence1", "sentence2"), "cola": ("sentence", None),
               "qnli": ("question", "sentence"), "qqp": ("question1", "question2"),
               "rte": ("sentence1", "sentence2"), "stsb": ("sentence1", "sentence2")}


def _hub_examples(task_name: str, split: str, missing: DataMissingError,
                  limit: int | None) -> list[ClassificationExample]:
    hub_split = HUB_SPLITS.get(split, split)
    source = HubSource(HUB_REPO, task_name)
    rows = rows_from_hub(missing, source, hub_split)
    a, b = HUB_COLUMNS[task_name]
    regression = GLUE_TASKS[task_name].labels is None
    out = []
    for row in rows[:limit] if limit else rows:
        label = float(row["label"]) if regression else int(row["label"])
        if not regression and not 0 <= label < GLUE_TASKS[task_name].num_labels:
            raise ValueError(f"{source.label(hub_split)}: label {label} is not a class id "
                             "(the hub's test splits carry no labels)")
        out.append(ClassificationExample(row[a], row[b] if b else None, label,
                                         source.label(hub_split)))
    return out


def _rows(path: Path, task: GlueTask) -> list[tuple[int, dict]]:
    """(line number, fields by column) of each non-blank row; a short row, a header without
    the task's columns, bad bytes or an empty file is an error naming the file and line."""
    # utf-8-sig: MRPC's files start with a byte-order mark
    reader = csv.reader(io.StringIO(read_data_text(path), newline=""), delimiter="\t",
                        quoting=csv.QUOTE_NONE)
    rows = [(reader.line_num, r) for r in reader if r]
    if task.header:
        if not rows:
            raise DataFormatError(f"{path}: no header row")
        head = rows.pop(0)[1]
        missing = [c for c in task.columns if c is not None and c not in head]
        if missing:
            raise DataFormatError(f"{path}:1: columns {missing} missing from the header {head}")
        need = max(head.index(c) for c in task.columns if c is not None) + 1
    else:
        head = [str(i) for i in range(max(len(r) for _, r in rows))] if rows else []
        need = max(int(c) for c in task.columns if c is not None) + 1
    if not rows:
        raise DataFormatError(f"{path}: a header and no examples")
    for line, r in rows:
        if len(r) < need:
            raise DataFormatError(
                f"{path}:{line}: {len(r)} tab-separated field(s), the task's columns need "
                f"{need} ({', '.join(str(c) for c in task.columns if c is not None)}); the "
                "line is cut off or holds a stray tab / newline")
    return [(line, dict(zip(head, r))) for line, r in rows]


def load_glue(task_name: str, split: str, limit: int | None = None,
              roots=None, hub: bool = True) -> list[ClassificationExample]:
    """Examples of GLUE task `task_name` (mnli, sst2, mrpc, cola, qnli, qqp, rte, stsb);
    `roots` replaces the data folders searched (tests point it at a fixture); `hub=False`
    never falls back to the hub."""
    if task_name not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task_name!r}: choose one of {sorted(GLUE_TASKS)}")
    task = GLUE_TASKS[task_name]
    if split not in task.splits:
        raise ValueError(f"GLUE {task_name} split {split!r}: choose one of {list(task.splits)}")
    try:
        path = find_data_file("glue", [f"{task.folder}/{split}.tsv"], roots=roots,
                              hint="MNLI, QQP and QNLI's train split are not in the offline data "
                                   "(shared/data/README.md)" if task_name in ("mnli", "qqp", "qnli") else "")
    except DataMissingError as missing:
        if not hub:
            raise
        return _hub_examples(task_name, split, missing, limit)
    a, b, y = task.columns
    out = []
    for line, row in _rows(path, task):
        if limit and len(out) >= limit:
            break
        raw = row.get(y)
        if raw is None:
            raise DataFormatError(f"{path}:{line}: no {y!r} field")
        if task.labels is None:
            try:
                label: float | int = float(raw)
            except ValueError:
                raise DataFormatError(f"{path}:{line}: score {raw!r} is not a number") from None
        elif raw in task.labels:
            label = task.labels.index(raw)
        else:
            raise DataFormatError(f"{path}:{line}: label {raw!r} not in {task.labels}")
        out.append(ClassificationExample(row[a], row[b] if b else None, label, str(path)))
    return out
