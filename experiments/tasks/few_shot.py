"""Few-shot prompts (Table 8): k demonstrations per class from the training split, drawn with a
seed, prefixed to every evaluation context. Owns draw_demonstrations and few_shot_prompt.
"""
from __future__ import annotations

import random
from typing import Sequence

from .base import Example


def draw_demonstrations(train: Sequence[Example], per_class: int, seed: int) -> list[Example]:
    """`per_class` examples of each class (meta["label"]), drawn with `seed`, then shuffled with
    the same generator so the classes do not come in a fixed order. One draw serves the whole
    evaluation set (App. A: 2 per class, 6 in all, for MNLI), as the GPT-3 paper's fixed-K setup
    does not say it redraws per example; fixing them keeps a run reproducible from its seed."""
    if per_class <= 0:
        return []
    by_class: dict = {}
    for ex in train:
        if "label" not in ex.meta:
            raise ValueError("few_shot.per_class > 0 needs a task whose examples carry a class "
                             "(mnli_gen, rte_gen, sst2_gen); set task.options.few_shot.per_class=0")
        by_class.setdefault(ex.meta["label"], []).append(ex)
    rng = random.Random(int(seed))
    demos = []
    for label in sorted(by_class):
        pool = by_class[label]
        if len(pool) < per_class:
            raise ValueError(f"few_shot.per_class={per_class} but the training examples hold only "
                             f"{len(pool)} of class {label}: lower per_class or raise data.max_train")
        demos += rng.sample(pool, per_class)
    rng.shuffle(demos)
    return demos


def demonstration_text(example: Example, separator: str, end: str) -> str:
    """A demonstration as the model saw training lines: context, separator, " " + completion,
    end of text (batching.encode_example). `separator`/`end` are the tokenizer's eos text, which
    the tokenizer reads back as the eos token."""
    return f"{example.context}{separator} {example.completion}{end}"


def few_shot_prompt(demos: Sequence[Example], context: str, separator: str, end: str) -> str:
    """Demonstrations, each followed by a blank line, then the evaluation context (the decoder
    appends the separator after it). No demonstrations: the context unchanged."""
    if not demos:
        return context
    return "".join(demonstration_text(d, separator, end) + "\n\n" for d in demos) + context
