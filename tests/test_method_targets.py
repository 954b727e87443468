"""LoRA's `targets`: a list of weight types with one rank `r`, which an experiment replaces
rather than merges into (no Wq / Wv leaking in from conf/method/lora.yaml), and the dict form
older records hold, read the same way."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.models import load_model
from experiments.paths import CONF_DIR
from experiments.record_migrations import migrate
from experiments.run_checks import resume_differences
from lora_core import apply_method, count_parameters, target_ranks

# SmolLM2-135M: 30 blocks, d_model 576; Wq is 576 x 576, so LoRA r on it adds r * (576 + 576)
SMOLLM2_LAYERS, SMOLLM2_D = 30, 576


@pytest.fixture(scope="module")
def compose_cfg():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides))


def _trainable(cfg) -> int:
    loaded = load_model(OmegaConf.to_container(cfg.model, resolve=True), init="meta",
                        head="causal_lm", with_tokenizer=False)
    params = OmegaConf.to_container(cfg.method, resolve=True)
    apply_method(loaded.model, params.pop("name"), family="llama", **params)
    return count_parameters(loaded.model).trainable


def test_an_experiment_setting_only_q_gets_only_q(compose_cfg):
    cfg = compose_cfg("experiment=table6_smollm2/rte_gen/q_r8")
    assert OmegaConf.to_container(cfg.method.targets) == ["q"] and cfg.method.r == 8
    assert _trainable(cfg) == SMOLLM2_LAYERS * 8 * (SMOLLM2_D + SMOLLM2_D)


def test_a_command_line_list_replaces_the_default(compose_cfg):
    cfg = compose_cfg("model=smollm2_135m", "method.targets=[q]", "method.r=2")
    assert OmegaConf.to_container(cfg.method.targets) == ["q"]
    assert _trainable(cfg) == SMOLLM2_LAYERS * 2 * (SMOLLM2_D + SMOLLM2_D)
    # the default, for comparison: Wq and Wv (Wv is 576 -> 192 under GQA), r = 4
    default = compose_cfg("model=smollm2_135m")
    assert _trainable(default) == SMOLLM2_LAYERS * 4 * ((SMOLLM2_D + SMOLLM2_D) + (SMOLLM2_D + 192))


def test_target_ranks_reads_both_forms():
    assert target_ranks(["q", "v"], 8) == {"q": 8, "v": 8}
    assert target_ranks({"q": 8, "k": 0, "v": 8, "o": 0}) == {"q": 8, "v": 8}
    with pytest.raises(ValueError, match="need one rank r"):
        target_ranks(["q"], None)
    with pytest.raises(ValueError, match="ambiguous"):
        target_ranks({"q": 8}, 8)
    with pytest.raises(ValueError, match="twice"):
        target_ranks(["q", "q"], 8)
    with pytest.raises(ValueError, match="must be a list"):
        target_ranks("qv", 8)


def _old_record(targets: dict) -> dict:
    return {"schema_version": 2, "experiment": "x", "status": "running",
            "config": {"method": {"name": "lora", "targets": targets, "alpha": 8,
                                  "dropout": 0.0, "bias": "none"}}}


def test_an_old_record_reads_as_the_list_its_file_composes_to_now(compose_cfg):
    migrated = migrate(_old_record({"q": 4, "k": 0, "v": 4, "o": 0}))
    assert migrated["config"]["method"] == {"name": "lora", "targets": ["q", "v"], "r": 4,
                                            "alpha": 8, "dropout": 0.0, "bias": "none"}
    # so a run started before the list form resumes: its recorded method is the file's now
    now = OmegaConf.to_container(compose_cfg("experiment=table5_smollm2/rte_gen/qv_r4").method)
    assert resume_differences(migrated["config"]["method"], now) == []


def test_an_old_record_with_ranks_by_type_keeps_its_dict():
    migrated = migrate(_old_record({"q": 8, "v": 4}))
    assert migrated["config"]["method"]["targets"] == {"q": 8, "v": 4}
    assert "r" not in migrated["config"]["method"]
