"""Hydra entry point: `python -m experiments.run experiment=table3/gpt2_m_lora seed=1`.

Composes conf/ and hands the config to `experiments.pipeline.run_experiment`; owns no logic.
"""
from __future__ import annotations

import hydra
from omegaconf import DictConfig

from .pipeline import run_experiment


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_experiment(cfg)


if __name__ == "__main__":
    main()
