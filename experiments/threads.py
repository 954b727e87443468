"""How many CPU threads a training or benchmark process uses: its share of the usable cores, so
runs started side by side split the machine instead of oversubscribing it.
"""
from __future__ import annotations

import os

import torch


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads and return the number. 0 = OMP_NUM_THREADS where it is set
    (a grid that divides the cores itself), else every usable core divided by LORA_REPRO_JOBS
    (the runs started side by side; default 1), so side-by-side runs split the cores instead of
    oversubscribing them: a 2-thread run on 2 cores that another process also uses spins in
    OpenMP barriers and trained 4x slower here than with 1 thread."""
    if requested <= 0:
        if os.environ.get("OMP_NUM_THREADS", "").isdigit():
            requested = max(1, int(os.environ["OMP_NUM_THREADS"]))
        else:
            jobs = int(os.environ.get("LORA_REPRO_JOBS", "1") or 1)
            requested = max(1, usable_cores() // max(1, jobs))
    torch.set_num_threads(requested)
    return requested
