"""Decoding-speed cases for `train_speed`: `experiments.decode.generate_completions` against
transformers' `generate` called plainly (prompts in the given order, batches as they come) on
the same prompts and settings, with the outputs compared string for string.

Tokens/s counts the new tokens kept in the outputs (up to and including each row's stop token),
the same count for both when the outputs are identical.
"""
from __future__ import annotations

import time

import torch

from ..decode import DecodeConfig, _left_padded, cut_output, generate_completions, stop_token_ids

GREEDY_SST2 = DecodeConfig(num_beams=1, length_penalty=1.0, no_repeat_ngram_size=0,
                           max_new_tokens=8, batch_size=16, max_context_tokens=88,
                           early_stopping=True)
BEAM_E2E = DecodeConfig()  # the official E2E decoder: beam 10, no-repeat 4, 64 new tokens


@torch.no_grad()
def plain_generate(model, tokenizer, contexts: list[str], cfg: DecodeConfig,
                   device: str = "cpu") -> tuple[list[str], int]:
    """`generate` called plainly; returns the outputs and the new tokens up to each row's stop."""
    sep = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep
    stops = stop_token_ids(tokenizer)
    outputs, new_tokens = [], 0
    for start in range(0, len(contexts), cfg.batch_size):
        prompts = [(tokenizer.encode(c, add_special_tokens=False) + [sep])[-cfg.max_context_tokens:]
                   for c in contexts[start:start + cfg.batch_size]]
        ids, mask = _left_padded(prompts, pad)
        ids, mask = ids.to(device), mask.to(device)
        beam = ({"length_penalty": cfg.length_penalty, "early_stopping": cfg.early_stopping}
                if cfg.num_beams > 1 else {})
        out = model.generate(input_ids=ids, attention_mask=mask, num_beams=cfg.num_beams,
                             no_repeat_ngram_size=cfg.no_repeat_ngram_size,
                             max_new_tokens=cfg.max_new_tokens, eos_token_id=stops,
                             pad_token_id=pad, do_sample=False, **beam)
        for row in out[:, ids.shape[1]:].tolist():
            ends = [k for k, t in enumerate(row) if t in stops]
            new_tokens += ends[0] + 1 if ends else len(row)
            outputs.append(cut_output(tokenizer.decode(row, skip_special_tokens=False),
                                      tokenizer.eos_token))
    return outputs, new_tokens


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_decoding(name: str, model, tokenizer, contexts: list[str], cfg: DecodeConfig,
                  device: str = "cpu") -> dict:
    model.eval()
    _sync(device)
    started = time.perf_counter()
    plain, new_tokens = plain_generate(model, tokenizer, contexts, cfg, device)
    _sync(device)
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    ours = generate_completions(model, tokenizer, contexts, cfg, device=device, progress=False)
    _sync(device)
    ours_s = time.perf_counter() - started
    same = sum(a == b for a, b in zip(plain, ours))
    out = {"sources": len(contexts), "num_beams": cfg.num_beams, "batch_size": cfg.batch_size,
           "max_new_tokens": cfg.max_new_tokens, "new_tokens": new_tokens,
           "plain_generate": {"s": round(plain_s, 2), "tokens_per_s": round(new_tokens / plain_s, 1)},
           "engine": {"s": round(ours_s, 2), "tokens_per_s": round(new_tokens / ours_s, 1)},
           "vs_plain": round(plain_s / ours_s, 3), "identical_outputs": same == len(contexts),
           "identical_count": same}
    print(f"[bench] decode {name}: plain {plain_s:.1f} s, engine {ours_s:.1f} s, "
          f"identical {same}/{len(contexts)}", flush=True)
    return out


def smollm2_decoding(model, tokenizer, n_greedy: int = 48, n_beam: int = 16, beam_batch: int = 8,
                     device: str = "cpu") -> dict:
    from ..tasks import group_references, load_examples

    sst2 = [ex.context for ex in load_examples("sst2_gen", "dev", limit=n_greedy)]
    _, _, last = group_references(load_examples("e2e", "test"))
    e2e = [ex.context for ex in last[:n_beam]]
    beam = DecodeConfig(**{**BEAM_E2E.__dict__, "batch_size": beam_batch})
    return {"smollm2_sst2_greedy_b16": time_decoding("sst2 greedy", model, tokenizer, sst2,
                                                     GREEDY_SST2, device),
            "smollm2_e2e_beam10": time_decoding("e2e beam 10", model, tokenizer, e2e, beam,
                                                device)}
