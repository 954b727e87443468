"""Run records: `<results>/runs/<experiment>/seed<k>/record.json`, written atomically.

A record holds everything needed to rebuild its table row. A complete record is never
overwritten: a rerun is refused, or goes to a new directory on request; an incomplete one is
resumed or refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .paths import REPO_ROOT

RECORD = "record.json"
PACKAGES = ("torch", "transformers", "datasets", "peft", "hydra-core", "sacrebleu", "rouge-score",
            "nltk", "pycocoevalcap", "wandb", "spacy")


class RunExistsError(RuntimeError):
    """The run directory holds a record that must not be overwritten."""


def run_directory(results: Path, experiment: str, seed: int, new_dir: bool = False) -> Path:
    """`<results>/runs/<experiment>/seed<k>`; with `new_dir`, the first free `seed<k>-N`."""
    base = Path(results) / "runs" / experiment / f"seed{seed}"
    if not new_dir or not (base / RECORD).exists():
        return base
    n = 2
    while (base.parent / f"seed{seed}-{n}" / RECORD).exists():
        n += 1
    return base.parent / f"seed{seed}-{n}"


def read_record(run_dir: Path) -> dict | None:
    path = Path(run_dir) / RECORD
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunExistsError(f"{path} is not valid JSON ({err}); move it away to rerun") from None


def check_can_start(run_dir: Path, resume: bool) -> dict | None:
    """The existing record to resume from, None for a fresh run, or an error."""
    record = read_record(run_dir)
    if record is None:
        return None
    if record.get("status") == "complete":
        raise RunExistsError(
            f"{run_dir / RECORD} is a complete run; it is never overwritten. Use another seed, "
            "run.new_dir=true (writes seed<k>-2), or paths.results=DIR.")
    if not resume:
        raise RunExistsError(
            f"{run_dir} holds an unfinished run (status {record.get('status')!r}); continue it "
            "with run.resume=true, or move the directory away to start over.")
    return record


def write_record(run_dir: Path, record: dict) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / (RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False, default=str) + "\n")
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
