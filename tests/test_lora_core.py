"""LoRA core: the paper's formula, GPT-2's masked c_attn, merging, trainable set, files, PEFT."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lora_core import (LoRAConfig, LoRAEmbedding, LoRALinear, apply_lora, count_parameters,
                       export_peft, import_peft, load_adapter, lora_layers, merge_and_unload,
                       merge_lora, save_adapter, unmerge_lora)

from .conftest import tiny_batch, tiny_model

HEADS = {"roberta": ["classifier"], "deberta-v2": ["pooler", "classifier"],
         "bert": ["pooler", "classifier"], "gpt2": [], "llama": []}


def logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def train_step(model, batch, lr=1e-2, steps=1):
    """A few real optimizer steps, so B is no longer zero."""
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        out = model(**batch)
        loss = out.logits.float().pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def lora_model(family, targets=None, seed=0, **kw):
    model = tiny_model(family, seed)
    config = LoRAConfig(targets=targets or {"q": 4, "v": 4}, alpha=8,
                        trainable_modules=HEADS[family], **kw)
    apply_lora(model, config)
    return model, config


def test_linear_matches_formula():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, r=2, alpha=4)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 6)
    expected = base(x) + (4 / 2) * x @ layer.lora_A.T @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected)
    # loralib init: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming a=sqrt(5)), B = 0
    fresh = LoRALinear(nn.Linear(1024, 8), r=4)
    assert fresh.lora_A.abs().max() <= 1 / math.sqrt(1024)
    assert fresh.lora_A.abs().max() > 0.9 / math.sqrt(1024)
    assert torch.count_nonzero(fresh.lora_B) == 0
    assert not fresh.base_layer.weight.requires_grad


def test_b_zero_leaves_outputs_unchanged():
    for family in ("gpt2", "roberta", "llama"):
        batch = tiny_batch()
        before = logits(tiny_model(family), batch)
        model, _ = lora_model(family)
        torch.testing.assert_close(logits(model, batch), before, rtol=0, atol=0)


def test_gpt2_k_slice_exactly_zero_after_training():
    model, _ = lora_model("gpt2")
    train_step(model, tiny_batch(), steps=2)
    c_attn = model.transformer.h[0].attn.c_attn
    assert isinstance(c_attn, LoRALinear) and c_attn.enable == [True, False, True]
    delta = c_attn.delta_weight()  # Conv1D layout: (in, 3·d)
    d = 32
    assert delta.shape == (d, 3 * d)
    assert torch.count_nonzero(delta[:, d:2 * d]) == 0
    assert torch.count_nonzero(delta[:, :d]) > 0 and torch.count_nonzero(delta[:, 2 * d:]) > 0
    # A is (2r, in) and B is (2·d, r): loralib's MergedLinear shapes
    assert c_attn.lora_A.shape == (8, d) and c_attn.lora_B.shape == (2 * d, 4)


def test_fused_forward_matches_delta_weight():
    model, _ = lora_model("gpt2", targets={"q": 2, "k": 2, "v": 2})
    c_attn = model.transformer.h[1].attn.c_attn
    nn.init.normal_(c_attn.lora_B)
    x = torch.randn(2, 5, 32)
    expected = c_attn.base_layer(x) + x @ c_attn.delta_weight()
    torch.testing.assert_close(c_attn(x), expected, atol=1e-5, rtol=1e-5)
    assert c_attn.lora_A.shape == (6, 32)  # one rank-2 update per slice, not one over all three


@pytest.mark.parametrize("family", ["gpt2", "roberta", "deberta-v2", "bert", "llama"])
def test_merged_equals_unmerged(family):
    model, _ = lora_model(family, targets={"q": 4, "v": 4, "o": 2, "mlp": 2})
    batch = tiny_batch()
    train_step(model, batch)
    unmerged = logits(model, batch)
    merge_lora(model)
    torch.testing.assert_close(logits(model, batch), unmerged, atol=1e-5, rtol=1e-4)
    unmerge_lora(model)
    torch.testing.assert_close(logits(model, batch), unmerged, atol=1e-5, rtol=1e-4)
    merge_and_unload(model)
    assert not lora_layers(model)
    assert not any("lora_" in n for n, _ in model.named_parameters())
    torch.testing.assert_close(logits(model, batch), unmerged, atol=1e-5, rtol=1e-4)


def test_embedding_lora_merges_and_follows_loralib_init():
    torch.manual_seed(0)
    emb = LoRAEmbedding(nn.Embedding(20, 8, padding_idx=0), r=3, alpha=6)
    assert torch.count_nonzero(emb.lora_A) == 0  # reversed init: A zero, B normal
    assert torch.count_nonzero(emb.lora_B) == emb.lora_B.numel()
    nn.init.normal_(emb.lora_A)
    ids = torch.tensor([[0, 3, 19, 7]])
    expected = emb.base_layer(ids) + 2.0 * emb.lora_A.T[ids] @ emb.lora_B.T
    torch.testing.assert_close(emb(ids), expected)
    emb.merge()
    torch.testing.assert_close(emb(ids), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "roberta", "llama"])
def test_gradients_only_on_trainable(family):
    model, _ = lora_model(family, bias="lora_only")
    model.train()
    model(**tiny_batch()).logits.pow(2).mean().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad == trainable
    for name in trainable:
        assert ("lora_" in name or name.endswith("base_layer.bias")
                or any(name.startswith(h + ".") or f".{h}." in name for h in HEADS[family]))


def test_bias_modes_counts():
    d, layers, r = 32, 2, 4
    lora_params = layers * (2 * r * d + 2 * d * r)  # masked c_attn: A (2r, d), B (2d, r)
    counts = {}
    for bias in ("none", "all", "lora_only"):
        model, _ = lora_model("gpt2", bias=bias)
        counts[bias] = count_parameters(model).trainable
    assert counts["none"] == lora_params
    assert counts["lora_only"] == lora_params + layers * 3 * d  # c_attn bias is 3·d
    # every bias: per block ln_1, c_attn, c_proj, ln_2, c_fc, mlp.c_proj; plus ln_f
    per_block = d + 3 * d + d + d + 4 * d + d
    assert counts["all"] == lora_params + layers * per_block + d


def test_per_type_ranks_and_layers():
    model, _ = lora_model("llama", targets={"v": 2})
    # GQA: v_proj maps 32 -> 16 (2 kv heads of 8): A (2, 32), B (16, 2)
    assert count_parameters(model).trainable == 2 * (2 * 32 + 16 * 2)
    model, _ = lora_model("llama", targets={"q": 1, "v": 3}, layers=[1])
    assert set(lora_layers(model)) == {"model.layers.1.self_attn.q_proj",
                                       "model.layers.1.self_attn.v_proj"}
    assert count_parameters(model).trainable == (32 + 32) + 3 * (32 + 16)


def test_errors_name_what_exists():
    with pytest.raises(ValueError, match="known families are"):
        apply_lora(tiny_model("gpt2"), LoRAConfig(targets={"q": 4}, family="t5"))
    with pytest.raises(ValueError, match=r"matches nothing.*query"):
        apply_lora(tiny_model("roberta"), LoRAConfig(targets={"qq": 4}))
    with pytest.raises(ValueError, match="must be > 0"):
        LoRAConfig(targets={"q": 0})
    with pytest.raises(ValueError, match="one of"):
        LoRAConfig(targets={"q": 1}, bias="some")
    with pytest.raises(ValueError, match="need one rank"):
        apply_lora(tiny_model("gpt2"), LoRAConfig(targets={"q": 4, "v": 2}))
    with pytest.raises(ValueError, match="top-level modules"):
        apply_lora(tiny_model("gpt2"), LoRAConfig(targets={"q": 4}, trainable_modules=["head"]))


@pytest.mark.parametrize("family", ["gpt2", "roberta", "llama"])
def test_save_load_same_outputs(tmp_path, family):
    model, config = lora_model(family, bias="lora_only")
    batch = tiny_batch()
    train_step(model, batch)
    expected = logits(model, batch)
    save_adapter(model, config, tmp_path / "adapter")
    fresh = tiny_model(family)  # same seed: same frozen weights, new random head/LoRA
    load_adapter(fresh, tmp_path / "adapter")
    torch.testing.assert_close(logits(fresh, batch), expected)
    with pytest.raises(FileExistsError, match="overwrite"):
        save_adapter(model, config, tmp_path / "adapter")


def test_load_refuses_wrong_rank(tmp_path):
    model, config = lora_model("roberta")
    save_adapter(model, config, tmp_path / "a")
    other, _ = lora_model("roberta", targets={"q": 2, "v": 2})
    with pytest.raises(ValueError, match="another rank"):
        load_adapter(other, tmp_path / "a")


@pytest.mark.parametrize("family,targets", [("roberta", {"q": 4, "v": 2}),
                                            ("llama", {"q": 2, "v": 2, "mlp": 1}),
                                            ("gpt2", {"o": 2, "mlp": 2})])
def test_peft_round_trip(tmp_path, family, targets):
    peft = pytest.importorskip("peft")
    model, config = lora_model(family, targets=targets, bias="lora_only")
    batch = tiny_batch()
    train_step(model, batch)
    expected = logits(model, batch)
    export_peft(model, config, tmp_path / "peft")
    via_peft = peft.PeftModel.from_pretrained(tiny_model(family), tmp_path / "peft").eval()
    torch.testing.assert_close(logits(via_peft, batch), expected, atol=1e-5, rtol=1e-4)
    back = tiny_model(family)
    import_peft(back, tmp_path / "peft")
    torch.testing.assert_close(logits(back, batch), expected, atol=1e-5, rtol=1e-4)


def test_peft_refuses_masked_c_attn(tmp_path):
    model, config = lora_model("gpt2")
    with pytest.raises(ValueError, match="PEFT cannot represent.*K slice"):
        export_peft(model, config, tmp_path / "peft")


def test_counts_work_on_meta():
    with torch.device("meta"):
        model = tiny_model("gpt2")
    apply_lora(model, LoRAConfig(targets={"q": 4, "v": 4}))
    count = count_parameters(model)
    assert count.trainable == 2 * (8 * 32 + 64 * 4)
    assert model.transformer.h[0].attn.c_attn.lora_A.is_meta


def test_init_from_mnli_adapter_reinitialises_a_head_of_other_size(tmp_path):
    import transformers as T
    from lora_core import init_from_adapter

    def roberta(labels):
        torch.manual_seed(0)
        return T.RobertaForSequenceClassification(T.RobertaConfig(
            num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
            vocab_size=97, max_position_embeddings=70, num_labels=labels)).eval()

    mnli = roberta(3)
    config = LoRAConfig(targets={"q": 4, "v": 4}, alpha=8, trainable_modules=["classifier"])
    apply_lora(mnli, config)
    train_step(mnli, tiny_batch())
    save_adapter(mnli, config, tmp_path / "mnli")
    rte = roberta(2)
    apply_lora(rte, config)
    fresh_head = rte.classifier.dense.weight.clone()
    note = init_from_adapter(rte, tmp_path / "mnli")
    assert sorted(note["skipped_head"]) == ["classifier.dense.bias", "classifier.dense.weight",
                                            "classifier.out_proj.bias", "classifier.out_proj.weight"]
    a = rte.roberta.encoder.layer[1].attention.self.query
    b = mnli.roberta.encoder.layer[1].attention.self.query
    torch.testing.assert_close(a.lora_B, b.lora_B)
    torch.testing.assert_close(rte.classifier.dense.weight, fresh_head)  # the head starts fresh
    same_size = roberta(3)
    apply_lora(same_size, config)
    assert init_from_adapter(same_size, tmp_path / "mnli")["skipped_head"] == []
    other_rank = roberta(2)
    apply_lora(other_rank, LoRAConfig(targets={"q": 2, "v": 2}, trainable_modules=["classifier"]))
    with pytest.raises(ValueError, match="ranks differ"):
        init_from_adapter(other_rank, tmp_path / "mnli")


def test_a_zero_rank_leaves_the_type_out():
    """`targets: {q: 8, v: 0}` adapts Wq alone: the dict form records written before the list
    form hold (`targets: [q], r: 8` now), read the same way."""
    from lora_core import apply_method, lora_layers

    from .conftest import tiny_model

    model = tiny_model("llama")
    apply_method(model, "lora", targets={"q": 8, "k": 0, "v": 0, "o": 0})
    assert lora_layers(model) and all(name.endswith("q_proj") for name in lora_layers(model))
