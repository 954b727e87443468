"""The plateau rule: has a dev metric stopped improving? One rule for the engine's early stop
(`train.patience`) and the claims ledger's convergence test (experiments/claims/convergence.py).

Over a series of evaluations v_1..v_n (higher better after the sign flip), with patience p and
tolerance t: it stopped improving when n >= min_evaluations and
    max(v_{n-p+1..n}) - max(v_{1..n-p}) <= t.
Fewer evaluations cannot show a plateau.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plateau:
    reached: bool
    gain: float | None  # best of the last `patience` minus the best before; None: too few
    evaluations: int


def plateau(series: list[float], patience: int, tolerance: float = 0.0,
            min_evaluations: int = 3, better: str = "higher") -> Plateau:
    """Apply the rule to `series` (oldest first); `better` is "higher" or "lower"."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    if patience < 1 or min_evaluations <= patience:
        raise ValueError(f"the plateau rule needs patience >= 1 and min_evaluations > patience "
                         f"(got patience {patience}, min_evaluations {min_evaluations})")
    if len(series) < min_evaluations:
        return Plateau(False, None, len(series))
    sign = 1.0 if better == "higher" else -1.0
    gain = max(sign * v for v in series[-patience:]) - max(sign * v for v in series[:-patience])
    return Plateau(gain <= tolerance, gain, len(series))
