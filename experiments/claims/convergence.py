"""Did a run converge? The ledger's test, from what a record holds: its own `converged` flag,
else its per-epoch dev history. Owns `ConvergenceRule` and `check_convergence`."""
from __future__ import annotations

# A run "converged" when its dev metric stopped improving: over its last `patience`
# evaluations the metric did not beat the best of the earlier ones by more than `tolerance`
# (on the claim's scale, e.g. accuracy points). With fewer than `min_evaluations` evaluations
# nothing shows a plateau, so the run is under-trained as far as the ledger can tell: every
# SmolLM2 stand-in of today evaluates once, after 25–50 steps. A final metric that keeps
# rising (the best epoch is the last by more than the tolerance) is the same verdict: it was
# still learning when the budget ran out. Nor has a run converged whose last evaluations do
# not beat its constant predictor's score (`train.chance`: the majority share, MCC 0): it has
# not begun to learn, or it collapsed to a constant answer. A record's explicit `converged` (top level or under
# `train`, written by a runner that stops on a plateau) overrides the history.

from dataclasses import dataclass

from ..plateau import plateau
from ..tables.collect import is_number


@dataclass(frozen=True)
class ConvergenceRule:
    min_evaluations: int = 3
    patience: int = 1
    tolerance: float = 0.0

    @classmethod
    def from_dict(cls, data: dict | None, where: str) -> "ConvergenceRule":
        data = dict(data or {})
        unknown = set(data) - {"min_evaluations", "patience", "tolerance"}
        if unknown:
            raise ValueError(f"{where}: convergence has unknown keys {sorted(unknown)} "
                             "(min_evaluations, patience, tolerance)")
        rule = cls(int(data.get("min_evaluations", 3)), int(data.get("patience", 1)),
                   float(data.get("tolerance", 0.0)))
        if rule.patience < 1 or rule.min_evaluations <= rule.patience or rule.tolerance < 0:
            raise ValueError(f"{where}: convergence needs patience ≥ 1, min_evaluations > "
                             f"patience and tolerance ≥ 0 (got {rule})")
        return rule


@dataclass(frozen=True)
class Convergence:
    converged: bool
    reason: str


def explicit_flag(data: dict) -> bool | None:
    for holder in (data, data.get("train") or {}):
        if isinstance(holder.get("converged"), bool):
            return holder["converged"]
    return None


def check_convergence(data: dict, metric_keys, scale: float, better: str,
                      rule: ConvergenceRule) -> Convergence:
    """The test on one record's data; `metric_keys` the dev metric(s) its claim reads."""
    flag = explicit_flag(data)
    if flag is not None:
        return Convergence(flag, "the record says converged" if flag
                           else "the record says it did not converge within its budget")
    history = [e for e in ((data.get("train") or {}).get("history") or []) if isinstance(e, dict)]
    series = []
    for key in metric_keys:
        series = [e[key] * scale for e in history if is_number(e.get(key))]
        if series:
            break
    if len(series) < rule.min_evaluations:
        steps = (data.get("train") or {}).get("steps")
        names = next((k for k in metric_keys if k), "a dev metric")
        return Convergence(False, f"{len(series)} evaluation(s) of {names} in "
                                  f"{steps} steps, fewer than the {rule.min_evaluations} that "
                                  "can show a plateau")
    chance = (data.get("train") or {}).get("chance")
    floor = (chance["value"] * scale if isinstance(chance, dict) and chance.get("metric") == key
             and is_number(chance.get("value")) else None)
    result = plateau(series, rule.patience, rule.tolerance, rule.min_evaluations, better, floor)
    if result.at_floor:
        return Convergence(False, f"the dev metric's last {rule.patience} evaluation(s) did "
                                  f"not beat the constant predictor's {floor:.3g}: the run has "
                                  "not begun to learn, or collapsed to a constant answer")
    gain = result.gain
    if gain > rule.tolerance:
        return Convergence(False, f"the dev metric still improved by {gain:.3g} "
                                  f"in the last {rule.patience} evaluation(s) (tolerance "
                                  f"{rule.tolerance:g})")
    return Convergence(True, f"the dev metric stopped improving (last {rule.patience} "
                             f"evaluation(s) within {rule.tolerance:g} of the earlier best)")
