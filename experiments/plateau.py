"""The plateau rule: has a dev metric stopped improving? One rule for the engine's early stop
(`train.patience`) and the claims ledger's convergence test (experiments/claims/convergence.py).

Over a series of evaluations v_1..v_n (higher better after the sign flip), with patience p and
tolerance t: it stopped improving when n >= min_evaluations and
    max(v_{n-p+1..n}) - max(v_{1..n-p}) <= t,
and, where a floor f is given (the dev score of the job's best constant prediction), both the
best so far and the best of the last p beat it: max(v_1..n) > f and max(v_{n-p+1..n}) > f.
Scores flat at f are a run that has not begun to learn (BitFit on CoLA sat at MCC 0 for three
epochs), and scores that fell back to f a run that collapsed to a constant answer (LoRA on
CoLA at lr 2e-3: MCC 0.03, 0, 0, train loss at the label entropy); neither stopped improving.
Fewer evaluations cannot show a plateau.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plateau:
    reached: bool
    gain: float | None  # best of the last `patience` minus the best before; None: too few
    evaluations: int
    at_floor: bool = False  # the best so far, or of the last `patience`, has not beaten it


def plateau(series: list[float], patience: int, tolerance: float = 0.0,
            min_evaluations: int = 3, better: str = "higher",
            floor: float | None = None) -> Plateau:
    """Apply the rule to `series` (oldest first); `better` is "higher" or "lower"; `floor` is
    on the series' own scale."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    if patience < 1 or min_evaluations <= patience:
        raise ValueError(f"the plateau rule needs patience >= 1 and min_evaluations > patience "
                         f"(got patience {patience}, min_evaluations {min_evaluations})")
    if len(series) < min_evaluations:
        return Plateau(False, None, len(series))
    sign = 1.0 if better == "higher" else -1.0
    gain = max(sign * v for v in series[-patience:]) - max(sign * v for v in series[:-patience])
    at_floor = floor is not None and max(sign * v for v in series[-patience:]) <= sign * floor
    return Plateau(gain <= tolerance and not at_floor, gain, len(series), at_floor)
