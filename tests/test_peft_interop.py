"""PEFT interop at its edges (issue #24): GPT-2 with Wq, Wk and Wv exports an adapter PEFT
loads; adapters PEFT writes (SEQ_CLS heads, rank/alpha patterns, layers_to_transform) import
with PEFT's own matching; the config an import returns saves and loads on a fresh model. Each
is checked by logits: PEFT's model, ours after import, and ours after save + load agree."""
from __future__ import annotations

import pytest
import torch

from lora_core import (LoRAConfig, apply_lora, export_peft, import_peft, load_adapter, lora_layers,
                       save_adapter)

from .conftest import tiny_batch, tiny_model

peft = pytest.importorskip("peft")


def logits(model, batch):
    with torch.no_grad():
        return model.eval()(**batch).logits


def randomise_trainable(model, seed=3):
    """Non-zero values in every trainable tensor, so that a B or a head left at its initial
    value (or put in the wrong place) changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def check_import_and_reload(family, directory, expected, batch, tmp_path):
    back = tiny_model(family)
    config = import_peft(back, directory)
    torch.testing.assert_close(logits(back, batch), expected, atol=1e-5, rtol=1e-4)
    save_adapter(back, config, tmp_path / "ours")
    fresh = tiny_model(family)
    load_adapter(fresh, tmp_path / "ours")
    torch.testing.assert_close(logits(fresh, batch), expected, atol=1e-5, rtol=1e-4)
    return back, config


@pytest.mark.parametrize("targets", [{"q": 4, "k": 4, "v": 4}, {"q": 2, "k": 2, "v": 2, "o": 4}])
def test_gpt2_all_three_c_attn_slices_export_to_peft(tmp_path, targets):
    model = tiny_model("gpt2")
    config = LoRAConfig(targets=targets, alpha=8)
    apply_lora(model, config)
    randomise_trainable(model)
    batch = tiny_batch()
    expected = logits(model, batch)
    export_peft(model, config, tmp_path / "peft")
    via_peft = peft.PeftModel.from_pretrained(tiny_model("gpt2"), tmp_path / "peft")
    # before the fix: r=4 in the config but lora_A 12 x d in the file, which PEFT refuses
    torch.testing.assert_close(logits(via_peft, batch), expected, atol=1e-5, rtol=1e-4)
    c_attn = via_peft.base_model.model.transformer.h[0].attn.c_attn
    assert c_attn.r["default"] == 3 * targets["q"]
    assert c_attn.scaling["default"] == pytest.approx(8 / targets["q"])
    check_import_and_reload("gpt2", tmp_path / "peft", expected, batch, tmp_path)


def peft_adapter(family, tmp_path, **lora_kwargs):
    model = peft.get_peft_model(tiny_model(family), peft.LoraConfig(**lora_kwargs))
    randomise_trainable(model)
    model.save_pretrained(tmp_path / "peft")
    return model


def test_seq_cls_adapter_with_its_head_imports(tmp_path):
    made = peft_adapter("roberta", tmp_path, task_type="SEQ_CLS", r=4, lora_alpha=8,
                        target_modules=["query", "value"])
    assert set(made.peft_config["default"].modules_to_save) >= {"classifier", "score"}
    batch = tiny_batch()
    expected = logits(made, batch)
    back, config = check_import_and_reload("roberta", tmp_path / "peft", expected, batch, tmp_path)
    assert config.trainable_modules == ["classifier"]  # `score` is not in a RoBERTa: ignored
    assert back.classifier.out_proj.weight.requires_grad


def test_rank_and_alpha_patterns_match_as_peft_matches_them(tmp_path):
    made = peft_adapter("roberta", tmp_path, r=2, lora_alpha=4,
                        target_modules=["query", "value", "dense"],
                        rank_pattern={"value": 6, "layer.1.attention.self.query": 3},
                        alpha_pattern={"output.dense": 12})
    batch = tiny_batch()
    expected = logits(made, batch)
    back, config = check_import_and_reload("roberta", tmp_path / "peft", expected, batch, tmp_path)
    theirs = {n.removeprefix("base_model.model."): m.r["default"]
              for n, m in made.named_modules() if hasattr(m, "lora_A") and isinstance(m.r, dict)}
    assert {n: l.r for n, l in lora_layers(back).items()} == theirs
    assert theirs["roberta.encoder.layer.1.attention.self.query"] == 3
    assert theirs["roberta.encoder.layer.0.attention.self.query"] == 2
    assert theirs["roberta.encoder.layer.0.attention.self.value"] == 6


def test_layers_to_transform_is_honoured(tmp_path):
    made = peft_adapter("llama", tmp_path, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                        layers_to_transform=[1])
    batch = tiny_batch()
    expected = logits(made, batch)
    back, _ = check_import_and_reload("llama", tmp_path / "peft", expected, batch, tmp_path)
    assert sorted(lora_layers(back)) == ["model.layers.1.self_attn.q_proj",
                                         "model.layers.1.self_attn.v_proj"]


def test_unsupported_peft_options_are_refused_by_name(tmp_path):
    peft_adapter("llama", tmp_path, r=4, target_modules=["q_proj"], use_dora=True)
    with pytest.raises(ValueError, match=r"adapter_config.json: only plain LoRA.*use_dora"):
        import_peft(tiny_model("llama"), tmp_path / "peft")


def test_regex_target_modules_import(tmp_path):
    # a string target_modules is a regex PEFT full-matches; it was refused before
    made = peft_adapter("llama", tmp_path, r=2, lora_alpha=4,
                        target_modules=r".*\.0\.self_attn\.(q|v)_proj")
    batch = tiny_batch()
    back, _ = check_import_and_reload("llama", tmp_path / "peft", logits(made, batch), batch,
                                      tmp_path)
    assert sorted(lora_layers(back)) == ["model.layers.0.self_attn.q_proj",
                                         "model.layers.0.self_attn.v_proj"]
