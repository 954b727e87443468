"""Experiment tracking: W&B (offline by default, `wandb sync` later) or nothing.

One W&B project per table, one group per row, one run per seed; config, per-step loss and the
final metrics. `logger=none` turns it off.
"""
from __future__ import annotations

import os
from pathlib import Path


class NullTracker:
    def log(self, step: int, values: dict) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker(NullTracker):
    def __init__(self, project: str, group: str, name: str, config: dict, directory: Path,
                 mode: str = "offline"):
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, group=group, name=name, config=config,
                              dir=str(directory), mode=mode, reinit="finish_previous")

    def log(self, step: int, values: dict) -> None:
        self.run.log(values, step=step)

    def summary(self, values: dict) -> None:
        for k, v in values.items():
            self.run.summary[k] = v

    def finish(self) -> None:
        self.run.finish()


def make_tracker(logger_cfg: dict | None, project: str, group: str, name: str, config: dict,
                 directory: Path) -> NullTracker:
    if not logger_cfg or logger_cfg.get("name") in (None, "none"):
        return NullTracker()
    if logger_cfg["name"] != "wandb":
        raise ValueError(f"logger {logger_cfg['name']!r}: choose wandb or none")
    mode = os.environ.get("WANDB_MODE", logger_cfg.get("mode", "offline"))
    if mode == "disabled":
        return NullTracker()
    return WandbTracker(f"{logger_cfg.get('project_prefix', 'lora-repro')}-{project}", group, name,
                        config, directory, mode)
