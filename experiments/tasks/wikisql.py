"""WikiSQL (Table 4) in its official layout: `wikisql/{split}.jsonl` questions joined on
`table_id` with `wikisql/{split}.tables.jsonl`, as context = table schema + question and
completion = SQL in the suite's canonical form (metrics/wikisql.py renders and parses it).
Without those files, the hub's parquet copy of Salesforce/wikisql where the hub is allowed.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..metrics.wikisql import wikisql_query_to_sql
from .base import (FIXTURE_ROOT, DataFormatError, DataMissingError, Example, data_roots,
                   find_data_file, read_data_text, register_task)
from .hub import HubSource, rows_from_hub

SPLITS = ("train", "dev", "test")
# the official tarball unpacks to data/; the shared data keeps the questions under jsonl/
_LAYOUTS = ("", "data/", "jsonl/")


def wikisql_context(header: list[str], question: str) -> str:
    """App. C gives x = {table schema, query} and no exact layout; our choice: the column names
    on one line, then the question. The column names are what the SQL refers to, so the model
    sees each one verbatim; rows are left out (not in the paper's x, and long)."""
    return "Table: " + " | ".join(header) + "\nQuestion: " + question


def _jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line."""
    out = []
    for n, line in enumerate(read_data_text(path).splitlines(), 1):
        if not line.strip():
            continue  # the shared dev.jsonl ends with one blank line
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{n}: not a JSON line ({err}); cut off?") from None
        if not isinstance(row, dict):
            raise DataFormatError(f"{path}:{n}: a JSON {type(row).__name__}, not an object")
        out.append((n, row))
    return out


def _find_questions(split: str, roots) -> tuple[Path, Path]:
    """(questions, tables) of `split`; the tables file must sit beside the questions."""
    questions = find_data_file("wikisql", [f"{d}{split}.jsonl" for d in _LAYOUTS], roots=roots)
    tables = questions.with_name(f"{split}.tables.jsonl")
    if not tables.exists():
        raise DataMissingError(
            f"dataset wikisql: {questions} has no tables file {tables}: the context needs each "
            f"question's table header. Put {split}.tables.jsonl (official WikiSQL data.tar.bz2, "
            f"salesforce/WikiSQL) beside {questions.name}, in {questions.parent}; the offline "
            "shared data has the questions only (shared/data/README.md). Tests and smoke runs "
            "can set task.options.fixture=true to use the shipped fixture instead.")
    return questions, tables


def _read(questions: Path, tables_path: Path, limit: int | None) -> list[Example]:
    tables = {}
    for n, t in _jsonl(tables_path):
        if not isinstance(t.get("id"), str) or not isinstance(t.get("header"), list):
            raise DataFormatError(f"{tables_path}:{n}: a table needs an 'id' string and a "
                                  "'header' list")
        tables[t["id"]] = t
    rows = _jsonl(questions)
    pairs = []
    for n, q in rows[:limit] if limit else rows:
        for key in ("table_id", "question", "sql"):
            if key not in q:
                raise DataFormatError(f"{questions}:{n}: no {key!r} field")
        table = tables.get(q["table_id"])
        if table is None:
            raise DataFormatError(f"{questions}:{n}: names table {q['table_id']!r}, which "
                                  f"{tables_path} does not hold: the two files are from "
                                  "different releases")
        pairs.append((q, list(table["header"])))
    return _examples(pairs, questions.name, str(questions))


def _examples(pairs: list[tuple[dict, list[str]]], name: str, source: str) -> list[Example]:
    # questions on one table can repeat: each stays its own test item (group by position)
    return [Example(wikisql_context(header, q["question"].strip()),
                    wikisql_query_to_sql(q["sql"], header), group=f"{name}:{n}",
                    meta={"sql": q["sql"], "header": header, "table_id": q["table_id"],
                          "source": source})
            for n, (q, header) in enumerate(pairs, 1)]


# The hub's copy: Salesforce/wikisql is a loading-script dataset, which `datasets` no longer runs;
# the hub's parquet conversion of it holds each question with its table and its query, the
# conditions as parallel lists (values as strings).
HUB = HubSource("Salesforce/wikisql", "default", revision="refs/convert/parquet")
HUB_SPLITS = {"dev": "validation"}


def _hub_pairs(rows: list[dict]) -> list[tuple[dict, list[str]]]:
    pairs = []
    for row in rows:
        sql, conds = row["sql"], row["sql"]["conds"]
        query = {"sel": sql["sel"], "agg": sql["agg"],
                 "conds": [list(c) for c in zip(conds["column_index"], conds["operator_index"],
                                                conds["condition"])]}
        pairs.append(({"table_id": row["table"]["id"], "question": row["question"], "sql": query},
                      list(row["table"]["header"])))
    return pairs


@register_task("wikisql")
def load_wikisql(split: str, limit: int | None = None, fixture: bool = False) -> list[Example]:
    """`fixture=True` falls back to the hand-written tables and questions shipped in
    experiments/tasks/fixtures/wikisql/ (train and dev only) when the real files are absent:
    for tests and smoke runs, never a default, so no real run scores on the fixture."""
    if split not in SPLITS:
        raise ValueError(f"WikiSQL split {split!r}: choose one of {list(SPLITS)}")
    try:
        questions, tables = _find_questions(split, data_roots())
    except DataMissingError as missing:
        if not fixture:
            hub_split = HUB_SPLITS.get(split, split)
            rows = rows_from_hub(missing, HUB, hub_split)
            return _examples(_hub_pairs(rows[:limit] if limit else rows), f"hub-{split}",
                             HUB.label(hub_split))
        questions, tables = _find_questions(split, [FIXTURE_ROOT])
        print(f"[data] wikisql {split}: real data missing, using the test fixture {questions}")
    return _read(questions, tables, limit)
