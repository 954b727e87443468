"""`prompt.separator`: the official eos layout by default, a text separator for instruct
stand-ins, the same prompt in training lines, few-shot demonstrations and decoding."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from experiments.batching import IGNORE, context_ids, encode_example, prompt_separator
from experiments.decode import DecodeConfig, generate_completions
from experiments.tasks.base import Example


def test_default_is_the_official_eos_separator(smollm2_tokenizer):
    tok = smollm2_tokenizer
    ids = context_ids(tok, "name : Alimentum")
    assert ids == tok.encode("name : Alimentum", add_special_tokens=False) + [tok.eos_token_id]


def test_a_text_separator_joins_the_context_and_no_eos_comes_before_the_answer(smollm2_tokenizer):
    tok = smollm2_tokenizer
    enc = encode_example(tok, Example("great film", "positive"), seq_len=64,
                         separator="\nSentiment:")
    context = tok.encode("great film\nSentiment:", add_special_tokens=False)
    answer = tok.encode(" positive", add_special_tokens=False) + [tok.eos_token_id]
    assert enc.input_ids == context + answer
    assert enc.labels == [IGNORE] * len(context) + answer
    assert tok.eos_token_id not in enc.input_ids[:len(context)]
    with pytest.raises(ValueError, match="prompt.separator is empty"):
        context_ids(tok, "x", "")


def test_the_run_config_names_the_separator():
    assert prompt_separator(OmegaConf.create({"prompt": {"separator": None}})) is None
    assert prompt_separator(OmegaConf.create({})) is None  # configs from before the key
    assert prompt_separator(OmegaConf.create({"prompt": {"separator": "\nA:"}})) == "\nA:"


def test_decoding_prompts_end_with_the_same_separator_as_training(smollm2_tokenizer, monkeypatch):
    """The decoder sees exactly the training line's context tokens, whichever separator."""
    import experiments.decode as decode

    seen = []

    def record(model, ids, mask, max_new, stops):
        seen.extend(row[m.bool()].tolist() for row, m in zip(ids, mask))
        return [[smollm2_tokenizer.eos_token_id] for _ in range(len(ids))]

    monkeypatch.setattr(decode, "greedy_decode", record)
    monkeypatch.setattr(decode, "_runs_own_loop", lambda model, cfg: True)
    cfg = DecodeConfig(num_beams=1, no_repeat_ngram_size=0, batch_size=2)
    contexts = ["a short one", "a somewhat longer context here"]
    for separator in (None, "\nAnswer:"):
        seen.clear()
        out = generate_completions(torch.nn.Identity(), smollm2_tokenizer, contexts, cfg,
                                   progress=False, separator=separator)
        assert out == ["", ""]
        want = [encode_example(smollm2_tokenizer, Example(c, "x"), 512,
                               separator=separator).labels.count(IGNORE) for c in contexts]
        assert sorted(map(len, seen)) == sorted(want)
        for c in contexts:
            assert context_ids(smollm2_tokenizer, c, separator) in seen
