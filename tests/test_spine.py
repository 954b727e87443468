"""The spine end to end: every experiment config composes, Table 3 rows run in the smoke
profile, records are complete and never overwritten, resume and torchrun work."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from experiments.paths import CONF_DIR, REPO_ROOT
from experiments.pipeline import run_experiment
from experiments.records import RunExistsError
from experiments.run_checks import check_run_config

from .config_digests import digest, recorded
from .test_standin_profiles import STANDIN_PROFILES

EXPERIMENTS = sorted(str(p.relative_to(CONF_DIR / "experiment").with_suffix(""))
                     for p in (CONF_DIR / "experiment").rglob("*.yaml"))
TABLE3 = [e for e in EXPERIMENTS if e.startswith("table3/")]
DIGESTS = recorded()
FIRST_OF_FOLDER = {min(e for e in EXPERIMENTS if e.rsplit("/", 1)[0] == folder)
                   for folder in {e.rsplit("/", 1)[0] for e in EXPERIMENTS}}


def compose_cfg(*overrides: str):
    if GlobalHydra.instance().is_initialized():  # inside the module's hydra_conf fixture
        return compose(config_name="config", overrides=list(overrides))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture(scope="module")
def hydra_conf():
    """One Hydra initialisation for many compositions (each initialisation costs ~0.2 s)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, hydra_conf):
    cfg = hydra_conf(f"experiment={experiment}")
    check_run_config(cfg)  # every shipped experiment passes the checks made before a run
    # the GPT-3 recipes for GPU users name the model in the run directory (model=... switches it)
    assert cfg.run.name in (experiment, f"{experiment}/{cfg.model.name}")
    # a stand-in's file picks its family's profile (conf/profile/standin_*.yaml); the rest `paper`
    assert cfg.profile.name == STANDIN_PROFILES.get(experiment.split("/")[0], "paper")
    assert cfg.model.init == "pretrained"
    # the settings every run takes are the ones recorded before the stand-in profiles and the
    # list form of LoRA's targets (tests/config_digests.py says how a deliberate change records)
    assert digest(OmegaConf.to_container(cfg)) == DIGESTS.get(experiment), (
        f"{experiment} composes to other settings than tests/fixtures/experiment_configs.json "
        "records: if intended, run python -m tests.config_digests and say why in the commit")
    # the weight types adapted are the file's own: a file's `targets` is a list, which replaces
    # the method's default (a dict would merge into it, adapting types the file leaves out)
    written = (yaml.safe_load((CONF_DIR / "experiment" / f"{experiment}.yaml").read_text())
               .get("method") or {}).get("targets")
    if written is not None:
        assert isinstance(written, list), f"{experiment}: targets {written} must be a list with r"
        assert list(cfg.method.targets) == written
    if experiment not in FIRST_OF_FOLDER:  # the profile acts the same on every file of a folder
        return
    smoke = hydra_conf(f"experiment={experiment}", "profile=smoke")
    assert smoke.model.init == "random" and smoke.train.max_steps == 2
    assert smoke.train.lr == cfg.train.lr  # the profile changes the budget, not the recipe


def test_table3_lora_follows_table11():
    cfg = compose_cfg("experiment=table3/gpt2_m_lora")
    assert list(cfg.method.targets) == ["q", "v"] and cfg.method.r == 4 and cfg.method.alpha == 32
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.label_smoothing) == (2e-4, 0.01, 0.1)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.warmup_steps) == (8, 5, 500)
    assert (cfg.decode.num_beams, cfg.decode.no_repeat_ngram_size) == (10, 4)


@pytest.fixture(scope="module")
def e2e_data():
    from .conftest import shared_data_or_skip

    shared_data_or_skip("data", "e2e")


@pytest.mark.parametrize("experiment", TABLE3)
def test_table3_rows_run_in_smoke_profile(experiment, tmp_path, e2e_data):
    cfg = compose_cfg(f"experiment={experiment}", "profile=smoke", f"paths.results={tmp_path}")
    record = json.loads(run_experiment(cfg).read_text())
    assert record["status"] == "complete" and record["profile"] == "smoke"
    assert set(record["metrics"]) >= {"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}
    assert record["params"]["trainable"] > 0 and record["train"]["steps"] == 2
    lines = (tmp_path / "runs" / experiment / "seed1" / "predictions.txt").read_text().splitlines()
    assert len(lines) == 4


def test_complete_record_is_never_overwritten(tmp_path, e2e_data):
    overrides = ["experiment=table3/gpt2_m_lora", "profile=smoke", f"paths.results={tmp_path}"]
    first = run_experiment(compose_cfg(*overrides))
    before = first.read_text()
    with pytest.raises(RunExistsError, match="never overwritten"):
        run_experiment(compose_cfg(*overrides))
    assert first.read_text() == before
    second = run_experiment(compose_cfg(*overrides, "run.new_dir=true"))
    assert second.parent.name == "seed1-2"


def test_unfinished_run_needs_resume(tmp_path, e2e_data):
    overrides = ["experiment=table3/gpt2_m_lora", "profile=smoke", f"paths.results={tmp_path}"]
    run_dir = tmp_path / "runs" / "table3" / "gpt2_m_lora" / "seed1"
    run_dir.mkdir(parents=True)
    (run_dir / "record.json").write_text(json.dumps({"status": "running"}))
    with pytest.raises(RunExistsError, match="run.resume=true"):
        run_experiment(compose_cfg(*overrides))


def test_invalid_config_values_stop_the_run(tmp_path):
    with pytest.raises(ValueError, match="known methods"):
        run_experiment(compose_cfg("profile=smoke", "method.name=lorax", f"paths.results={tmp_path}"))
    # SmolLM2: its tokenizer ships with a package, so these run on a bare clone too
    with pytest.raises(ValueError, match=r"method.r=-1: .*an integer >= 1"):
        run_experiment(compose_cfg("profile=smoke", "model=smollm2_135m", "method.r=-1",
                                   f"paths.results={tmp_path}"))
    # leaving every type out is an error, not a run that trains nothing
    with pytest.raises(ValueError, match="targets is empty"):
        run_experiment(compose_cfg("profile=smoke", "model=smollm2_135m", "method.targets=[]",
                                   f"paths.results={tmp_path}"))
    assert not list(tmp_path.rglob("record.json"))


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, e2e_data):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "experiments.run", "experiment=table3/gpt2_m_lora", "profile=smoke",
           f"paths.results={tmp_path}"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "runs/table3/gpt2_m_lora/seed1/record.json").read_text())
    assert record["status"] == "complete"
    # two ranks split each epoch: 16 lines / 2 ranks / batch 4 = 2 steps
    assert record["train"]["steps"] == 2
