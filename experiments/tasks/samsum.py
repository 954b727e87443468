"""SAMSum dialogue summarisation (Table 4) as the paper formats it (paper_spec App. C).

Context = the dialogue's utterances joined by "\\n", followed by "\\n\\n"; completion = the summary.
Reads the official corpus layout `samsum/{train,val,test}.json` ({id, dialogue, summary}) or the
InstructDS copy in the shared data, `samsum/instructds_format/{validation,test}.json`
({instruction, dialogue, summary}: no ids, no train split); with neither, the hub's copy.
"""
from __future__ import annotations

import re
from pathlib import Path

from .base import (DataFormatError, DataMissingError, Example, find_data_file, read_data_json,
                   register_task)
from .hub import HubSource, rows_from_hub

# split name -> file names tried, official corpus first (corpus.7z names its dev file val.json)
SAMSUM_FILES = {"train": ["train.json", "instructds_format/train.json"],
                "validation": ["val.json", "validation.json", "instructds_format/validation.json",
                               "instructds_format/val.json"],
                "test": ["test.json", "instructds_format/test.json"]}
# The corpus writes turns with "\r\n", InstructDS with "\n": both become one "\n".
_TURN_BREAK = re.compile(r"\r?\n")


def samsum_context(dialogue: str) -> str:
    """Turns joined by "\\n", then "\\n\\n" (App. C). Turns keep their own spacing: the paper
    describes no cleaning beyond the join."""
    turns = [t for t in _TURN_BREAK.split(dialogue.strip("\r\n")) if t.strip()]
    return "\n".join(turns) + "\n\n"


def _read(path: Path, split: str, limit: int | None) -> list[Example]:
    rows = read_data_json(path)
    if not isinstance(rows, list) or not rows:
        raise DataFormatError(f"{path}: expected a non-empty JSON list of "
                              "{id, dialogue, summary} records")
    return _examples(rows, str(path), split, limit)


def _examples(rows: list, where: str, split: str, limit: int | None) -> list[Example]:
    out = []
    for n, row in enumerate(rows[:limit] if limit else rows):
        missing = [k for k in ("dialogue", "summary")
                   if not isinstance(row, dict) or not isinstance(row.get(k), str)]
        if missing:
            raise DataFormatError(f"{where}: record {n} lacks the string field(s) {missing}")
        # the InstructDS copy has no ids: the position in the split stands in for one
        ident = str(row.get("id", f"{split}-{n}"))
        # group by id: two dialogues with the same text stay two test items
        out.append(Example(samsum_context(row["dialogue"]), row["summary"].strip(),
                           group=ident, meta={"id": ident, "source": where}))
    return out


# The corpus on the hub: Samsung/samsum is a loading-script dataset, which `datasets` no longer
# runs; the hub's own parquet conversion of it has the same {id, dialogue, summary} rows.
HUB = HubSource("Samsung/samsum", "samsum", revision="refs/convert/parquet")


@register_task("samsum")
def load_samsum(split: str, limit: int | None = None) -> list[Example]:
    if split not in SAMSUM_FILES:
        raise ValueError(f"SAMSum split {split!r}: choose one of {sorted(SAMSUM_FILES)}")
    hint = ("SAMSum's training split is not in the offline data (shared/data/README.md): train on "
            "`validation` (conf/task/samsum.yaml) or put the corpus' train.json in data/samsum/"
            if split == "train" else "")
    try:
        path = find_data_file("samsum", SAMSUM_FILES[split], hint=hint)
    except DataMissingError as missing:
        return _examples(rows_from_hub(missing, HUB, split), HUB.label(split), split, limit)
    return _read(path, split, limit)
