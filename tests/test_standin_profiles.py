"""The stand-in profiles (conf/profile/standin_*.yaml): each family of stand-in experiment files
selects one, which holds what all of them share once and is applied after them, so no file sets
a key of its profile; a profile on the command line (smoke, tiny, demo_*) goes over it, as it
went over the files' own settings before; a resume across the rename from `paper` goes on.
(Every file's settings as before: tests/test_spine.py, by digest.)"""
from __future__ import annotations

import re

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.paths import CONF_DIR
from experiments.run_checks import resume_differences

EXPERIMENT_DIR = CONF_DIR / "experiment"
# experiment folder -> the profile its files select
STANDIN_PROFILES = {
    **{f"table{n}_smollm2": "standin_smollm2" for n in (4, 5, 6, 8, 15, 16)},
    "gpt3_smollm2": "standin_smollm2_plateau", "s7_smollm2": "standin_smollm2_plateau",
    "scaling_smollm2": "standin_smollm2_plateau", "lowdata_smollm2": "standin_smollm2_plateau",
    "e2e_smollm2": "standin_smollm2_e2e", "gpt2_smollm2": "standin_smollm2_e2e_plateau",
    "beyond_smollm2": "standin_smollm2_beyond", "table2_minilm": "standin_minilm",
    "glue_minilm": "standin_minilm_plateau", "s7_minilm": "standin_minilm_plateau"}
SELECT = re.compile(r"^  - override /experiment_profile: (\S+)$", re.M)


def _keys(tree: dict, prefix: str = "") -> set[str]:
    """Dotted leaf keys; `method`'s and the defaults list's contents are values, not keys."""
    out = set()
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and key != "method":
            out |= _keys(v, key)
        elif key != "defaults":
            out.add(key)
    return out


def _profile(name: str) -> dict:
    return yaml.safe_load((CONF_DIR / "profile" / f"{name}.yaml").read_text(encoding="utf-8"))


def test_each_standin_family_selects_its_profile_and_no_other_file_does():
    selected: dict[str, set[str]] = {}
    for path in EXPERIMENT_DIR.rglob("*.yaml"):
        folder = path.relative_to(EXPERIMENT_DIR).parts[0]
        selected.setdefault(folder, set()).update(SELECT.findall(path.read_text()) or ["paper"])
    assert {f: p for f, p in selected.items() if p != {"paper"}} == {
        f: {p} for f, p in STANDIN_PROFILES.items()}


@pytest.mark.parametrize("profile", sorted(set(STANDIN_PROFILES.values())))
def test_no_file_sets_what_its_profile_sets(profile):
    """The profile is applied after the file: a key both set would silently take the profile's."""
    held = _keys(_profile(profile)) - {"profile.name"}
    files = [p for p in EXPERIMENT_DIR.rglob("*.yaml") if profile in SELECT.findall(p.read_text())]
    assert files and held >= {"model.init"}
    for path in files:
        both = held & _keys(yaml.safe_load(path.read_text()))
        assert not both, f"{path} sets {sorted(both)}, which conf/profile/{profile}.yaml holds"


@pytest.fixture(scope="module")
def compose_cfg():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))


def test_the_profile_applies_after_the_file_and_the_command_line_goes_over_it(compose_cfg):
    cfg = compose_cfg("experiment=glue_minilm/lora_cola")
    assert cfg.profile.name == "standin_minilm_plateau" and cfg.train.patience == 2
    assert (cfg.train.batch_size, cfg.task.seq_len, cfg.train.lr) == (32, 128, 1e-3)
    assert compose_cfg("experiment=glue_minilm/lora_cola", "train.patience=1").train.patience == 1
    smoke = compose_cfg("experiment=glue_minilm/lora_cola", "profile=smoke",
                        "train.batch_order=official")
    assert smoke.profile.name == "smoke" and smoke.train.max_steps == 2
    assert smoke.train.lr == cfg.train.lr and smoke.model.init == "random"
    # what the stand-in profile holds and smoke does not set stays, as when the file held it
    assert (smoke.task.seq_len, smoke.train.patience, smoke.train.batch_size) == (128, 2, 4)
    assert smoke.train.batch_order == "official"  # a key the profile brings, set on the line
    # no experiment: the paper's profile, as before
    assert compose_cfg().profile.name == "paper"


def test_the_demo_profiles_go_over_the_standin_profile(compose_cfg):
    cfg = compose_cfg("experiment=table2_minilm/lora_sst2", "profile=demo_minilm")
    assert cfg.profile.name == "demo" and cfg.train.epochs == 1           # the demo's own
    assert (cfg.train.batch_size, cfg.task.seq_len, cfg.train.batch_order) == (
        32, 128, "length_buckets")                                         # the stand-in's
    e2e = compose_cfg("experiment=e2e_smollm2/lora", "profile=demo_e2e")
    assert (e2e.decode.num_beams, e2e.decode.early_stopping, e2e.data.max_train) == (1, True, 800)


def test_a_run_started_under_paper_resumes_under_its_standin_profile(compose_cfg):
    now = OmegaConf.to_container(compose_cfg("experiment=table5_smollm2/rte_gen/qv_r4"),
                                 resolve=True)
    started = {**now, "profile": {"name": "paper"}}
    assert resume_differences(started, now) == []
    started["train"] = {**now["train"], "log_every": 1}    # a setting still counts
    assert resume_differences(started, now) == ["train.log_every: 1 -> 5"]
