"""Beam-search (or greedy, num_beams=1) decoding for the generation tasks, through transformers'
`generate`.

Settings follow the official gpt2_beam.py (paper_spec §2.8): beam 10, length penalty, no-repeat
4-grams, 64 new tokens, stop at eos or "\\n\\n"; outputs are cut at the first stop and stripped
(gpt2_decode.py). Each distinct source is decoded once: decoding is deterministic, so this
equals the official per-line decoding that keeps the last line's output, at 1/7 of the cost
on E2E.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


@dataclass
class DecodeConfig:
    num_beams: int = 10
    length_penalty: float = 0.9
    no_repeat_ngram_size: int = 4
    max_new_tokens: int = 64
    batch_size: int = 16
    max_context_tokens: int = 448  # seq_len 512 - eval_len 64, left-truncated as the official code
    # The official decoder never stops early: it always runs max_new_tokens steps.
    early_stopping: bool | str = "never"


def stop_token_ids(tokenizer) -> list[int]:
    """eos plus the token for a blank line ("\\n\\n" = 628 in GPT-2), when it is one token."""
    ids = [tokenizer.eos_token_id]
    blank = tokenizer.encode("\n\n", add_special_tokens=False)
    if len(blank) == 1 and blank[0] not in ids:
        ids.append(blank[0])
    return ids


def cut_output(text: str, eos_text: str | None) -> str:
    """Cut at the first eos, then at the first blank line, then strip (gpt2_decode.py)."""
    if eos_text:
        text = text.split(eos_text)[0]
    return text.split("\n\n")[0].strip()


@torch.no_grad()
def generate_completions(model: nn.Module, tokenizer, contexts: Sequence[str], cfg: DecodeConfig,
                         device: torch.device | str = "cpu", progress: bool = True) -> list[str]:
    """Decode one completion per context (context + separator as the prompt)."""
    model.eval()
    sep = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep
    stops = stop_token_ids(tokenizer)
    outputs: list[str] = []
    for start in range(0, len(contexts), cfg.batch_size):
        chunk = contexts[start:start + cfg.batch_size]
        prompts = [(tokenizer.encode(c, add_special_tokens=False) + [sep])[-cfg.max_context_tokens:]
                   for c in chunk]
        width = max(map(len, prompts))
        # left padding, so every prompt ends where generation starts
        ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, p in enumerate(prompts):
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        # beam-only options are left out of greedy decoding (transformers warns about them)
        beam = ({"length_penalty": cfg.length_penalty, "early_stopping": cfg.early_stopping}
                if cfg.num_beams > 1 else {})
        out = model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device),
            num_beams=cfg.num_beams, no_repeat_ngram_size=cfg.no_repeat_ngram_size,
            max_new_tokens=cfg.max_new_tokens, eos_token_id=stops, pad_token_id=pad,
            do_sample=False, **beam)
        for row in out[:, width:].tolist():
            outputs.append(cut_output(tokenizer.decode(row, skip_special_tokens=False),
                                      tokenizer.eos_token))
        if progress:
            print(f"[decode] {len(outputs)}/{len(contexts)} sources", flush=True)
    return outputs
