"""Fast paths against their straightforward versions: GPT-2's fused c_attn update (one matmul
with a zero-padded B) against per-slice updates scattered into place, and the greedy KV-cache
loop (rows leave the batch at their own end) against transformers' `generate`."""
from __future__ import annotations

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from experiments.decode import _left_padded, greedy_decode
from lora_core.layers import LoRALinear

from .conftest import tiny_model


@pytest.mark.parametrize("enable", [[True, False, True], [True, False, False], [False, True, True]])
def test_fused_slices_equal_per_slice_updates(enable):
    torch.manual_seed(0)
    layer = LoRALinear(Conv1D(3 * 16, 8), r=2, alpha=4, enable=enable)
    torch.nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 5, 8)
    out = layer(x)
    out.square().sum().backward()
    fast_grads = (layer.lora_A.grad.clone(), layer.lora_B.grad.clone())
    layer.zero_grad()
    # the straightforward version: each enabled slice's own B_k·A_k·x, placed in its rows
    base = layer.base_layer(x)
    A, B = layer._blocks()
    parts, k = [], 0
    for on in enable:
        if on:
            parts.append(x @ A[k].T @ B[k].T * layer.scaling)
            k += 1
        else:
            parts.append(torch.zeros(3, 5, 16))
    reference = base + torch.cat(parts, dim=-1)
    reference.square().sum().backward()
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast_grads[0], layer.lora_A.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fast_grads[1], layer.lora_B.grad, rtol=1e-4, atol=1e-6)
    for s, on in enumerate(enable):  # a disabled slice: output exactly the base's, ΔW exactly 0
        if not on:
            rows = slice(16 * s, 16 * (s + 1))
            assert torch.equal(out[..., rows], base[..., rows])
            assert torch.equal(layer.delta_weight()[:, rows], torch.zeros(8, 16))


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_greedy_loop_equals_generate(family):
    model = tiny_model(family)
    g = torch.Generator().manual_seed(3)
    prompts = [torch.randint(3, 97, (n,), generator=g).tolist() for n in (7, 3, 5, 9, 4)]
    ids, mask = _left_padded(prompts, pad=0)
    free = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12, do_sample=False,
                          eos_token_id=[1], pad_token_id=0)[:, ids.shape[1]:]
    # stop tokens that end some rows early and leave others running to the limit
    stops = sorted({free[0, 2].item(), free[3, 5].item()})
    expected = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=12,
                              do_sample=False, eos_token_id=stops, pad_token_id=0)[:, ids.shape[1]:]
    ours = greedy_decode(model, ids, mask, 12, stops)
    lengths = {len(row) for row in ours}
    assert len(lengths) > 1 and max(lengths) == 12  # rows did stop at different steps
    for row, want in zip(ours, expected.tolist()):
        assert row == want[:len(row)]
        assert row[-1] in stops or len(row) == 12
        assert all(t == 0 for t in want[len(row):])  # generate only pads after the stop


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_beam_search_with_the_prompt_cache_equals_generate(family):
    """generate_completions hands `generate` the prompts' cache computed once per source: the
    beams' outputs are those of `generate` run plainly."""
    from experiments.decode import prompt_cache

    model = tiny_model(family)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(3, 97, (n,), generator=g).tolist() for n in (6, 3, 8)]
    ids, mask = _left_padded(prompts, pad=0)
    common = dict(input_ids=ids, attention_mask=mask, num_beams=4, max_new_tokens=10,
                  do_sample=False, pad_token_id=0, eos_token_id=[1], no_repeat_ngram_size=3,
                  length_penalty=0.9, early_stopping="never")
    plain = model.generate(**common)
    keyword = "cache" if "cache" in __import__("inspect").signature(type(model).forward).parameters \
        else "past_key_values"
    cached = model.generate(**common, **{keyword: prompt_cache(model, ids, mask, 4)})
    assert torch.equal(plain, cached)
