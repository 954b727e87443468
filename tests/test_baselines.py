"""The baselines on every family: exact trainable counts by hand, what receives gradients,
adapters as the identity at init, PreLayer folding, prefixes with padding and decoding."""
from __future__ import annotations

import os

import pytest
import torch
import transformers as T
from omegaconf import OmegaConf

from lora_core import apply_method, count_parameters
from lora_core.adapters import Adapter, bottleneck_for_budget, adapter_parameter_count
from lora_core.families import FAMILIES
from lora_core.methods import SUPPORTED

os.environ.setdefault("HF_HUB_OFFLINE", "1")

D, L, V = 32, 2, 97  # width, blocks, vocabulary of every tiny model


def _build(family: str, layers: int = L):
    common = dict(num_hidden_layers=layers, hidden_size=D, vocab_size=V)
    if family == "gpt2":
        return T.GPT2LMHeadModel(T.GPT2Config(n_layer=layers, n_embd=D, n_head=2, vocab_size=V,
                                              n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                                              attn_pdrop=0.0))
    if family == "roberta":
        return T.RobertaForSequenceClassification(T.RobertaConfig(
            **common, num_attention_heads=2, intermediate_size=64, max_position_embeddings=70,
            num_labels=3))
    if family == "deberta-v2":
        return T.DebertaV2ForSequenceClassification(T.DebertaV2Config(
            **common, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
            num_labels=2, relative_attention=True, pos_att_type=["p2c", "c2p"],
            position_buckets=16, max_relative_positions=-1, position_biased_input=False,
            pooler_hidden_size=D))
    if family == "bert":
        return T.BertForSequenceClassification(T.BertConfig(
            **common, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
            num_labels=2))
    return T.LlamaForCausalLM(T.LlamaConfig(
        **common, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        max_position_embeddings=64))


def tiny(family: str, seed: int = 0, layers: int = L) -> torch.nn.Module:
    torch.manual_seed(seed)
    return _build(family, layers).eval()


def heads(model) -> list[str]:
    fam = FAMILIES[model.config.model_type]
    if not type(model).__name__.endswith("ForSequenceClassification"):
        return []
    return [h for h in fam.heads if any(n == h or n.endswith("." + h)
                                        for n, _ in model.named_modules())]


def head_count(model) -> int:
    return sum(p.numel() for n, m in model.named_modules() for h in heads(model)
               if n == h or n.endswith("." + h) for p in m.parameters())


def is_head(name: str, model) -> bool:
    return any(f".{h}." in f".{name}" for h in heads(model))


def batch(pad_row: bool = True, length: int = 10, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, V, (2, length), generator=g)
    mask = torch.ones_like(ids)
    if pad_row:
        ids[0, -3:] = 1
        mask[0, -3:] = 0  # row 0 is right-padded
    return {"input_ids": ids, "attention_mask": mask}


FAMILY_NAMES = ["gpt2", "roberta", "deberta-v2", "bert", "llama"]
L_P, L_I, R = 3, 2, 4

# method -> (params, trainable count without heads on a 2-block, d=32 model, by the formulas)
ADAPTER = 2 * D * R + R + D  # one adapter: 2·d·r + r + d
EXPECTED = {
    "adapter_h": ({"r": R}, 2 * L * ADAPTER),
    "adapter_l": ({"r": R}, L * ADAPTER + 2 * L * D),  # + one LayerNorm (2·d) per adapter
    "adapter_p": ({"r": R}, L * ADAPTER),
    "adapter_d": ({"r": R, "drop": 1}, (L - 1) * ADAPTER),
    "pre_embed": ({"prefix_length": L_P, "infix_length": L_I}, D * (L_P + L_I)),
    "pre_layer": ({"prefix_length": L_P, "infix_length": L_I, "reparam": False},
                  L * D * (L_P + L_I)),
}
METHODS = list(EXPECTED) + ["bitfit", "ft_top2"]


def _block_params(model) -> int:
    from lora_core.families import find_blocks
    _, blocks = find_blocks(model, FAMILIES[model.config.model_type])
    return sum(p.numel() for p in blocks.parameters())


def test_adapter_formula_by_hand():
    # Adapter^H on 2 layers, d=32, r=4: 2 x 2 x (2·32·4 + 4 + 32)
    assert adapter_parameter_count(4, 32, 4) == 2 * 2 * (2 * 32 * 4 + 4 + 32) == 1168
    # Table 1's budgets on GPT-2 M (derived bottlenecks, written in the latency table)
    assert bottleneck_for_budget(0.5e6, 24, 1024, 24) == 9
    assert bottleneck_for_budget(0.5e6, 48, 1024) == 5
    assert bottleneck_for_budget(11e6, 24, 1024, 24) == 222
    assert bottleneck_for_budget(11e6, 48, 1024) == 111


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("method", list(EXPECTED))
def test_exact_trainable_count(family, method):
    model = tiny(family)
    params, expected = EXPECTED[method]
    apply_method(model, method, head_modules=heads(model), **params)
    count = count_parameters(model, heads(model))
    assert count.trainable_without_head == expected
    assert count.head == head_count(model)


