"""Named adapters on one model: mixed batches row-exact, generation, exact merged switching, refusals."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lora_core import (LoRAConfig, LowRankUpdate, RoutedLinear, adapter_names, adapter_routing,
                       add_adapter, apply_lora, export_peft, load_adapter, lora_layers, merge_lora,
                       save_adapter, set_adapter, switch_merged)

from .conftest import tiny_batch, tiny_model

# Three adapters with different weight types and ranks, so routing also has to cope with
# projections that only some adapters adapt (GPT-2: q,v vs q,k,v slices of one c_attn).
ADAPTERS = {
    "qv": dict(targets={"q": 4, "v": 4}, alpha=8),
    "qkvo": dict(targets={"q": 2, "k": 2, "v": 2, "o": 2}, alpha=4),
    "vmlp": dict(targets={"v": 8, "mlp": 8}, alpha=16),
}
FAMILIES = ["gpt2", "llama", "bert", "roberta"]


def make_adapter(family, name, root, seed, peft=False):
    """Save an adapter with random (non-zero) A and B; the directory it was written to."""
    model = tiny_model(family)
    config = LoRAConfig(**ADAPTERS[name])
    apply_lora(model, config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g) * 0.3)
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.3)
    out = root / f"{family}-{name}{'-peft' if peft else ''}"
    if peft:
        export_peft(model, config, out)
    else:
        save_adapter(model, config, out)
    return out


@pytest.fixture
def dirs(tmp_path):
    def build(family, peft=False):
        return {n: make_adapter(family, n, tmp_path, seed, peft) for seed, n in enumerate(ADAPTERS)}
    return build


def served(family, dirs):
    model = tiny_model(family)
    for name, d in dirs.items():
        add_adapter(model, name, d)
    return model


def alone(family, directory, batch):
    """Logits of `batch` through a fresh model with only this adapter (None: the base)."""
    model = tiny_model(family)
    if directory is not None:
        load_adapter(model, directory)
    with torch.no_grad():
        return model(**batch).logits


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def row(batch, i):
    return {k: v[i:i + 1] for k, v in batch.items()}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("names", [["qv", None, "qkvo", "qv", "vmlp"],  # scattered rows
                                   ["qkvo", "qkvo", "vmlp", None, None]])  # contiguous groups
def test_mixed_batch_gives_each_row_its_own_adapter(family, names, dirs):
    paths = dirs(family)
    model = served(family, paths)
    batch = tiny_batch(batch=len(names))
    with torch.no_grad(), adapter_routing(model, names):
        mixed = model(**batch).logits
    base = alone(family, None, batch)
    for i, name in enumerate(names):
        valid = batch["attention_mask"][i].bool() if mixed.dim() == 3 else slice(None)
        ref = alone(family, paths[name] if name else None, row(batch, i))[0]
        assert rel(mixed[i][valid], ref[valid]) <= 1e-5, (i, name)
        if name is None:
            torch.testing.assert_close(mixed[i], base[i], rtol=0, atol=0)
        else:  # the adapter really changes this row, so the check above has teeth
            assert rel(mixed[i][valid], base[i][valid]) > 1e-2
    # outside the block the model is the base model again
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, base, rtol=0, atol=0)


def test_set_adapter_equals_load_adapter(dirs):
    paths = dirs("gpt2")
    model, batch = served("gpt2", paths), tiny_batch()
    assert adapter_names(model) == list(ADAPTERS)
    set_adapter(model, "qkvo")
    with torch.no_grad():
        got = model(**batch).logits
    assert rel(got, alone("gpt2", paths["qkvo"], batch)) <= 1e-5
    set_adapter(model, None)
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, alone("gpt2", None, batch), rtol=0, atol=0)


def test_gpt2_k_slice_untouched_by_a_qv_adapter(dirs):
    model = served("gpt2", dirs("gpt2"))
    c_attn = model.transformer.h[0].attn.c_attn
    assert isinstance(c_attn, RoutedLinear)
    delta = c_attn._delta("qv")  # Conv1D layout (in, 3d)
    assert torch.count_nonzero(delta[:, 32:64]) == 0 and torch.count_nonzero(delta[:, :32]) > 0
    assert torch.count_nonzero(c_attn._delta("qkvo")[:, 32:64]) > 0


def test_peft_format_adapters_match_peft_mixed_batch(dirs):
    peft = pytest.importorskip("peft")
    paths = dirs("llama", peft=True)
    model = served("llama", paths)
    names = ["vmlp", "qv", None, "qkvo"]
    batch = tiny_batch(batch=len(names))
    with torch.no_grad(), adapter_routing(model, names):
        ours = model(**batch).logits
    reference = peft.PeftModel.from_pretrained(tiny_model("llama"), str(paths["qv"]), adapter_name="qv")
    for name in ("qkvo", "vmlp"):
        reference.load_adapter(str(paths[name]), adapter_name=name)
    reference.eval()
    with torch.no_grad():
        theirs = reference(**batch, adapter_names=[n or "__base__" for n in names]).logits
    assert rel(ours, theirs) <= 1e-5
    assert rel(ours, alone("llama", None, batch)) > 1e-2


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("beams", [1, 2])
def test_generate_under_routing_equals_each_prompt_alone(family, beams, dirs):
    paths = dirs(family)
    model = served(family, paths)
    names = ["qv", "vmlp", None, "qv"]
    ids = tiny_batch(batch=len(names), length=6)["input_ids"]
    kw = dict(max_new_tokens=6, do_sample=False, num_beams=beams, pad_token_id=0,
              attention_mask=torch.ones_like(ids))
    with torch.no_grad(), adapter_routing(model, names):
        mixed = model.generate(ids, **kw)
    for i, name in enumerate(names):
        ref_model = tiny_model(family)
        if name:
            load_adapter(ref_model, paths[name])
        with torch.no_grad():
            ref = ref_model.generate(ids[i:i + 1], **{**kw, "attention_mask": torch.ones_like(ids[i:i + 1])})
        assert mixed[i].tolist() == ref[0].tolist(), (i, name)


def test_cost_grows_with_distinct_adapters_not_rows(dirs, monkeypatch):
    model = served("llama", dirs("llama"))
    calls = []
    original = LowRankUpdate.low_rank
    monkeypatch.setattr(LowRankUpdate, "low_rank", lambda self, x: calls.append(x.shape[0]) or original(self, x))
    for rows in (4, 16):
        calls.clear()
        names = ["qv", "vmlp"] * (rows // 2)
        with torch.no_grad(), adapter_routing(model, names):
            model(**tiny_batch(batch=rows))
        # q,v adapted by qv; v and 3 MLP projections by vmlp: 2 + 4 low-rank pairs per block
        assert len(calls) == 2 * (2 + 4)
        assert sum(calls) == 2 * (2 + 4) * rows // 2


def test_switch_merged_1000_times_without_drift(dirs):
    paths = dirs("gpt2")
    model = served("gpt2", paths)
    routed = {n: m for n, m in model.named_modules() if isinstance(m, RoutedLinear)}
    w0 = {n: m.base_layer.weight.detach().clone() for n, m in routed.items()}
    # the reference: each adapter merged once into a fresh model by lora_core's own merge
    merged_ref = {}
    for name, d in paths.items():
        ref = tiny_model("gpt2")
        load_adapter(ref, d)
        merge_lora(ref)
        merged_ref[name] = {n: l.base_layer.weight.detach().clone() for n, l in lora_layers(ref).items()}
    first = {}
    order = ["qv", "qkvo", "vmlp", None]
    for step in range(1000):
        name = order[step % 4] if step % 7 else order[(step // 7) % 3]
        switch_merged(model, name)
        if name is not None and name not in first:
            first[name] = {n: m.base_layer.weight.detach().clone() for n, m in routed.items()}
    for name in ("qv", "qkvo", "vmlp", None):
        switch_merged(model, name)
        for n, m in routed.items():
            w = m.base_layer.weight
            if name is None:
                assert torch.equal(w, w0[n]), n  # back to W0 bit for bit
                continue
            assert torch.equal(w, first[name][n]), (name, n)  # no drift at all
            want = merged_ref[name].get(n, w0[n])
            # equal to W0 + ΔW up to fp32 rounding of the sum (ΔW's matmul order differs)
            torch.testing.assert_close(w, want, rtol=2.5e-7, atol=1e-7)
    # merged forward == the routed (unmerged) forward of the same adapter
    batch = tiny_batch()
    switch_merged(model, "qkvo")
    with torch.no_grad():
        merged = model(**batch).logits
    switch_merged(model, None)
    with torch.no_grad(), adapter_routing(model, ["qkvo", "qkvo"]):
        assert rel(merged, model(**batch).logits) <= 1e-5


def test_naive_subtract_add_would_drift(dirs):
    """Why switch_merged keeps the weights W - ΔW cannot round back: without them, they walk."""
    model = served("gpt2", dirs("gpt2"))
    layer = model.transformer.h[0].attn.c_attn
    w = layer.base_layer.weight.detach().clone()
    w0 = w.clone()
    da, db = layer._delta("qv"), layer._delta("qkvo")
    for _ in range(500):
        w = w + da - da + db - db
    assert not torch.equal(w, w0)
    layer.merge("qv")
    assert layer._fixups[0].numel() > 0  # the mechanism is exercised, not vacuous
    layer.unmerge()
    assert torch.equal(layer.base_layer.weight, w0)


def test_refusals(dirs, tmp_path):
    paths = dirs("gpt2")
    model = served("gpt2", paths)
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        set_adapter(model, "nope")
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        switch_merged(model, "nope")
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        with adapter_routing(model, ["qv", "nope"]):
            pass
    with pytest.raises(ValueError, match="already loaded"):
        add_adapter(model, "qv", paths["qv"])
    with pytest.raises(ValueError, match="letters, digits"):
        add_adapter(model, "a.b", paths["qv"])
    with pytest.raises(FileNotFoundError, match="neither"):
        add_adapter(model, "empty", tmp_path)
    with adapter_routing(model, ["qv", None]):
        with pytest.raises(RuntimeError, match="inside adapter_routing"):
            switch_merged(model, "qv")
        with pytest.raises(RuntimeError, match="nested"):
            with adapter_routing(model, ["qv", None]):
                pass
        with pytest.raises(ValueError, match="not a multiple of 2 rows"):
            model(**tiny_batch(batch=3))
    switch_merged(model, "qv")
    with pytest.raises(RuntimeError, match="merged into the weights"):
        with adapter_routing(model, ["qv", None]):
            pass
    with pytest.raises(RuntimeError, match="switch_merged\\(model, None\\)"):
        set_adapter(model, "qkvo")
    switch_merged(model, None)
    set_adapter(model, "qv")
    with pytest.raises(RuntimeError, match="set_adapter\\(model, None\\)"):
        switch_merged(model, "qkvo")
    with pytest.raises(ValueError, match="no named adapters"):
        set_adapter(tiny_model("gpt2"), "qv")


def test_refuses_heads_existing_lora_and_deberta_mixing(dirs, tmp_path):
    bert = tiny_model("bert")
    config = LoRAConfig(targets={"q": 2}, trainable_modules=["classifier"])
    apply_lora(bert, config)
    save_adapter(bert, config, tmp_path / "head")
    with pytest.raises(ValueError, match="trainable_modules=\\['classifier'\\]"):
        add_adapter(tiny_model("bert"), "head", tmp_path / "head")
    with pytest.raises(ValueError, match="already carries a LoRA"):
        add_adapter(bert, "x", dirs("bert")["qv"])


def deberta_shared_keys():
    """DeBERTa-v2 as the paper's XXL is configured: Wq/Wk also project relative positions."""
    import transformers as T

    torch.manual_seed(0)
    return T.DebertaV2ForSequenceClassification(T.DebertaV2Config(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=97, max_position_embeddings=64, num_labels=2, relative_attention=True,
        pos_att_type=["p2c", "c2p"], position_buckets=16, max_relative_positions=-1,
        position_biased_input=False, pooler_hidden_size=32, share_att_key=True)).eval()


