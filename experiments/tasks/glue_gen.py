"""GLUE classification as text generation (the paper's GPT-3 MNLI, Tables 4, 8, 16): the sentence
pair in, the label word out. Tasks mnli_gen, rte_gen, sst2_gen read through glue.load_glue.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

from ..metrics.mnli import LABEL_WORDS as MNLI_WORDS
from .base import FIXTURE_ROOT, DataMissingError, Example, data_roots, register_task
from .glue import GLUE_TASKS, load_glue

# Label words in GLUE's label-id order. MNLI: the scorer's words (metrics/mnli.py). RTE: the
# paper gives none; we use GLUE's own label strings, one word each (the scorer reads the first
# word), so MNLI and RTE share "entailment". SST-2: negative (0) / positive (1).
DEFAULT_LABEL_WORDS = {"mnli": tuple(MNLI_WORDS), "rte": ("entailment", "not_entailment"),
                       "sst2": ("negative", "positive")}


def pair_context(text_a: str, text_b: str | None) -> str:
    """The paper does not show its GPT-3 MNLI prompt; our choice names each part, so that a model
    used without training (few-shot, Table 8) can tell premise from hypothesis."""
    if text_b is None:
        return f"Sentence: {text_a.strip()}"
    return f"Premise: {text_a.strip()}\nHypothesis: {text_b.strip()}"


def load_glue_generation(glue_name: str, split: str, limit: int | None = None,
                         fixture: bool = False,
                         label_words: Sequence[str] | None = None) -> list[Example]:
    """Examples with completion = the label word and meta["label"] = the GLUE label id.
    `fixture=True` falls back to experiments/tasks/fixtures/glue/ (MNLI only) when the real
    files are absent: for tests and smoke runs, never a default."""
    words = tuple(label_words or DEFAULT_LABEL_WORDS[glue_name])
    if len(words) != GLUE_TASKS[glue_name].num_labels or len(set(words)) != len(words):
        raise ValueError(f"task.options.label_words for {glue_name}: need "
                         f"{GLUE_TASKS[glue_name].num_labels} distinct words in GLUE label order "
                         f"{GLUE_TASKS[glue_name].labels}, got {list(words)}")
    try:
        rows = load_glue(glue_name, split, limit=limit, roots=data_roots(), hub=not fixture)
        source = "data"
    except DataMissingError:
        if not fixture:
            raise
        rows = load_glue(glue_name, split, limit=limit, roots=[FIXTURE_ROOT], hub=False)
        source = "fixture"
        print(f"[data] {glue_name} {split}: real data missing, using the test fixture")
    return [Example(pair_context(r.text_a, r.text_b), words[r.label],
                    # one test item per row: duplicate pairs in a dev set are scored twice
                    group=f"{split}:{n}",
                    meta={"label": r.label,
                          "source": r.source if r.source.startswith("hub:") else source})
            for n, r in enumerate(rows)]


for _name in DEFAULT_LABEL_WORDS:
    register_task(f"{_name}_gen")(partial(load_glue_generation, _name))
