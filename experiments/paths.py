"""Where the suite finds its configs, shared data, caches and results.

Every location can be moved with an environment variable, so tests, CI and a cluster job can
point the same code at other directories.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = REPO_ROOT / "conf"


def shared_dir() -> Path:
    """Real datasets and the GPT-2 vocabulary (`LORA_REPRO_SHARED`, default ../shared)."""
    return Path(os.environ.get("LORA_REPRO_SHARED", REPO_ROOT.parent / "shared"))


def data_dir() -> Path:
    """Where raw datasets are looked for before the hub (`LORA_REPRO_DATA`, default data/)."""
    return Path(os.environ.get("LORA_REPRO_DATA", REPO_ROOT / "data"))


def cache_dir() -> Path:
    """Derived files worth keeping between runs, e.g. dequantised GGUF weights."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lora-repro"
    return Path(os.environ.get("LORA_REPRO_CACHE", default))


def results_dir() -> Path:
    return Path(os.environ.get("LORA_REPRO_RESULTS", REPO_ROOT / "results"))
