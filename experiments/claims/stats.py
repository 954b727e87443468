"""The ledger's statistics: a 95% interval for a difference d = a − b, and the rule that turns an
interval into a verdict. Owns `seed_mean_difference`, `paired_trial_difference`, `paired_bootstrap`,
`paired_corpus_bootstrap`, `verdict_for` and `seeds_to_decide`."""
from __future__ import annotations

# Several seeds a side: Welch's t interval for mean(a) − mean(b) (seeds are independent runs,
# with unequal spreads across methods). One seed a side, with per-example scores on the same
# evaluation items: a paired bootstrap over items, d = mean(a_i − b_i), BCa interval
# (scipy.stats.bootstrap, paired=True). A constant b (a threshold) is a one-sample interval.
# Timing trials run in interleaved rounds: a t interval over the per-round differences.

from dataclasses import dataclass

import numpy as np
from scipy import stats

RELATIONS = ("greater", "less", "at_least", "at_most", "equivalent")
REPRODUCED, REFUTED, INCONCLUSIVE, NOT_RUN = "reproduced", "refuted", "inconclusive", "not run here"


@dataclass(frozen=True)
class Interval:
    """d = a − b on the claim's scale, with a confidence interval [low, high] (None: a point)."""
    difference: float
    low: float | None
    high: float | None
    method: str          # welch_t | one_sample_t | paired_t | paired_bootstrap | paired_corpus_bootstrap | point
    n_a: int
    n_b: int
    level: float = 0.95
    note: str = ""       # what the values are where it is not plain, e.g. "seed 1 vs seed 1"

    @property
    def is_point(self) -> bool:
        return self.low is None

    @property
    def undefined(self) -> bool:
        """A t interval on values without spread (see `_no_spread`): it bounds nothing."""
        return self.low is not None and not (np.isfinite(self.low) or np.isfinite(self.high))


def _flat(x: np.ndarray) -> bool:
    """No spread beyond float rounding (90.0 read back as 90.00000000000001)."""
    return bool(np.ptp(x) <= 1e-9 * max(1.0, float(np.abs(x).max())))


def _no_spread(d: float, method: str, n_a: int, n_b: int, level: float) -> Interval:
    """A t interval whose sample variance is zero is undefined, not exact: two seeds that agree
    to a measure's resolution (two accuracies of 46.0 on 200 items) say nothing of its noise.
    An unbounded interval, so no verdict rests on it."""
    return Interval(d, -np.inf, np.inf, method, n_a, n_b, level)


def seed_mean_difference(a, b, level: float = 0.95) -> Interval:
    """mean(a) − mean(b) over seeds with Welch's t interval; both sides need ≥ 2 values."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"Welch's interval needs two or more values a side (got {a.size} and "
                         f"{b.size}); use paired_bootstrap for one seed with per-example scores")
    d = float(a.mean() - b.mean())
    if _flat(a) and _flat(b):
        return _no_spread(d, "welch_t", a.size, b.size, level)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=level)
    return Interval(d, float(ci.low), float(ci.high), "welch_t", a.size, b.size, level)


def one_sample_difference(a, threshold: float, level: float = 0.95) -> Interval:
    """mean(a) − threshold with a one-sample t interval (a: ≥ 2 seeds or trials)."""
    a = np.asarray(a, float)
    if a.size < 2:
        raise ValueError("a one-sample interval needs two or more values")
    d = float(a.mean() - threshold)
    if _flat(a):
        return _no_spread(d, "one_sample_t", a.size, 0, level)
    ci = stats.ttest_1samp(a, threshold).confidence_interval(confidence_level=level)
    return Interval(d, float(ci.low), float(ci.high), "one_sample_t", a.size, 0, level)


def paired_trial_difference(a, b, level: float = 0.95) -> Interval:
    """mean(a_i − b_i) over trials measured together (round i ran both), with a t interval on
    the differences: drift from round to round cancels, unlike Welch's over two lists."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"paired trials need two or more rounds with a value on each side "
                         f"(got {a.size} and {b.size} values)")
    diffs = a - b
    d = float(diffs.mean())
    if _flat(diffs):
        return _no_spread(d, "paired_t", a.size, b.size, level)
    ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(confidence_level=level)
    return Interval(d, float(ci.low), float(ci.high), "paired_t", a.size, b.size, level)


