"""Every scorer a task config can name (`task.scorer`), in one registry, each with its main
metric (the one a table headlines and a best epoch is picked by). Owns SCORERS and scorer()."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ._io import MetricInputError
from .glue import TASKS as GLUE_TASKS
from .glue import main_metric as glue_main_metric


@dataclass(frozen=True)
class Scorer:
    """`score(outputs, references, metas, options) -> {metric: value}`.

    outputs: one per test item, as the job produced it (generated text, or a classifier's label);
    references: the gold per item (a group of texts, one text, or a label);
    metas: the example fields a scorer needs per item (WikiSQL's sql and header, WebNLG's seen
    flag, a label id); options: the task's `task.options` (label words)."""
    score: Callable[[Sequence, Sequence, Sequence[Mapping], Mapping], dict]
    main: str


def _groups(references: Sequence) -> list[list[str]]:
    return [list(r) for r in references]


def _e2e(outputs, references, metas, options) -> dict:
    from .e2e import score_e2e

    return score_e2e(list(outputs), _groups(references))


def _dart(outputs, references, metas, options) -> dict:
    from .webnlg import score_dart

    return score_dart(list(outputs), _groups(references))


def _webnlg(outputs, references, metas, options) -> dict:
    from .webnlg import score_webnlg_splits

    splits = score_webnlg_splits(list(outputs), _groups(references), [m["seen"] for m in metas])
    # flat keys, as Table 14's columns: BLEU_U, BLEU_S, BLEU_A, ...
    return {f"{name}_{part[0].upper()}": value for part, scores in splits.items()
            if scores for name, value in scores.items()}


def _samsum(outputs, references, metas, options) -> dict:
    from .samsum import score_samsum

    return score_samsum(list(outputs), list(references))


def _wikisql(outputs, references, metas, options) -> dict:
    from .wikisql import score_wikisql

    return score_wikisql(list(outputs), [m["sql"] for m in metas], [m["header"] for m in metas])


def _label_words(outputs, references, metas, options) -> dict:
    from .mnli import score_mnli_generation

    words = options.get("label_words")
    if not words:
        raise MetricInputError("scorer label_words needs the task's label words: set "
                               "task.options.label_words (in GLUE label-id order)")
    return score_mnli_generation(list(outputs), [m["label"] for m in metas], label_words=words)


def _glue(task: str) -> Callable:
    def score(outputs, references, metas, options) -> dict:
        from .glue import score_glue

        return score_glue(task, list(outputs), list(references))
    return score


# SAMSum's main metric is ROUGE-L, our choice: the paper reports all three and says which epoch
# it kept only as "best validation". The NLG scorers' main metric picks no epoch (those tasks
# decode once, at the end); it is the first column of their tables.
SCORERS: dict[str, Scorer] = {
    "e2e": Scorer(_e2e, "BLEU"),
    "dart": Scorer(_dart, "BLEU"),
    "webnlg": Scorer(_webnlg, "BLEU_A"),
    "samsum": Scorer(_samsum, "ROUGE-L"),
    "wikisql": Scorer(_wikisql, "lf_accuracy"),
    "label_words": Scorer(_label_words, "accuracy"),
    **{f"glue_{t}": Scorer(_glue(t), glue_main_metric(t)) for t in GLUE_TASKS},
}


def scorer(name: Any) -> Scorer:
    """The registered scorer `name` (a task config's `task.scorer`), or an error listing them."""
    if name not in SCORERS:
        raise MetricInputError(f"task.scorer={name!r} is not a known scorer: choose one of "
                               f"{', '.join(sorted(SCORERS))} (experiments/metrics/registry.py)")
    return SCORERS[name]
