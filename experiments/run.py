"""Hydra entry point: `python -m experiments.run experiment=table3/gpt2_m_lora seed=1`.

Composes conf/ and hands the config to `experiments.pipeline.run_experiment`; owns no logic.
"""
from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from . import cluster
from .pipeline import run_experiment


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.run.get("dry"):
        from .sizing import dry_run

        dry_run(cfg)
        return
    # a job of Hydra's submitit launcher (conf/hydra/launcher/slurm.yaml) may be requeued
    cluster.resume_under_scheduler(cfg, list(HydraConfig.get().overrides.task))
    cluster.export_distributed_env()
    run_experiment(cfg)


if __name__ == "__main__":
    main()