def paired_bootstrap(a, b, level: float = 0.95, n_resamples: int = 10000,
                     seed: int = 0) -> Interval:
    """mean(a_i) − mean(b_i) over the same evaluation items i, resampling items with
    replacement (BCa). `b` may be a scalar: then a one-sample bootstrap of mean(a) − b."""
    a = np.asarray(a, float)
    if np.ndim(b) == 0:
        diffs, n_b = a - float(b), 0
    else:
        b = np.asarray(b, float)
        if a.shape != b.shape:
            raise ValueError(f"a paired bootstrap needs scores on the same items: {a.size} vs "
                             f"{b.size} per-example scores")
        diffs, n_b = a - b, b.size
    d = float(diffs.mean())
    if diffs.size < 2 or np.ptp(diffs) == 0:  # every resample gives the same mean
        return Interval(d, d, d, "paired_bootstrap", a.size, n_b, level)
    res = stats.bootstrap((diffs,), np.mean, confidence_level=level, n_resamples=n_resamples,
                          method="BCa", rng=np.random.default_rng(seed))
    return Interval(d, float(res.confidence_interval.low), float(res.confidence_interval.high),
                    "paired_bootstrap", a.size, n_b, level)


def paired_corpus_bootstrap(a, b, level: float = 0.95, n_resamples: int = 2000,
                            seed: int = 0) -> Interval:
    """metric(a) − metric(b) where the metric is a corpus statistic (MCC, Pearson): the same
    resampled items for both runs, the metric recomputed on each resample; `a`, `b` are
    per_example.CorpusOutputs over the same items. Percentile interval (BCa's jackknife over
    every item would recompute the metric n times more)."""
    n = a.predictions.size
    d = a.value() - b.value()
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for i in range(n_resamples):
        index = rng.integers(0, n, n)
        diffs[i] = a.value(index) - b.value(index)
    diffs = diffs[np.isfinite(diffs)]  # a resample with one class has no MCC
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return Interval(d, float(low), float(high), "paired_corpus_bootstrap", n, n, level)


def verdict_for(relation: str, interval: Interval, margin: float = 0.0) -> tuple[str, str]:
    """(verdict, reason) for the claim `a RELATION b` given d = a − b's interval.

    greater:     a > b          reproduced if low > 0;         refuted if high < 0
    less:        a < b          reproduced if high < 0;        refuted if low > 0
    at_least:    a ≥ b − δ      reproduced if low ≥ −δ;        refuted if high < −δ
    at_most:     a ≤ b + δ      reproduced if high ≤ δ;        refuted if low > δ
    equivalent:  |a − b| ≤ δ    reproduced if [low, high] ⊂ [−δ, δ]; refuted if it lies outside
    Anything else is inconclusive: the interval straddles the boundary. A point (no interval)
    is judged as an interval of width zero; callers decide whether a point may decide.
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation {relation!r}: choose one of {', '.join(RELATIONS)}")
    lo = interval.difference if interval.is_point else interval.low
    hi = interval.difference if interval.is_point else interval.high
    if interval.undefined:
        return INCONCLUSIVE, (f"d = {interval.difference:.3g}, but the values have no spread, so "
                              f"the {interval.method} interval is undefined; more seeds or "
                              "per-item scores decide it")
    span = "(a point, no interval)" if interval.is_point else f"[{lo:.3g}, {hi:.3g}]"
    d = margin
    rules = {
        "greater": (lo > 0, hi < 0, f"the interval {span} contains 0"),
        "less": (hi < 0, lo > 0, f"the interval {span} contains 0"),
        "at_least": (lo >= -d, hi < -d, f"the interval {span} contains −{d:.3g} (the margin)"),
        "at_most": (hi <= d, lo > d, f"the interval {span} contains {d:.3g} (the margin)"),
        "equivalent": (-d <= lo and hi <= d, lo > d or hi < -d,
                       f"the interval {span} is neither inside nor outside ±{d:.3g}"),
    }
    ok, bad, why = rules[relation]
    if ok:
        return REPRODUCED, f"d = {interval.difference:.3g} {span}: {relation} holds"
    if bad:
        return REFUTED, f"d = {interval.difference:.3g} {span}: {relation} fails"
    return INCONCLUSIVE, why


def seeds_to_decide(a, b, relation: str, margin: float = 0.0, level: float = 0.95,
                    most: int = 50) -> int | None:
    """The fewest seeds a side (more than now) at which Welch's interval would decide
    `a RELATION b` if the observed means and spreads held: with n a side,
    d ± t(df) · sqrt((s_a² + s_b²) / n), df = (n − 1)(s_a² + s_b²)² / (s_a⁴ + s_b⁴).
    A projection to plan runs by, not a power analysis (new seeds move the means too); None
    when more than `most` would be needed or the values have no spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = float(a.mean() - b.mean())
    va, vb = float(a.var(ddof=1)), float(b.var(ddof=1))
    if _flat(a) and _flat(b):
        return None
    for n in range(max(a.size, b.size) + 1, most + 1):
        df = (n - 1) * (va + vb) ** 2 / (va ** 2 + vb ** 2)
        half = float(stats.t.ppf((1 + level) / 2, df)) * np.sqrt((va + vb) / n)
        projected = Interval(d, d - half, d + half, "welch_t", n, n, level)
        if verdict_for(relation, projected, margin)[0] != INCONCLUSIVE:
            return n
    return None
