"""Run directories and their records: `<results>/runs/<experiment>/seed<k>/record.json`, read
and written (atomically) as `run_record.Record`.

A record holds everything needed to rebuild its table row. A complete record is never
overwritten: a rerun is refused, or goes to a new directory on request; an incomplete one is
resumed or refused. A running run holds a lock on its directory (`run_lock`), so a second run
started into it is refused; `run.name` cannot leave `<results>/runs`.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import subprocess
import sys
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Mapping

from .paths import REPO_ROOT
from .run_record import Record, RecordError, read

RECORD = "record.json"
PACKAGES = ("torch", "transformers", "datasets", "peft", "hydra-core", "sacrebleu", "rouge-score",
            "nltk", "pycocoevalcap", "wandb", "spacy")


class RunExistsError(RuntimeError):
    """The run directory holds a record that must not be overwritten."""


def run_directory(results: Path, experiment: str, seed: int, new_dir: bool = False) -> Path:
    """`<results>/runs/<experiment>/seed<k>`; with `new_dir`, the first free `seed<k>-N`.
    `experiment` (run.name) must stay inside `<results>/runs`: no absolute path, no `..`."""
    runs = Path(results) / "runs"
    base = runs / experiment / f"seed{seed}"
    if (Path(experiment).is_absolute() or ".." in Path(experiment).parts
            or not base.resolve().is_relative_to(runs.resolve())):
        raise RunExistsError(f"run.name={experiment!r} would write outside {runs}: give a "
                             "relative name without '..' (move paths.results instead)")
    if not new_dir or not (base / RECORD).exists():
        return base
    n = 2
    while (base.parent / f"seed{seed}-{n}" / RECORD).exists():
        n += 1
    return base.parent / f"seed{seed}-{n}"


def read_record(run_dir: Path) -> Record | None:
    """The record in `run_dir` (None where there is none), migrated to the current schema."""
    path = Path(run_dir) / RECORD
    if not path.exists():
        return None
    try:
        return read(path)
    except RecordError as err:
        raise RunExistsError(f"{err}; move it away to rerun") from None


def check_can_start(run_dir: Path, resume: bool) -> Record | None:
    """The existing record to resume from, None for a fresh run, or an error."""
    record = read_record(run_dir)
    if record is None:
        return None
    if record.status == "complete":
        raise RunExistsError(
            f"{run_dir / RECORD} is a complete run; it is never overwritten. Use another seed, "
            "run.new_dir=true (writes seed<k>-2), or paths.results=DIR.")
    if not resume:
        raise RunExistsError(
            f"{run_dir} holds an unfinished run (status {record.status!r}); continue it "
            "with run.resume=true, or move the directory away to start over.")
    return record


class RunLockedError(RunExistsError):
    """Another process is running into the same run directory."""


@contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on `run_dir` for a run's whole life, so that two runs started
    into one directory (same experiment and seed) cannot both write it: the second is refused.

    The lock is flock(2) on the directory itself: the kernel drops it when the process dies,
    so a killed run leaves no stale lock, and no lock file lands among the committed results.
    Directories created here and left empty (a run refused before writing) are removed."""
    run_dir = Path(run_dir)
    created = [d for d in (run_dir, *run_dir.parents) if not d.exists()]
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"{run_dir} is in use by another run (same experiment and seed) that has not "
                "finished; wait for it, or start this one with another seed or "
                "run.new_dir=true") from None
        yield run_dir
    finally:
        os.close(fd)  # releases the lock
        for d in created:  # deepest first
            try:
                d.rmdir()
            except OSError:
                break  # not empty: the run wrote something


def write_record(run_dir: Path, record: Record | Mapping) -> Path:
    """The one writer of record.json (atomically: a reader never sees half a record). The
    record is checked field by field first, so nothing of the wrong shape is written."""
    run_dir = Path(run_dir)
    record = Record.from_dict(record.to_dict() if isinstance(record, Record) else record,
                              str(run_dir / RECORD))
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, run_dir / RECORD)
    return run_dir / RECORD


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "packages": versions, "git_commit": git_commit()}


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
