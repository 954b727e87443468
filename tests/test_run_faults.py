"""The run layer's faults (issue #24): a config that cannot run writes nothing, run.name stays
inside paths.results, two runs into one directory cannot both write it, and a resume refuses a
config that differs from the record's."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments import records
from experiments.paths import CONF_DIR, REPO_ROOT
from experiments.pipeline import run_experiment
from experiments.records import RunExistsError, RunLockedError
from experiments.run_checks import RunConfigError, resume_differences


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_bad_values_are_refused_before_anything_is_written(tmp_path):
    cfg = compose_cfg("profile=smoke", f"paths.results={tmp_path / 'out'}", "train.batch_size=0",
                      "seed=1.5", "train.lr=-1e-3", "data.max_train=abc",
                      "+train.attention_kernel=flash")
    with pytest.raises(RunConfigError) as err:
        run_experiment(cfg)
    message = str(err.value)
    for expected in ("train.batch_size=0 must be an integer >= 1", "seed=1.5 must be an integer",
                     "train.lr=-0.001 must be a finite number > 0",
                     "data.max_train='abc' must be null or an integer",
                     "train.attention_kernel='flash' must be auto"):
        assert expected in message
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("name", ["../../x", "/tmp/elsewhere", "a/../../b", ""])
def test_run_name_stays_inside_results(tmp_path, name):
    results = tmp_path / "results"
    cfg = compose_cfg("profile=smoke", f"paths.results={results}", f"run.name='{name}'")
    with pytest.raises(RunConfigError, match="run.name="):
        run_experiment(cfg)
    assert files_under(tmp_path) == []
    if name:  # the record layer refuses it too, for callers that skip the config check
        with pytest.raises(RunExistsError, match="outside"):
            records.run_directory(results, name, 1)


def test_second_run_into_a_locked_directory_is_refused(tmp_path):
    run_dir = records.run_directory(tmp_path, "adhoc/locked", 1)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from experiments import records
            with records.run_lock({str(run_dir)!r}):
                print("locked", flush=True)
                sys.stdin.readline()
        """)], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cfg = compose_cfg("profile=smoke", f"paths.results={tmp_path}", "run.name=adhoc/locked")
        with pytest.raises(RunLockedError, match="in use by another run"):
            run_experiment(cfg)
        assert files_under(run_dir) == []  # the refused run wrote nothing
    finally:
        holder.communicate("\n", timeout=30)
    with records.run_lock(run_dir):  # the holder ended: the lock is free again
        pass


def _unfinished_record(cfg, run_dir, **changes):
    config = OmegaConf.to_container(cfg, resolve=True)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    record = {"experiment": cfg.run.name, "status": "running", "config": config, "seed": 1}
    records.write_record(run_dir, record)
    return (run_dir / records.RECORD).read_text()


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path):
    cfg = compose_cfg("profile=smoke", f"paths.results={tmp_path}", "run.resume=true")
    run_dir = records.run_directory(tmp_path, cfg.run.name, 1)
    before = _unfinished_record(cfg, run_dir, train__lr=-1e-3, train__epochs=3)
    with pytest.raises(RunExistsError) as err:
        run_experiment(cfg)
    assert "train.epochs: 3 -> 1" in str(err.value)
    assert f"train.lr: -0.001 -> {cfg.train.lr!r}" in str(err.value)
    assert (run_dir / records.RECORD).read_text() == before


def test_resume_differences_ignore_where_and_how_a_run_logs():
    old = {"train": {"lr": 1e-3}, "paths": {"results": "a"}, "run": {"resume": False},
           "logger": {"name": "wandb"}}
    new = {"train": {"lr": 1e-3}, "paths": {"results": "b"}, "run": {"resume": True},
           "logger": {"name": "none"}}
    assert resume_differences(old, new) == []
    new["train"]["extra"] = 1
    assert resume_differences(old, new) == ["train.extra: '(absent)' -> 1"]


def test_resume_with_the_recorded_config_completes(tmp_path):
    from .conftest import shared_data_or_skip

    shared_data_or_skip("data", "e2e")
    cfg = compose_cfg("profile=smoke", f"paths.results={tmp_path}", "run.resume=true")
    run_dir = records.run_directory(tmp_path, cfg.run.name, 1)
    _unfinished_record(cfg, run_dir)
    record = json.loads(run_experiment(cfg).read_text())
    assert record["status"] == "complete" and record["train"]["steps"] == 2


def test_run_killed_while_decoding_resumes_to_the_uninterrupted_record(tmp_path, monkeypatch):
    from experiments.generation_job import GenerationJob

    from .conftest import shared_data_or_skip

    shared_data_or_skip("data", "e2e")
    # max_steps ends training inside epoch 1 of 2: the case that gained an epoch with loss 0.0
    overrides = ["profile=smoke", "train.epochs=2", "train.max_steps=3", "logger=none"]
    full = json.loads(run_experiment(compose_cfg(*overrides, f"paths.results={tmp_path / 'a'}"))
                      .read_text())

    finish = GenerationJob.finish

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while decoding")

    monkeypatch.setattr(GenerationJob, "finish", killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(compose_cfg(*overrides, f"paths.results={tmp_path / 'b'}"))
    monkeypatch.setattr(GenerationJob, "finish", finish)
    resumed = json.loads(run_experiment(compose_cfg(*overrides, f"paths.results={tmp_path / 'b'}",
                                                    "run.resume=true")).read_text())
    assert resumed["status"] == "complete" and resumed["train"]["resumed_from_step"] == 3
    assert len(full["train"]["history"]) == 1
    assert resumed["train"]["history"] == full["train"]["history"]
    assert resumed["metrics"] == full["metrics"]
    assert list(resumed["weights"].values()) == list(full["weights"].values())  # same adapter


@pytest.mark.slow
def test_two_runs_started_at_once_into_one_directory(tmp_path):
    from .conftest import shared_data_or_skip

    shared_data_or_skip("data", "e2e")
    cmd = [sys.executable, "-m", "experiments.run", "profile=smoke", "logger=none",
           f"paths.results={tmp_path / 'results'}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    procs = [subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0 and codes[1] != 0, outs  # before: both exited 0
    refused = next(err for p, (_, err) in zip(procs, outs) if p.returncode)
    assert "in use by another run" in refused or "never overwritten" in refused
    records_written = list((tmp_path / "results").rglob("record.json"))
    assert len(records_written) == 1
    assert json.loads(records_written[0].read_text())["status"] == "complete"


@pytest.mark.parametrize("content", [b"\xff\xfe not text", b"[1, 2]", b"{\"status\": "])
def test_an_unreadable_record_is_named_not_overwritten(tmp_path, content):
    cfg = compose_cfg("profile=smoke", f"paths.results={tmp_path}", "run.resume=true")
    run_dir = records.run_directory(tmp_path, cfg.run.name, 1)
    run_dir.mkdir(parents=True)
    (run_dir / records.RECORD).write_bytes(content)
    with pytest.raises(RunExistsError, match=r"record\.json (is not valid JSON|holds a JSON list)"):
        run_experiment(cfg)
    assert (run_dir / records.RECORD).read_bytes() == content


def test_a_key_added_since_the_run_started_reads_as_its_null_default():
    from experiments.run_checks import resume_differences

    recorded = {"train": {"lr": 1e-3}}  # written before `prompt` existed
    assert resume_differences(recorded, {"train": {"lr": 1e-3}, "prompt": {"separator": None}}) == []
    assert resume_differences(recorded, {"train": {"lr": 1e-3}, "prompt": {"separator": "\nA:"}}) \
        == ["prompt.separator: '(absent)' -> '\\nA:'"]
