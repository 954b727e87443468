"""What a run needs when Hydra's submitit launcher started it (conf/hydra/launcher/slurm.yaml):
resume after a requeue, and one data-parallel rank per task of a multi-GPU job.

Slurm (or submitit's local executor) may stop a job and requeue it with the same overrides; the
requeued job must continue its unfinished run, so there `run.resume` defaults to true (an
explicit `run.resume=...` on the command line wins). A run with no record starts afresh either
way (`experiments.records.check_can_start`), and a complete one is still never overwritten.
A job with several tasks (`tasks_per_node` > 1 or `nodes` > 1) gets the environment torchrun
would give each process (RANK, WORLD_SIZE, MASTER_ADDR, ...) from submitit's own task ids.
"""
from __future__ import annotations

import os

from omegaconf import DictConfig, open_dict


def submitit_executor() -> str | None:
    """`slurm` or `local` inside a job submitit started (it sets SUBMITIT_EXECUTOR), else None."""
    return os.environ.get("SUBMITIT_EXECUTOR") or None


def _explicit_resume(task_overrides: list[str]) -> bool:
    return any(o.lstrip("+~").startswith("run.resume=") for o in task_overrides)


def resume_under_scheduler(cfg: DictConfig, task_overrides: list[str]) -> bool:
    """Sets `cfg.run.resume` to true inside a submitit job unless the command line set it;
    returns whether it changed the config."""
    if submitit_executor() is None or cfg.run.resume or _explicit_resume(task_overrides):
        return False
    with open_dict(cfg):
        cfg.run.resume = True
    return True


def export_distributed_env() -> int:
    """Inside a submitit job of several tasks, the torch.distributed env:// variables for this
    task; returns the world size (1: nothing to do, or torchrun already set them)."""
    if submitit_executor() is None or "WORLD_SIZE" in os.environ:
        return int(os.environ.get("WORLD_SIZE", "1"))
    import submitit

    env = submitit.helpers.TorchDistributedEnvironment()
    if env.world_size <= 1:
        return 1
    # Slurm lists the job's GPUs of this node in CUDA_VISIBLE_DEVICES (all tasks see all of
    # them); each rank keeps its own, since the pipeline puts a rank's model on "cuda" (:0).
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    env.export(set_cuda_visible_devices=False)
    if len(visible) >= env.local_world_size:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[env.local_rank]
    return env.world_size
