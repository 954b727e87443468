"""Fixtures for the metrics tests: the repo's own package first on sys.path, the shared data folder, Java."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

# Import experiments.metrics from this checkout even when another copy of the project is installed.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from experiments.paths import shared_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_dir()


@pytest.fixture(scope="session")
def e2e_cases(shared) -> Path:
    path = shared / "metric_cases" / "e2e"
    if not (path / "expected.json").exists():
        pytest.skip(f"shared E2E parity cases not found at {path} (set LORA_REPRO_SHARED)")
    return path


@pytest.fixture(scope="session")
def java() -> str:
    java = shutil.which("java")
    if java is None:
        pytest.skip("java not on PATH (apt-get install openjdk-17-jre-headless)")
    return java