def test_ft_top2_counts():
    # GPT-2 block: 12·d² + 13·d; FT^Top2 = last 2 blocks + ln_f (2·d), no embeddings
    model = tiny("gpt2", layers=3)
    apply_method(model, "ft_top2")
    assert count_parameters(model).trainable == 2 * (12 * D * D + 13 * D) + 2 * D
    assert not model.transformer.h[0].ln_1.weight.requires_grad
    assert not model.transformer.wte.weight.requires_grad
    # encoders have no final norm: exactly the last two blocks plus the head
    model = tiny("bert", layers=3)
    apply_method(model, "ft_top2", head_modules=heads(model))
    per_block = _block_params(model) // 3
    assert count_parameters(model, heads(model)).trainable_without_head == 2 * per_block


def test_bitfit_counts_by_hand():
    # GPT-2: per block c_attn 3d + c_proj d + c_fc 4d + mlp c_proj d + ln_1 β d + ln_2 β d,
    # plus ln_f β
    model = tiny("gpt2")
    apply_method(model, "bitfit")
    assert count_parameters(model).trainable == L * 11 * D + D
    # BERT (MLP width 64): q,k,v,o 4d + intermediate 64 + output d + 2 LayerNorm β, + embedding LN β
    model = tiny("bert")
    apply_method(model, "bitfit", head_modules=heads(model))
    assert count_parameters(model, heads(model)).trainable_without_head == L * (7 * D + 64) + D


def test_bitfit_refuses_llama_and_lists_combinations():
    with pytest.raises(ValueError, match="no bias terms.*bitfit: gpt2, roberta, bert, deberta-v2"):
        apply_method(tiny("llama"), "bitfit")
    assert "llama" not in SUPPORTED["bitfit"]


