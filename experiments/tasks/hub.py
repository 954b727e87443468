"""The Hugging Face hub as a task's second source: a split's rows through `datasets`, read only
when the task's files are on no data root and the hub is allowed (HF_HUB_OFFLINE and
HF_DATASETS_OFFLINE unset or 0; the Makefile and the tests set HF_HUB_OFFLINE=1)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .base import DataMissingError


@dataclass(frozen=True)
class HubSource:
    repo: str
    config: str | None = None
    revision: str | None = None  # e.g. the hub's parquet conversion of a script dataset

    def label(self, split: str) -> str:
        return f"hub:{self.repo}" + (f"/{self.config}" if self.config else "") + f"/{split}"


def hub_allowed() -> bool:
    return all(os.environ.get(var, "0").strip().lower() in ("", "0", "false", "no")
               for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def rows_from_hub(missing: DataMissingError, source: HubSource, split: str) -> list[dict]:
    """`split` of `source` as plain dicts; where the hub is not allowed, `missing` (the error
    naming the local files) is raised as it is, and where it fails, with the hub's reason."""
    if not hub_allowed():
        raise missing
    try:
        from datasets import load_dataset

        data = load_dataset(source.repo, source.config, split=split, revision=source.revision)
    except Exception as err:  # no network, no such split, a changed repository: say which
        raise DataMissingError(f"{missing}\nThe hub was tried too: {source.label(split)} failed "
                               f"({type(err).__name__}: {err})") from err
    return [dict(row) for row in data]
