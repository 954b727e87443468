"""Beam-search (or greedy, num_beams=1) decoding for the generation tasks: beams through
transformers' `generate`, greedy through a batched KV-cache loop that drops each row from the
batch at its own end.

Settings follow the official gpt2_beam.py (paper_spec §2.8): beam 10, length penalty, no-repeat
4-grams, 64 new tokens, stop at eos or "\\n\\n"; outputs are cut at the first stop and stripped
(gpt2_decode.py). Each distinct source is decoded once: decoding is deterministic, so this
equals the official per-line decoding that keeps the last line's output, at 1/7 of the cost
on E2E. Prompts are decoded longest first (batches of similar length pad less) and the
outputs put back in the caller's order.
"""
from __future__ import annotations

from dataclasses import dataclass
import sys
from typing import Sequence

import torch
from torch import nn

from .batching import context_ids


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


def _left_padded(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left padding, so every prompt ends where generation starts."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(p)
        mask[row, width - len(p):] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids under left padding, as `generate` makes them (pads get 1; they are masked)."""
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)


@torch.no_grad()
def greedy_decode(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, max_new_tokens: int,
                  stops: Sequence[int]) -> list[list[int]]:
    """Greedy decoding with a KV cache; a row leaves the batch (and the cache) as soon as it
    emits a stop token, so the rows still running cost what they alone cost. Returns each row's
    new tokens, its stop token included: what `generate(do_sample=False, num_beams=1)` returns
    before its padding."""
    from transformers import DynamicCache

    cache = DynamicCache(config=getattr(model, "config", None))
    rows = torch.arange(len(ids), device=ids.device)
    stop = torch.tensor(list(stops), device=ids.device)
    outputs: list[list[int]] = [[] for _ in range(len(ids))]
    kv = {_cache_keyword(model): cache}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask),
                   use_cache=True, logits_to_keep=1, **kv).logits[:, -1]
    for step in range(max_new_tokens):
        token = logits.float().argmax(-1)
        for row, t in zip(rows.tolist(), token.tolist()):
            outputs[row].append(t)
        running = ~torch.isin(token, stop)
        if step == max_new_tokens - 1 or not running.any():
            break
        if not running.all():
            keep = running.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, token, mask = rows[keep], token[keep], mask[keep]
        mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
        logits = model(input_ids=token[:, None], attention_mask=mask,
                       position_ids=_positions(mask)[:, -1:], use_cache=True, **kv).logits[:, -1]
    return outputs


def _cache_keyword(model: nn.Module) -> str:
    """transformers >= 5.24 takes the KV cache as `cache`, earlier versions as `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(type(model).forward).parameters \
        else "past_key_values"


def _plain_causal_lm(model: nn.Module) -> bool:
    """A transformers causal LM as built: prefix-wrapped models (their forward replaced on the
    instance) place their own positions and slots, so they get no hand-made cache."""
    import inspect

    return ("forward" not in vars(model)
            and "logits_to_keep" in inspect.signature(type(model).forward).parameters)


def _runs_own_loop(model: nn.Module, cfg: DecodeConfig) -> bool:
    """Greedy without n-gram blocking on a plain causal LM; everything else runs `generate`."""
    return cfg.num_beams == 1 and not cfg.no_repeat_ngram_size and _plain_causal_lm(model)


@torch.no_grad()
def prompt_cache(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, beams: int):
    """The KV cache of every prompt but its last token, computed once per source and repeated
    for its beams: `generate` would expand the prompts to batch x beams first and run each one
    `beams` times; handed this cache it runs only the last prompt token."""
    from transformers import DynamicCache

    cache = DynamicCache(config=getattr(model, "config", None))
    model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
          position_ids=_positions(mask[:, :-1]), use_cache=True, logits_to_keep=1,
          **{_cache_keyword(model): cache})
    cache.batch_repeat_interleave(beams)
    return cache


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="src", desc="decode", dynamic_ncols=True, leave=False,
                disable=not (enabled and sys.stdout.isatty()))


@torch.no_grad()
def generate_completions(model: nn.Module, tokenizer, contexts: Sequence[str], cfg: DecodeConfig,
                         device: torch.device | str = "cpu", progress: bool = True,
                         sort_by_length: bool = True, separator: str | None = None) -> list[str]:
    """Decode one completion per context (context + separator as the prompt, as in training:
    `batching.context_ids`), in the order of `contexts`. Greedy without n-gram blocking runs
    `greedy_decode`; beams run `generate`."""
    model.eval()
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    stops = stop_token_ids(tokenizer)
    prompts = [context_ids(tokenizer, c, separator)[-cfg.max_context_tokens:] for c in contexts]
    order = list(range(len(prompts)))
    if sort_by_length:  # longest first: the first batch shows the peak memory at once
        order.sort(key=lambda i: -len(prompts[i]))
    own_loop = _runs_own_loop(model, cfg)
    outputs: list[str | None] = [None] * len(prompts)
    bar = _progress(len(prompts), progress)
    for start in range(0, len(order), cfg.batch_size):
        chunk = order[start:start + cfg.batch_size]
        ids, mask = _left_padded([prompts[i] for i in chunk], pad)
        ids, mask = ids.to(device), mask.to(device)
        if own_loop:
            rows = greedy_decode(model, ids, mask, cfg.max_new_tokens, stops)
        else:
            # beam-only options are left out of greedy decoding (transformers warns about them)
            beam = ({"length_penalty": cfg.length_penalty, "early_stopping": cfg.early_stopping}
                    if cfg.num_beams > 1 else {})
            if cfg.num_beams > 1 and ids.shape[1] > 1 and _plain_causal_lm(model):
                beam[_cache_keyword(model)] = prompt_cache(model, ids, mask, cfg.num_beams)
            out = model.generate(
                input_ids=ids, attention_mask=mask, num_beams=cfg.num_beams,
                no_repeat_ngram_size=cfg.no_repeat_ngram_size, max_new_tokens=cfg.max_new_tokens,
                eos_token_id=stops, pad_token_id=pad, do_sample=False, **beam)
            rows = out[:, ids.shape[1]:].tolist()
        for i, row in zip(chunk, rows):
            outputs[i] = cut_output(tokenizer.decode(row, skip_special_tokens=False),
                                    tokenizer.eos_token)
        bar.update(len(chunk))
        if progress and bar.disable:
            print(f"[decode] {start + len(chunk)}/{len(prompts)} sources", flush=True)
    bar.close()
    return outputs