def test_bitfit_on_qwen2_trains_the_attention_biases():
    """Table 4's BitFit recipe for GPU users runs on Qwen2.5: its Wq/Wk/Wv biases, nothing else."""
    from experiments.models import load_model
    model = load_model("qwen2_5_0_5b", init="meta", with_tokenizer=False).model
    apply_method(model, "bitfit")
    trained = {n.split(".", 3)[3] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {"self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"}
    # 24 blocks; Wq out 896, Wk / Wv out 128 (2 key-value heads of 64)
    assert count_parameters(model).trainable == 24 * (896 + 128 + 128)


def test_prelayer_reparam_count_by_hand():
    h = 16
    model = tiny("gpt2")
    apply_method(model, "pre_layer", prefix_length=L_P, infix_length=L_I, reparam_hidden=h)
    l = L_P + L_I
    count = count_parameters(model)
    assert count.trainable == l * D + (D * h + h) + (h * L * D + L * D)
    assert count.deployed == L * D * l  # what a run records for the tables, before folding
    model.prefix_tuning.fold()
    folded = count_parameters(model)
    assert folded.trainable == folded.deployed == L * D * l


def _loss(out) -> torch.Tensor:
    return out.logits.float().pow(2).mean()


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("method", METHODS)
def test_only_intended_parameters_get_gradients(family, method):
    if method not in EXPECTED and family not in SUPPORTED[method]:
        pytest.skip(f"{method} does not support {family}")
    model = tiny(family)
    params = EXPECTED.get(method, ({},))[0]
    apply_method(model, method, head_modules=heads(model), **params)
    model.train()
    _loss(model(**batch())).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    for name, p in model.named_parameters():
        if name in trainable:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name
    if method.startswith("adapter"):  # the zero-initialised up-projections get a signal
        # (the bias: with r=4 a ReLU bottleneck can be all-zero at the one position a
        # classifier reads, leaving that adapter's up.weight gradient exactly zero)
        assert all(m.up.bias.grad.abs().sum() > 0 for m in model.modules()
                   if isinstance(m, Adapter))
        assert all("adapter" in n or is_head(n, model) for n in trainable)
    if method.startswith("pre_"):
        assert model.prefix_tuning.parameters().__next__().grad.abs().sum() > 0
    if method == "bitfit":
        assert all(n.endswith("bias") or is_head(n, model) for n in trainable)


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("method", ["adapter_h", "adapter_l", "adapter_p", "adapter_d"])
def test_adapters_are_the_identity_at_init(family, method):
    model, inputs = tiny(family), batch()
    with torch.no_grad():
        before = model(**inputs).logits
        apply_method(model, method, head_modules=heads(model), **EXPECTED[method][0])
        after = model(**inputs).logits
    assert torch.equal(before, after)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_prelayer_same_outputs_before_and_after_fold(family):
    model, inputs = tiny(family), batch()
    apply_method(model, "pre_layer", prefix_length=L_P, infix_length=L_I, reparam_hidden=16,
                 head_modules=heads(model))
    with torch.no_grad():
        before = model(**inputs).logits
        model.prefix_tuning.fold()
        after = model(**inputs).logits
    assert model.prefix_tuning.reparam is None
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("reparam", [False, True])
def test_prelayer_starts_as_a_prefix_of_real_tokens(family, reparam):
    """init=real_tokens: at step 0 the decoder reads its input exactly as after the l_p real
    tokens the activations came from (through the MLP too: its output layer is solved for them),
    where init=random reads something else."""
    base, x = tiny(family), batch(pad_row=False)["input_ids"][:1]
    model = apply_method(tiny(family), "pre_layer", prefix_length=L_P, reparam=reparam,
                         reparam_hidden=16)
    tokens = torch.tensor([model.prefix_tuning.init_tokens])
    with torch.no_grad():
        ref = base(input_ids=torch.cat([tokens, x], dim=1)).logits[:, L_P:]
        out = model(input_ids=x).logits
        random = apply_method(tiny(family), "pre_layer", prefix_length=L_P, reparam=reparam,
                              reparam_hidden=16, init="random")(input_ids=x).logits
    assert tokens.shape == (1, L_P)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert (random - ref).abs().max() > 100 * (out - ref).abs().max()


def test_prelayer_init_beyond_the_mlp_width_is_a_least_squares_fit():
    """More slots than MLP features: no exact solution, the closest one (its residual is
    orthogonal to every feature the output layer reads: the normal equations hold)."""
    from lora_core.families import find_blocks
    from lora_core.prefix_methods import block_inputs

    model = apply_method(tiny("llama"), "pre_layer", prefix_length=12, reparam_hidden=4)
    prefix = model.prefix_tuning
    with torch.no_grad():
        start = prefix.layer_activations()
        base = tiny("llama")
        target = block_inputs(base, find_blocks(base, FAMILIES["llama"])[1],
                              torch.tensor(prefix.init_tokens))
        hidden = torch.tanh(prefix.reparam[0](prefix.reparam_input))
    features = torch.cat([hidden, torch.ones(12, 1)], dim=1).double()  # (l, h + 1)
    residual = (start - target).transpose(0, 1).reshape(12, -1).double()  # (l, L·d)
    assert start.shape == (L, 12, D) and residual.abs().max() > 1e-3  # not exact: 12 > 4 + 1
    torch.testing.assert_close(features.T @ residual, torch.zeros(5, L * D, dtype=torch.float64),
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="choose one of"):
        apply_method(tiny("llama"), "pre_layer", prefix_length=2, init="zeros")


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("method", ["pre_embed", "pre_layer"])
def test_prefix_changes_output_and_respects_padding(family, method):
    model, inputs = tiny(family), batch()
    with torch.no_grad():
        base = model(**inputs).logits
        apply_method(model, method, head_modules=heads(model), **EXPECTED[method][0])
        padded = model(**inputs).logits
        # row 0 without its padding: its real tokens must see exactly the same thing
        alone = model(input_ids=inputs["input_ids"][:1, :-3],
                      attention_mask=inputs["attention_mask"][:1, :-3]).logits
    assert padded.shape == base.shape
    # (a random-init classifier's logits are ~1e-2, so the change is small but real)
    assert (padded - base).abs().max() > 1e-3 * base.abs().max()
    if padded.dim() == 3:  # per-token outputs (causal LM)
        torch.testing.assert_close(padded[:1, :-3], alone, rtol=1e-4, atol=1e-5)
    else:  # sequence classification
        torch.testing.assert_close(padded[:1], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoder_prefix_and_infix_line_up_with_the_tokens(family):
    """The wrapped forward equals the plain model run on the extended sequence by hand: the
    prefix first, the infix after the separator, each token's logits from the last position
    before the next real token."""
    model, sep = tiny(family), 5
    ids = torch.tensor([[11, 12, sep, 13, 14, 15]])
    apply_method(model, "pre_embed", prefix_length=L_P, infix_length=L_I, infix_after_token=sep)
    slots = model.prefix_tuning.embeddings
    with torch.no_grad():
        out = model(input_ids=ids).logits
        emb = model.get_input_embeddings()(ids)[0]
        ext = torch.cat([slots[:L_P], emb[:3], slots[L_P:], emb[3:]])[None]
        ref = type(model).forward(model, inputs_embeds=ext).logits[0]
    # extended positions: prefix 0..2, tokens 3..5, infix 6..7, tokens 8..10
    keep = [3, 4, 7, 8, 9, 10]
    torch.testing.assert_close(out[0], ref[keep])


@pytest.mark.parametrize("method", ["pre_embed", "pre_layer"])
def test_decoding_with_a_prefix_uses_the_cache_correctly(method):
    model = tiny("gpt2")
    apply_method(model, method, prefix_length=L_P, infix_length=L_I, infix_after_token=5)
    ids = torch.tensor([[1, 1, 7, 8, 9, 5], [1, 10, 11, 12, 13, 5]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1]])  # left-padded prompts
    kw = dict(max_new_tokens=5, do_sample=False, pad_token_id=1)
    cached = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, **kw)
    uncached = model.generate(input_ids=ids, attention_mask=mask, use_cache=False, **kw)
    alone = model.generate(input_ids=ids[1:, 1:], attention_mask=mask[1:, 1:], **kw)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[1, 6:], alone[0, 5:])


