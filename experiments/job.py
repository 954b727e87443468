"""The one interface every task kind implements (`Job`), and `make_job`, which picks the job
from the task config's declared `kind` and `evaluate`; the pipeline only wires a job's stages.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

from torch import nn

from lora_core import FAMILIES

from .run_record import Record


@runtime_checkable
class Job(Protocol):
    """What differs between task kinds inside one run.

    The pipeline builds the model, then the job (`job_class(cfg)(cfg, tokenizer, device)`),
    trains on `train_items` with `collate` and `loss_fn`, calling `on_epoch_end` after each
    epoch (its values go into the epoch's history entry), and ends with `finish`, which
    evaluates and returns the run's metrics, filling the record's evaluation fields."""

    # Can `finish` run with nothing trained (method=none: zero- and few-shot prompting)? A job
    # that reports the best trained epoch cannot.
    evaluates_untrained: ClassVar[bool]
    train_items: list
    loss_fn: Callable
    # (history key, "higher" | "lower"): the dev value `train.patience` watches.
    monitor: tuple[str, str]
    # the monitored metric's value for the best constant prediction (majority label, MCC 0), or
    # None: the plateau rule never reads a run still at that level as converged
    chance: float | None

    @classmethod
    def num_labels(cls, cfg) -> int | None:
        """The classification head's size (None: the model keeps its LM head)."""

    @classmethod
    def score_decoded(cls, cfg, run_dir: Path, record: Record) -> Path:
        """Finish a run whose record says `decoded` (outputs written, not scored); a job that
        never writes that status raises."""

    def collate(self, items: list) -> dict: ...

    def data_summary(self) -> dict:
        """The record's `data`: example counts, truncation, where the data came from."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict: ...

    def finish(self, model: nn.Module, run_dir: Path, record: Record,
               history: list[dict]) -> dict: ...


def _jobs() -> dict[tuple[str, str], type]:
    # imported when first asked for: the job modules bring the engine, the decoder and the
    # task loaders, which `from experiments.job import Job` alone does not need
    from .classification_job import ClassificationJob
    from .epoch_generation_job import EpochGenerationJob
    from .generation_job import GenerationJob

    return {("classification", "every_epoch"): ClassificationJob,
            ("generation", "end"): GenerationJob,
            ("generation", "every_epoch"): EpochGenerationJob}


def job_kind_problem(kind: Any, evaluate: Any) -> str | None:
    """Why (task.kind, task.evaluate) names no job, or None."""
    kinds = _jobs()
    if (kind, evaluate) in kinds:
        return None
    return (f"task.kind={kind!r} with task.evaluate={evaluate!r} names no job: choose one of "
            + ", ".join(f"{k}/{e}" for k, e in kinds))


def job_class(cfg) -> type:
    """The job class the task config declares (task.kind, task.evaluate)."""
    problem = job_kind_problem(cfg.task.get("kind"), cfg.task.get("evaluate"))
    if problem:
        raise ValueError(problem)
    return _jobs()[(cfg.task.kind, cfg.task.evaluate)]


def make_job(cfg, tokenizer, device) -> Job:
    return job_class(cfg)(cfg, tokenizer, device)


def job_num_labels(cfg) -> int | None:
    """The task's classification head size, None for a task that keeps the LM head."""
    return job_class(cfg).num_labels(cfg)


def present_heads(model: nn.Module, family: str) -> list[str]:
    """The family's task-head modules that exist in this model (trained, not counted)."""
    names = [n for n, _ in model.named_modules()]
    return [h for h in FAMILIES[family].heads
            if any(n == h or n.endswith("." + h) for n in names)]
