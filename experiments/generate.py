"""Serve several fine-tuned tasks from one model: each input row names its adapter, rows of
different adapters share a batch (`lora_core.adapter_routing`), one output per row.

    python -m experiments.generate --model smollm2_135m --adapter sst2=DIR --adapter samsum=DIR \\
        --input rows.jsonl --output out.jsonl

rows.jsonl: one JSON object a line, {"prompt": "...", "adapter": "sst2"} ("adapter": null or
absent = the base model). out.jsonl: the same rows, in the same order, each with "output".
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lora_core import adapter_routing, add_adapter

from .models import load_model, model_spec


def read_rows(path: Path, known: Sequence[str]) -> list[dict]:
    """The input rows, checked: every line a JSON object with a string prompt and a known adapter."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not JSON ({err.msg}); each line must be an object such "
                             'as {"prompt": "...", "adapter": "NAME"}') from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise ValueError(f"{where}: needs a string field \"prompt\" (got {line[:80]!r})")
        adapter = row.get("adapter")
        if adapter is not None and adapter not in known:
            raise ValueError(f"{where}: adapter {adapter!r} was not given with --adapter; known: "
                             f"{list(known)} (null = the base model)")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} holds no rows")
    return rows


def serving_order(adapters: Sequence[str | None]) -> list[int]:
    """Row indices with each adapter's rows together (first-seen order), so that within a batch
    every adapter's rows are contiguous and routing slices them instead of gathering."""
    first = {}
    for a in adapters:
        first.setdefault(a, len(first))
    return sorted(range(len(adapters)), key=lambda i: first[adapters[i]])


@torch.no_grad()
def generate_rows(model: nn.Module, tokenizer, rows: Sequence[dict], max_new_tokens: int = 32,
                  num_beams: int = 1, batch_size: int = 8, device: str = "cpu",
                  context_eos: bool = False) -> list[str]:
    """One completion per row (greedy or beam search), rows of several adapters per batch.

    context_eos: end each prompt with eos, as this suite's generation tasks do when they train
    and decode (experiments/decode.py), so adapters trained by them see their own format."""
    model.eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = serving_order([r.get("adapter") for r in rows])
    outputs: list[str] = [""] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        prompts = [tokenizer.encode(rows[i]["prompt"], add_special_tokens=False)
                   + ([tokenizer.eos_token_id] if context_eos else []) for i in chunk]
        width = max(map(len, prompts))
        # left padding: every row's next token follows its own last prompt token
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        with adapter_routing(model, [rows[i].get("adapter") for i in chunk]):
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 num_beams=num_beams, do_sample=False, pad_token_id=pad)
        for i, seq in zip(chunk, out[:, width:]):
            outputs[i] = tokenizer.decode(seq, skip_special_tokens=True)
    return outputs


def parse_adapters(items: Sequence[str]) -> dict[str, Path]:
    adapters = {}
    for item in items:
        name, sep, directory = item.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"--adapter {item!r}: write NAME=DIR")
        if name in adapters:
            raise ValueError(f"--adapter {name!r} is given twice")
        adapters[name] = Path(directory)
    return adapters


def main(argv: Sequence[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a conf/model name, e.g. smollm2_135m")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                        help="an adapter directory (this suite's or PEFT's), repeatable")
    parser.add_argument("--input", required=True, type=Path, help="rows.jsonl")
    parser.add_argument("--output", type=Path, help="out.jsonl (default: stdout)")
    parser.add_argument("--init", default="pretrained", choices=["pretrained", "random"],
                        help="random: the model's shape at random init (with --seed), for checks")
    parser.add_argument("--seed", type=int, default=0, help="seed of a random-init model")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--context-eos", action="store_true",
                        help="end each prompt with eos, the format this suite's generation tasks "
                             "train adapters on (e.g. 'Sentence: ...' + eos for sst2_gen)")
    args = parser.parse_args(argv)

    adapters = parse_adapters(args.adapter)
    rows = read_rows(args.input, list(adapters))
    spec = model_spec(args.model)
    if spec.head != "causal_lm":
        raise ValueError(f"model {spec.name} is not a decoder (head {spec.head}): generation "
                         "needs a causal LM such as smollm2_135m or gpt2_m")
    loaded = load_model(spec, init=args.init, seed=args.seed if args.init == "random" else None)
    if loaded.tokenizer is None:
        raise ValueError(f"no tokenizer found for {spec.name}: see experiments.models.load_tokenizer")
    model = loaded.model
    for name, directory in adapters.items():
        add_adapter(model, name, directory)
    model.to(args.device)
    texts = generate_rows(model, loaded.tokenizer, rows, args.max_new_tokens, args.num_beams,
                          args.batch_size, args.device, args.context_eos)
    results = [dict(row, output=text) for row, text in zip(rows, texts)]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(lines)
    else:
        sys.stdout.write(lines)
    return results


if __name__ == "__main__":
    main()
