"""The learning curve a run record keeps: training loss against optimizer steps and training
tokens, and the dev loss wherever an epoch's evaluation computed one.

A training point is written every `every` steps and holds the mean loss of the batches since
the previous point; its state travels in the checkpoint, so a resumed run's curve equals an
uninterrupted one's.
"""
from __future__ import annotations


class LossCurve:
    def __init__(self, every: int):
        if every <= 0:
            raise ValueError(f"a loss curve needs a point every >= 1 steps, got {every}")
        self.every = every
        self.points: list[dict] = []
        self.tokens = 0  # training tokens seen so far (padding not counted), resumes included
        self._sum, self._batches = 0.0, 0

    def add_batch(self, loss: float, tokens: int) -> None:
        self._sum, self._batches = self._sum + loss, self._batches + 1
        self.tokens += tokens

    def after_step(self, step: int, lr: float) -> None:
        if step % self.every == 0 and self._batches:
            self.points.append({"step": step, "tokens": self.tokens,
                                "loss": self._sum / self._batches, "lr": lr})
            self._sum, self._batches = 0.0, 0

    def dev(self, step: int, metrics: dict) -> None:
        """A dev point where the evaluation gave a loss (`valid_loss`)."""
        if "valid_loss" in metrics:
            self.points.append({"step": step, "tokens": self.tokens,
                                "dev_loss": float(metrics["valid_loss"])})

    def state(self) -> dict:
        return {"every": self.every, "points": self.points, "tokens": self.tokens,
                "window_sum": self._sum, "window_batches": self._batches}

    def restore(self, state: dict | None) -> None:
        """Continue from a checkpoint's state (an older checkpoint without one: from scratch)."""
        if not state:
            return
        self.points = list(state["points"])
        self.tokens = int(state["tokens"])
        self._sum, self._batches = float(state["window_sum"]), int(state["window_batches"])


def tail_loss(points: list[dict], fraction: float = 0.25) -> float | None:
    """The mean training loss over the last `fraction` of a curve's training tokens: each point's
    window (the tokens since the previous point) weighted by its share past the cut. In a run of
    one epoch every batch is scored before it is trained on, so this is a held-out loss at the
    end of training, averaged over enough batches to be steady. None for a curve without points."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    train = [p for p in points if "loss" in p and "tokens" in p]
    if not train:
        return None
    cut = (1 - fraction) * train[-1]["tokens"]
    total = weight = 0.0
    previous = 0.0
    for p in train:
        share = p["tokens"] - max(previous, cut)
        if share > 0:
            total, weight = total + share * p["loss"], weight + share
        previous = p["tokens"]
    return total / weight if weight else None