def test_deberta_mixed_batch_exact_or_refused(dirs):
    paths = dirs("deberta-v2")
    batch, names = tiny_batch(batch=3), ["qv", None, "qkvo"]
    # separate position projections (the tiny default): routing is row-exact
    model = served("deberta-v2", paths)
    with torch.no_grad(), adapter_routing(model, names):
        mixed = model(**batch).logits
    for i, name in enumerate(names):
        assert rel(mixed[i], alone("deberta-v2", paths[name] if name else None, row(batch, i))[0]) <= 1e-5
    # shared (XXL): the positions go through Wq/Wk once for the whole batch
    model = deberta_shared_keys()
    for name, d in paths.items():
        add_adapter(model, name, d)
    ref = deberta_shared_keys()
    load_adapter(ref, paths["qv"])
    with torch.no_grad(), adapter_routing(model, ["qv"] * 3):  # one adapter: fine
        assert rel(model(**batch).logits, ref(**batch).logits) <= 1e-5
    with pytest.raises(ValueError, match="relative-position"):
        with torch.no_grad(), adapter_routing(model, names):
            model(**batch)


def test_model_moves_with_its_adapters(dirs):
    model = served("llama", dirs("llama")).to(torch.float64)
    layer = next(m for m in model.modules() if isinstance(m, RoutedLinear))
    assert all(u.A.dtype == torch.float64 for u in layer.updates.values())
    assert not any("updates" in k for k in model.state_dict())
    assert isinstance(layer.base_layer, nn.Linear)


