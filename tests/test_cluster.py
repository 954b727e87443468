"""Cluster sweeps through Hydra's submitit launcher (conf/hydra/launcher/slurm*.yaml): the Slurm
config renders to the sbatch options a user asked for; a 3-seed sweep runs through submitit's
local executor (real processes, no scheduler) into records the table builder reads; a job
preempted mid-training is requeued by submitit and ends as an uninterrupted run."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments import cluster
from experiments.paths import CONF_DIR, REPO_ROOT

submitit = pytest.importorskip("submitit", reason="pip install -e '.[cluster]'")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")

SMOKE = ["experiment=table3/gpt2_m_lora", "profile=smoke"]
DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
            "CUDA_VISIBLE_DEVICES")


def hydra_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=True)


def test_slurm_launcher_renders_the_users_sbatch_options(tmp_path, monkeypatch):
    cfg = hydra_cfg(*SMOKE, "hydra/launcher=slurm", "hydra.launcher.partition=gpu-a100",
                    "hydra.launcher.gpus_per_node=8", "hydra.launcher.timeout_min=90",
                    "hydra.launcher.account=lab", f"hydra.sweep.dir={tmp_path}")
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    # one task per GPU, each a data-parallel rank (experiments/cluster.py)
    assert launcher.tasks_per_node == 8 and launcher.max_num_timeout > 0
    # the parameter translation of hydra_submitit_launcher's launch(), then submitit's own
    # sbatch file: what Slurm would receive, without a scheduler
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {k: v for k, v in OmegaConf.to_container(launcher, resolve=True).items()
              if k not in ("_target_", "submitit_folder", "max_num_timeout")}
    # submitit's Slurm executor only checks that `srun` is on PATH before rendering
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(folder=tmp_path / "sub", cluster="slurm")
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    sbatch = executor._executor._make_submission_file_text("python -m x", "uid")
    for line in ("--partition=gpu-a100", "--gpus-per-node=8", "--ntasks-per-node=8",
                 "--time=90", "--account=lab", "--signal=USR2@"):
        assert f"#SBATCH {line}" in sbatch, (line, sbatch)


def test_resume_defaults_to_true_only_inside_a_submitit_job(monkeypatch):
    cfg = hydra_cfg(*SMOKE)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert not cluster.resume_under_scheduler(cfg, []) and cfg.run.resume is False
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert not cluster.resume_under_scheduler(cfg, ["run.resume=false"]) and not cfg.run.resume
    assert cluster.resume_under_scheduler(cfg, ["seed=2"]) and cfg.run.resume is True


def test_distributed_env_from_submitit_tasks(monkeypatch):
    # a copy: export() writes os.environ, and no later test (or its subprocesses) may inherit it
    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k not in DIST_ENV})
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    # task 1 of a two-task local job whose node has GPUs 4 and 5
    for key, value in {"SUBMITIT_LOCAL_JOB_ID": "123", "SUBMITIT_LOCAL_NTASKS": "2",
                       "SUBMITIT_LOCAL_JOB_NUM_NODES": "1", "SUBMITIT_LOCAL_NODEID": "0",
                       "SUBMITIT_LOCAL_GLOBALID": "1", "SUBMITIT_LOCAL_LOCALID": "1",
                       "CUDA_VISIBLE_DEVICES": "4,5"}.items():
        monkeypatch.setenv(key, value)
    assert cluster.export_distributed_env() == 2
    assert (os.environ["RANK"], os.environ["WORLD_SIZE"], os.environ["LOCAL_RANK"]) == ("1", "2", "1")
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5" and os.environ["MASTER_PORT"].isdigit()
    # torchrun's variables, once set, are left alone
    assert cluster.export_distributed_env() == 2 and os.environ["RANK"] == "1"


def _sweep(results: Path, *overrides: str) -> subprocess.Popen:
    # a run that inherited RANK / WORLD_SIZE would wait for ranks that never come
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV and not k.startswith("SUBMITIT")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
               PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, "-m", "experiments.run", "-m", "hydra/launcher=slurm_local", *SMOKE,
           f"paths.results={results}", f"hydra.sweep.dir={results / 'multirun'}", *overrides]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="module")
def e2e_data():
    from .conftest import shared_data_or_skip

    shared_data_or_skip("data", "e2e")


@pytest.mark.slow
def test_three_seed_sweep_lands_in_the_table(tmp_path, e2e_data):
    _finish(_sweep(tmp_path, "seed=1,2,3"))
    bleu = {}
    for seed in (1, 2, 3):
        record = json.loads((tmp_path / f"runs/table3/gpt2_m_lora/seed{seed}/record.json").read_text())
        assert record["status"] == "complete" and record["seed"] == seed
        assert record["config"]["run"]["resume"] is True  # set by experiments.cluster in the job
        bleu[seed] = record["metrics"]["BLEU"]
    # each job ran in its own process under submitit (its logs name the job)
    logs = list((tmp_path / "multirun" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 3
    from experiments.tables.cli import main as build_tables

    build_tables(["--table", "3", "--results", str(tmp_path), "--no-wandb"])
    rows = [r for r in csv.DictReader((tmp_path / "tables" / "table3.csv").open())
            if r["row"] == "GPT-2 M LoRA" and r["profile"] == "smoke"]
    assert len(rows) == 1 and rows[0]["seeds"] == "1;2;3"
    values = [float(v) for v in rows[0]["BLEU_values"].split(";")]
    # the table prints BLEU on the paper's scale (x100), one value per seed in seed order
    assert values == pytest.approx([100 * bleu[s] for s in (1, 2, 3)], abs=1e-9)


def _task_pid(marker: str, deadline: float) -> int:
    """The pid of the submitit task (`python -m submitit.core._submit <folder>`) whose folder
    lies under `marker`."""
    while time.time() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"submitit.core._submit" in cmd and any(marker.encode() in c for c in cmd):
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no submitit task for {marker} started")


@pytest.mark.slow
def test_preempted_job_is_requeued_and_ends_as_an_uninterrupted_run(tmp_path, e2e_data):
    # long enough to be caught mid-training: 512 lines / batch 4 = 128 steps, a checkpoint
    # every 4 so the requeued job has one to continue from
    budget = ["data.max_train=512", "train.max_steps=0", "train.save_every=4", "seed=1"]
    killed = tmp_path / "killed"
    proc = _sweep(killed, *budget)
    deadline = time.time() + 300
    task = _task_pid(str(killed), deadline)
    checkpoint = killed / "runs/table3/gpt2_m_lora/seed1/checkpoints/last.json"
    while not checkpoint.exists():
        assert proc.poll() is None and time.time() < deadline, "the job ended before a checkpoint"
        time.sleep(0.01)
    # Slurm's preemption/timeout signal for submitit jobs: the job checkpoints its callable and
    # the local executor restarts it with the same overrides
    os.kill(task, submitit.JobEnvironment._usr_sig())
    out = _finish(proc)
    record = json.loads((checkpoint.parent.parent / "record.json").read_text())
    assert record["status"] == "complete", out[-3000:]
    assert record["train"]["resumed_from_step"] > 0, "the signal came after training ended"
    log = "".join(p.read_text() for p in (killed / "multirun" / ".submitit").rglob("*_log.out"))
    assert "this job is preempted" in log and "Requeued job" in log
    assert log.count("Starting with JobEnvironment") == 2  # the task ran twice, same job

    whole = tmp_path / "whole"
    _finish(_sweep(whole, *budget))
    reference = json.loads((whole / "runs/table3/gpt2_m_lora/seed1/record.json").read_text())
    assert reference["train"]["resumed_from_step"] == 0
    assert record["train"]["steps"] == reference["train"]["steps"] == 128
    assert record["train"]["resumed_from_step"] % 4 == 0
    # the same adapter, byte for byte, and the same scores
    assert record["weights"] == reference["weights"]
    assert record["metrics"] == reference["metrics"]
    assert [h["valid_loss"] for h in record["train"]["history"]] == \
        [h["valid_loss"] for h in reference["train"]["history"]]
    assert record["train"]["curve"] == reference["train"]["curve"]


@pytest.mark.slow
def test_two_task_job_trains_as_two_data_parallel_ranks(tmp_path, e2e_data):
    # one epoch of 16 lines at batch 4: 4 steps on one process, 2 when two ranks split it
    _finish(_sweep(tmp_path, "seed=1", "hydra.launcher.tasks_per_node=2", "train.max_steps=0"))
    record = json.loads((tmp_path / "runs/table3/gpt2_m_lora/seed1/record.json").read_text())
    assert record["status"] == "complete" and record["train"]["steps"] == 2
    logs = sorted(p.name for p in (tmp_path / "multirun" / ".submitit").rglob("*_log.out"))
    assert len(logs) == 2 and logs[0].endswith("_0_log.out") and logs[1].endswith("_1_log.out")
