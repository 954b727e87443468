"""Constructed run records for the beyond-the-paper analyses' tests (issue #27)."""
from __future__ import annotations

import json
from pathlib import Path


def write_run(results: Path, experiment: str, seed: int = 1, *, lr: float = 1e-3,
              metrics: dict | None = None, curve: list | None = None, method: str = "lora",
              config: dict | None = None, rerun: int = 1, **fields) -> Path:
    """A complete record at runs/<experiment>/seed<k>[-n]/record.json with the fields the
    analyses read: config.train.lr, metrics, the last evaluation in train.history, the curve."""
    metrics = metrics if metrics is not None else {"dev/accuracy": 0.5}
    cfg = {"train": {"lr": lr, "batch_size": 16}, "method": {"name": method}}
    for key, value in (config or {}).items():
        cfg.setdefault(key, {}).update(value)
    data = {"experiment": experiment, "table": None, "row": experiment.split("/")[-1],
            "model": "smollm2_135m", "model_display": "SmolLM2-135M-Instruct",
            "method": method, "task": "sst2_gen", "profile": fields.pop("profile", "paper"),
            "seed": seed,
            "status": "complete", "config": cfg, "metrics": metrics,
            "train": {"steps": 50, "history": [{"epoch": 1, **metrics}],
                      **({"curve": curve} if curve is not None else {})}, **fields}
    folder = results / "runs" / experiment / (f"seed{seed}" + (f"-{rerun}" if rerun > 1 else ""))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "record.json"
    # json writes NaN as the token NaN, which json.loads reads back: a diverged run
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
