"""Examples -> token ids -> padded batches, in the official NLG recipe's layout (paper_spec §2.3-2.4).

A generation example is `context + [sep]` followed by `" " + completion + [eos]`; only the
completion tokens (and the final eos) are training targets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .tasks.base import Example

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def separator_ids(tokenizer) -> tuple[int, int]:
    """(separator after the context, end of completion): GPT-2's 50256 for both, as the
    official gpt2_encode.py (--add_bos --add_eos); other models use their eos token too."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos token: set one")
    return eos, eos


# Where an over-long line is cut: "end" keeps the first seq_len tokens (the official NLG code,
# whose E2E/WebNLG/DART lines fit anyway); "context_start" drops the context's first tokens and
# keeps the whole completion (the GPT-3 tasks: see cut_context_start).
TRUNCATION_SIDES = ("end", "context_start")


def cut_context_start(context: list[int], completion: list[int], seq_len: int) -> list[int]:
    """The context's last tokens that fit before the whole completion (the separator, its last
    token, always kept). The start goes because the end carries what the answer depends on most
    (the question after the table schema, the hypothesis, the dialogue's last turns), and the
    decoder left-truncates prompts the same way, so training and evaluation see the same cut."""
    room = seq_len - len(completion)
    if room < 1:
        raise ValueError(f"a completion of {len(completion)} tokens does not fit in seq_len "
                         f"{seq_len} with its context: raise task.seq_len")
    return context[len(context) - room:] if len(context) > room else context


def context_ids(tokenizer, context: str, separator: str | None = None) -> list[int]:
    """The tokens a completion follows. `separator=None`: the context, then eos (the official
    GPT-2 layout, paper_spec §2.3). A text separator ("\nAnswer:"): the context and the separator
    as one text, for instruct stand-ins, which read eos as the end of their turn, not as a cue
    to answer (`conf/config.yaml`, `prompt.separator`)."""
    if separator is None:
        return tokenizer.encode(context, add_special_tokens=False) + [separator_ids(tokenizer)[0]]
    if not separator:
        raise ValueError("prompt.separator is empty: give a text (e.g. '\\nAnswer:') or null "
                         "for the official eos separator")
    return tokenizer.encode(context + separator, add_special_tokens=False)


def prompt_separator(cfg) -> str | None:
    """The run's `prompt.separator` (None: the official eos separator)."""
    prompt = cfg.get("prompt") or {}
    return prompt.get("separator")


def encode_example(tokenizer, example: Example, seq_len: int, truncation: str = "end",
                   separator: str | None = None) -> Encoded:
    _, eos = separator_ids(tokenizer)
    context = context_ids(tokenizer, example.context, separator)
    completion = tokenizer.encode(" " + example.completion, add_special_tokens=False) + [eos]
    truncated = len(context) + len(completion) > seq_len
    if truncation == "context_start":
        context = cut_context_start(context, completion, seq_len)
    elif truncation != "end":
        raise ValueError(f"truncation={truncation!r}: choose one of {TRUNCATION_SIDES}")
    ids = context + completion
    labels = [IGNORE] * len(context) + completion
    return Encoded(ids[:seq_len], labels[:seq_len], truncated)


def encode_examples(tokenizer, examples: Sequence[Example], seq_len: int,
                    truncation: str = "end", separator: str | None = None) -> list[Encoded]:
    return [encode_example(tokenizer, ex, seq_len, truncation, separator) for ex in examples]


def collate_causal(items: Sequence[Encoded], pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Right-pad to the longest item (the official code pads with id 0; padding is masked)."""
    width = max(len(it.input_ids) for it in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, it in enumerate(items):
        n = len(it.input_ids)
        ids[row, :n] = torch.tensor(it.input_ids)
        labels[row, :n] = torch.tensor(it.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def encode_pairs(tokenizer, examples, max_len: int) -> list[dict]:
    """GLUE-style (text_a, text_b) -> token ids with the model's own special tokens, truncated
    to max_len (the official run_glue.py pads to max_length; we pad per batch: same result
    under the attention mask, much less work)."""
    out = []
    for ex in examples:
        enc = tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=max_len)
        enc = {k: list(v) for k, v in enc.items()}
        enc["labels"] = ex.label
        out.append(enc)
    return out


def collate_pairs(items: Sequence[dict], pad_id: int = 0) -> dict[str, torch.Tensor]:
    width = max(len(it["input_ids"]) for it in items)
    batch = {}
    for key in items[0]:
        if key == "labels":
            dtype = torch.float if isinstance(items[0]["labels"], float) else torch.long
            batch["labels"] = torch.tensor([it["labels"] for it in items], dtype=dtype)
            continue
        fill = pad_id if key == "input_ids" else 0
        batch[key] = torch.tensor([it[key] + [fill] * (width - len(it[key])) for it in items])
    return batch
