"""`python -m experiments.run`, killed once training reaches a step: used by tests that need a
run cut off after a given checkpoint, deterministically (a signal would land at a random step).

    python tests/killed_run.py STEP experiment=... [overrides]

The engine stops at STEP (its checkpoint of that step written: train.save_every must divide
it), then every rank exits at once, as a killed job would: the record stays unfinished.
"""
from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from experiments import pipeline  # noqa: E402


def main() -> None:
    stop = int(sys.argv.pop(1))
    train = pipeline.train

    def train_then_die(*args, **kwargs):
        result = train(*args, stop_after_steps=stop, **kwargs)
        print(f"[killed_run] stopped at step {result.steps}", flush=True)
        os._exit(0)  # no cleanup, no record: as SIGKILL would leave it

    pipeline.train = train_then_die
    # as `python -m experiments.run` (Hydra finds conf/ from the module run as __main__)
    runpy.run_module("experiments.run", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
