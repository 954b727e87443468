"""What every task shares: the example record, data-file lookup with clear errors, the registry.

A task turns raw files (or the hub) into `Example`s and knows how to score predictions; the
training engine and decoder never look inside a task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..paths import data_dir, shared_dir

# Small hand-written files in the datasets' official layouts, for tests and smoke runs only:
# a loader reads them only when its task option `fixture: true` is set.
FIXTURE_ROOT = Path(__file__).resolve().parent / "fixtures"


class DataMissingError(FileNotFoundError):
    """A dataset file is absent from every place looked at; the message names them all."""


class DataFormatError(ValueError):
    """A dataset file that is not in its task's layout; the message names the file and line."""


def read_data_text(path: Path) -> str:
    """A data file as text (UTF-8, a byte-order mark allowed); a bad byte or an empty file is
    an error naming the file and the line."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[err.start]:02x} at "
                              f"byte offset {err.start}); re-save the file as UTF-8") from None
    if not text.strip():
        raise DataFormatError(f"{path}: the file is empty; put the dataset's own file there "
                              "(see data/README.md)")
    return text


def read_data_json(path: Path):
    """A JSON data file, parsed; errors name the file and the line."""
    import json

    try:
        return json.loads(read_data_text(path))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column "
                              f"{err.colno}); the file may be cut off") from None


@dataclass
class Example:
    """One line of a generation task: a source (context) and one reference (completion).

    `group` keys the references of one source (the official decode groups lines by their exact
    context string); `meta` holds task extras such as WebNLG's seen/unseen flag.
    """

    context: str
    completion: str
    group: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.group = self.group or self.context


def data_roots() -> list[Path]:
    """Where raw data is looked for, in order: the project's data dir, then the shared data."""
    return [data_dir(), shared_dir() / "data"]


def find_data_file(task: str, candidates: Sequence[str], roots: Iterable[Path] | None = None,
                   hint: str = "") -> Path:
    """The first of `candidates` (paths relative to <root>/<task>/) that exists."""
    tried = []
    for root in roots if roots is not None else data_roots():
        for rel in candidates:
            path = Path(root) / task / rel
            if path.exists():
                return path
            tried.append(str(path))
    raise DataMissingError(f"dataset {task}: none of these files exists:\n  " + "\n  ".join(tried)
                           + (f"\n{hint}" if hint else "")
                           + f"\nPut the file in {data_dir() / task} (see data/README.md), set "
                             "LORA_REPRO_DATA / LORA_REPRO_SHARED, or allow the hub (HF_HUB_OFFLINE=0).")


def group_references(examples: Sequence[Example]) -> tuple[list[str], list[list[str]], list[Example]]:
    """Group lines by source in first-appearance order: (keys, references per key, the last
    example of each key — whose decoded output the official code keeps)."""
    refs: dict[str, list[str]] = {}
    last: dict[str, Example] = {}
    for ex in examples:
        refs.setdefault(ex.group, []).append(ex.completion)
        last[ex.group] = ex
    keys = list(refs)
    return keys, [refs[k] for k in keys], [last[k] for k in keys]


def subsample(items: list, n: int | None, seed: int | None = None) -> list:
    """`n` of `items`: the first n when `seed` is None (the official scripts' max-samples), else n
    drawn uniformly at random with `seed` and kept in file order (Table 16's MNLI-n, a smaller
    training set on CPU). The seed is the data's own, recorded apart from the run seed."""
    if not n or n >= len(items):
        return list(items)
    if seed is None:
        return list(items[: int(n)])
    import random

    keep = sorted(random.Random(int(seed)).sample(range(len(items)), int(n)))
    return [items[i] for i in keep]


TaskLoader = Callable[..., list[Example]]
TASK_LOADERS: dict[str, TaskLoader] = {}


def register_task(name: str):
    def wrap(fn: TaskLoader) -> TaskLoader:
        TASK_LOADERS[name] = fn
        return fn
    return wrap


def load_examples(task: str, split: str, limit: int | None = None, **options) -> list[Example]:
    """The examples of `split`; `limit` keeps the first N lines (and converts only those).
    `options` (the task config's `options:`) go to the loader, e.g. `fixture`, `label_words`."""
    if task not in TASK_LOADERS:
        raise ValueError(f"unknown task {task!r}: known tasks are {sorted(TASK_LOADERS)}")
    examples = TASK_LOADERS[task](split, limit=limit, **options)
    return examples[:limit] if limit else examples
