"""The experiment files of issue #27 (conf/experiment/beyond_smollm2): they compose, the lr grid
is the same for every method, the MLP / attention files match in LoRA parameters on SmolLM2,
and the batch-size files rescale the lr as they say."""
import math
from collections import defaultdict

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.paths import CONF_DIR

FOLDER = CONF_DIR / "experiment" / "beyond_smollm2"
EXPERIMENTS = sorted(str(p.relative_to(CONF_DIR / "experiment").with_suffix(""))
                     for p in FOLDER.rglob("*.yaml"))


@pytest.fixture(scope="module")
def cfgs():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return {e: compose(config_name="config", overrides=[f"experiment={e}"])
                for e in EXPERIMENTS}


def test_every_file_composes_as_a_smollm2_stand_in(cfgs):
    assert len(EXPERIMENTS) >= 40
    for name, cfg in cfgs.items():
        assert cfg.run.name == name
        assert cfg.model.name == "smollm2_135m" and cfg.profile.name == "standin_smollm2_beyond"
        assert cfg.run.row                      # records need a row to be read


def test_one_lr_grid_for_every_method(cfgs):
    grids = defaultdict(set)
    for name, cfg in cfgs.items():
        if name.startswith("beyond_smollm2/lr_sweep/"):
            grids[name.split("/")[2]].add(float(cfg.train.lr))
    assert set(grids) == {"ft", "lora_r1", "lora_r8", "lora_r64"}
    assert len({tuple(sorted(g)) for g in grids.values()}) == 1
    grid = sorted(grids["ft"])
    assert len(grid) >= 5 and grid[-1] / grid[0] >= 100


def test_lora_sweeps_adapt_every_layer_mlp_included(cfgs):
    cfg = cfgs["beyond_smollm2/lr_sweep/lora_r8/lr_1e-3"]
    assert OmegaConf.to_container(cfg.method.targets) == ["q", "k", "v", "o", "mlp"]
    assert cfg.method.r == 8
    assert cfg.method.alpha == 32


def _lora_params(cfg) -> int:
    from lora_core import apply_method, count_parameters
    from experiments.models import load_model

    loaded = load_model(OmegaConf.to_container(cfg.model, resolve=True), init="meta",
                        head="causal_lm", with_tokenizer=False)
    params = OmegaConf.to_container(cfg.method, resolve=True)
    name = params.pop("name")
    apply_method(loaded.model, name, family="llama", **params)
    return count_parameters(loaded.model).trainable


def test_mlp_and_attention_files_match_in_parameters(cfgs):
    counts = {n.rsplit("/", 1)[1]: _lora_params(cfgs[n]) for n in EXPERIMENTS
              if n.startswith("beyond_smollm2/mlp_vs_attn/")}
    # 30 layers x 203,520 (attention r=53: 3840·53; every layer r=20: 10176·20)
    assert counts["attn_r53"] == counts["all_r20"] == 30 * 203_520
    assert counts["mlp_r32"] == 30 * 6336 * 32
    assert abs(counts["mlp_r32"] / counts["attn_r53"] - 1) < 0.005


def test_batch_sizes_rescale_the_lr_by_the_square_root(cfgs):
    for method in ("ft", "lora_r8"):
        base = float(cfgs[f"beyond_smollm2/batch_size/{method}_b32"].train.lr)
        for b in (8, 128):
            cfg = cfgs[f"beyond_smollm2/batch_size/{method}_b{b}"]
            assert cfg.train.batch_size == b
            assert float(cfg.train.lr) == pytest.approx(base * math.sqrt(b / 32), rel=1e-2)
            assert cfg.data.max_train == 3200        # the same data: only the batch changes