def test_prelayer_refuses_gradient_checkpointing():
    model = tiny("gpt2")
    apply_method(model, "pre_layer", prefix_length=L_P, reparam=False)
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()
    model.train()
    with pytest.raises(ValueError, match="checkpointing_disable"):
        model(**batch())


def test_prefix_loss_with_token_labels():
    model = tiny("gpt2")
    apply_method(model, "pre_layer", prefix_length=L_P, reparam=False)
    inputs = batch(pad_row=False)
    out = model(**inputs, labels=inputs["input_ids"])
    ref = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V),
                                            inputs["input_ids"][:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, ref)


def test_unknown_combinations_and_bad_settings_raise():
    with pytest.raises(ValueError, match="known methods are"):
        apply_method(tiny("gpt2"), "adapter_x", r=4)
    with pytest.raises(ValueError, match="cannot drop|number of layers"):
        apply_method(tiny("gpt2"), "adapter_d", r=4, drop=2)
    with pytest.raises(ValueError, match="sequence-classification head"):
        apply_method(T.GPT2ForSequenceClassification(T.GPT2Config(n_layer=1, n_embd=D, n_head=2,
                                                                   vocab_size=V)),
                     "pre_embed", prefix_length=2)
    model = tiny("roberta")
    apply_method(model, "pre_embed", prefix_length=60, head_modules=heads(model))
    with pytest.raises(ValueError, match="truncate inputs"):
        model(**batch(length=10))


CONF = os.path.join(os.path.dirname(__file__), os.pardir, "conf", "method")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_method_config_applies(family):
    """Each conf/method/*.yaml, as Hydra would pass it, works on each family it supports."""
    for path in sorted(os.listdir(CONF)):
        params = OmegaConf.to_container(OmegaConf.load(os.path.join(CONF, path)))
        name = params.pop("name")
        if family not in SUPPORTED[name]:
            continue
        if name.startswith("pre_"):  # the paper's 256-token prefix would not fit a 64-position toy
            params.update(prefix_length=2, infix_length=1)
        model = tiny(family, layers=6)
        apply_method(model, name, head_modules=heads(model), **params)
        with torch.no_grad():
            model(**batch())


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("combo,prefix", [("lora_pre_embed", "pre_embed"),
                                          ("lora_pre_layer", "pre_layer")])
def test_lora_with_a_prefix_trains_both_and_starts_as_the_prefix_alone(family, combo, prefix):
    """LoRA+PE / LoRA+PL (Table 15): the count is LoRA's plus the prefix's; LoRA (B = 0) leaves
    the prefix model's outputs unchanged at init; both parts get gradients, nothing else."""
    prefix_params = {"prefix_length": L_P, "infix_length": L_I}
    if prefix == "pre_layer":
        prefix_params["reparam_hidden"] = 16
    lora_params = {"targets": {"q": R, "v": R}, "alpha": 8}
    counts = {}
    for name, params in ((prefix, prefix_params), ("lora", lora_params),
                         (combo, {**prefix_params, **lora_params})):
        model = tiny(family)
        apply_method(model, name, head_modules=heads(model), **params)
        counts[name] = count_parameters(model, heads(model)).trainable_without_head
        if name == prefix:
            with torch.no_grad():
                alone = model(**batch()).logits
    assert counts[combo] == counts[prefix] + counts["lora"]
    assert not hasattr(model, "lora_config")  # saved as trainable tensors, prefix included
    with torch.no_grad():
        assert torch.allclose(model(**batch()).logits, alone, atol=1e-6)
    model.train()
    _loss(model(**batch())).backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("prefix_tuning" in n for n in trainable)
    assert all("lora_" in n or "prefix_tuning" in n or is_head(n, model) for n in trainable)
    assert all(p.grad is not None for n, p in model.named_parameters() if n in trainable)
    assert all(p.grad is None for n, p in model.named_parameters() if n not in trainable)