def test_failed_add_changes_nothing_and_layer_subsets_route(tmp_path):
    import transformers as T

    wide = T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=97,
                                          n_positions=64)).eval()
    config = LoRAConfig(targets={"q": 2, "v": 2}, alpha=4, layers=[1])
    donor = tiny_model("gpt2")
    apply_lora(donor, config)
    with torch.no_grad():
        for layer in lora_layers(donor).values():
            layer.lora_B.normal_()
    save_adapter(donor, config, tmp_path / "one_layer")
    with pytest.raises(ValueError, match="another model size"):
        add_adapter(wide, "x", tmp_path / "one_layer")
    assert not any(isinstance(m, RoutedLinear) for m in wide.modules())
    assert adapter_names(wide) == []
    # an adapter on block 1 only: block 0 stays a plain Conv1D, rows still get their update
    model = tiny_model("gpt2")
    add_adapter(model, "one", tmp_path / "one_layer")
    assert not isinstance(model.transformer.h[0].attn.c_attn, RoutedLinear)
    batch = tiny_batch(batch=2)
    with torch.no_grad(), adapter_routing(model, [None, "one"]):
        mixed = model(**batch).logits
    with torch.no_grad():
        ref = donor(**row(batch, 1)).logits[0]
    assert rel(mixed[1], ref) <= 1e-5 and rel(mixed[1], alone("gpt2", None, batch)[1]) > 1e-2
