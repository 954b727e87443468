"""A claim's verdict from its evidence: each comparison's interval and verdict, then the claim's.
Owns `evaluate_claim`, `evaluate_comparison` and the order in which the rules apply."""
from __future__ import annotations

# The order, for each comparison:
#   1. missing records or artifact    -> not run here, with the command that makes them
#   2. a run that did not converge,
#      or a median below the floor that
#      shows training happened        -> inconclusive: under-trained (never reproduced/refuted)
#   3. the interval of d = a − b: a paired t over interleaved trials where the comparison says
#      `paired`; Welch's t over seeds (≥ 2 a side); else a paired bootstrap
#      over evaluation items of one seed a side (same items); else a point
#   4. a point decides only where the claim allows it (a measured property, not a noisy
#      metric); otherwise inconclusive: one seed and no per-example outputs
#   5. verdict_for(relation, interval, margin)
# A claim is the conjunction of its comparisons: not run here if any comparison is;
# inconclusive (under-trained) if any rests on a run that did not converge; otherwise refuted
# if any is refuted (one clear failure refutes a conjunction, whatever the others say);
# inconclusive if any interval is too wide; reproduced when every comparison is.

import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..tables.collect import RunRecord
from .evidence import Evidence, MissingEvidence, gather, select_records
from .per_example import CorpusOutputs
from .spec import Claim, Comparison, Rules
from .stats import (INCONCLUSIVE, NOT_RUN, REFUTED, REPRODUCED, Interval, one_sample_difference,
                    paired_bootstrap, paired_corpus_bootstrap, paired_trial_difference,
                    seed_mean_difference, seeds_to_decide, verdict_for)

# An artifact may say its value cannot decide the relation: only a bound (an lr sweep whose
# best lr sits at an end of its grid), or a probe the base model could not do (nothing to
# forget). The comparison is then inconclusive, whatever the number gives.
CAVEAT = "the value cannot decide it"
MOST_SEEDS = 50     # seeds_to_decide looks no further: past it, more seeds are not the way


@dataclass
class ComparisonResult:
    comparison: Comparison
    verdict: str
    reason: str
    a: Evidence | None = None
    b: Evidence | None = None
    interval: Interval | None = None
    margin: float | None = None
    statistic_says: str | None = None      # the interval's verdict where a gate overrode it
    gates: list[str] = field(default_factory=list)   # every run or mean that failed a gate
    missing: list[MissingEvidence] = field(default_factory=list)
    seeds_to_decide: int | None = None     # where a Welch interval is too wide (stats.seeds_to_decide)


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    reason: str
    comparisons: list[ComparisonResult]
    why: str = ""      # the reason in a few words, for the ledger's summary table


TOO_WIDE, UNDECIDABLE = "too wide", "undecidable by their value"   # why one is inconclusive
_KINDS = (REPRODUCED, REFUTED, TOO_WIDE, UNDECIDABLE)


def _tally(done: list[ComparisonResult]) -> dict[str, int]:
    """How many comparisons say what, in _KINDS' order (an inconclusive one: why)."""
    def kind(r):
        if r.verdict != INCONCLUSIVE:
            return r.verdict
        return UNDECIDABLE if r.reason.startswith(CAVEAT) else TOO_WIDE
    kinds = [kind(r) for r in done]
    return {k: kinds.count(k) for k in _KINDS if k in kinds}


def _words(tally: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in tally.items())


def choose_interval(a: Evidence, b: Evidence, rules: Rules,
                    paired: bool = False) -> tuple[Interval, str | None]:
    """The interval for d = a − b, and why it is only a point where it is one."""
    level = rules.level
    if paired:
        if len(a.values) != len(b.values):
            raise ValueError(f"paired trials: {a.artifact} has {len(a.values)} values and "
                             f"{b.artifact} {len(b.values)}; rerun the benchmark that writes them")
        return replace(paired_trial_difference(a.values, b.values, level),
                       note=f"{len(a.values)} interleaved rounds"), None
    if b.kind == "value":
        if len(a.values) >= 2:
            return one_sample_difference(a.values, b.values[0], level), None
        if a.per_example and not isinstance(a.per_example[min(a.per_example)][0], CorpusOutputs):
            seed = min(a.per_example)
            scores = a.per_example[seed][0]
            iv = paired_bootstrap(scores, b.values[0], level, rules.n_resamples,
                                  rules.bootstrap_seed)
            return replace(iv, note=f"seed {seed}, {scores.size} items"), None
        return Interval(a.mean - b.values[0], None, None, "point", 1, 0, level), \
            "a single value and no per-example outputs"
    if len(a.values) >= 2 and len(b.values) >= 2:
        return seed_mean_difference(a.values, b.values, level), None
    if a.per_example and b.per_example:
        # One seed a side: the same seed where both have it, else each side's first.
        common = sorted(set(a.per_example) & set(b.per_example))
        ka, kb = (common[0], common[0]) if common else (min(a.per_example), min(b.per_example))
        (sa, ia), (sb, ib) = a.per_example[ka], b.per_example[kb]
        if ia == ib and isinstance(sa, CorpusOutputs) and isinstance(sb, CorpusOutputs):
            iv = paired_corpus_bootstrap(sa, sb, level, seed=rules.bootstrap_seed)
            return replace(iv, note=f"seed {ka} vs seed {kb}, {sa.predictions.size} items, "
                                    f"{sa.metric} recomputed per resample"), None
        if ia == ib and not isinstance(sa, CorpusOutputs) and not isinstance(sb, CorpusOutputs):
            iv = paired_bootstrap(sa, sb, level, rules.n_resamples, rules.bootstrap_seed)
            return replace(iv, note=f"seed {ka} vs seed {kb}, {sa.size} items"), None
        return Interval(a.mean - b.mean, None, None, "point", len(a.values), len(b.values),
                        level), "the two sides were evaluated on different items"
    why = "; ".join(n for n in (a.per_example_note, b.per_example_note) if n) or \
        "no per-example outputs"
    return Interval(a.mean - b.mean, None, None, "point", len(a.values), len(b.values), level), \
        f"fewer than two seeds a side and no paired per-example scores ({why})"


# The label a comparison carries once it reads the runs trained to a plateau.
ON_PLATEAU = ", trained to a plateau"


def as_read(comp: Comparison, records: list[RunRecord]) -> Comparison:
    """The comparison the ledger reads: on the sides' runs trained to a plateau (`plateau`) once
    both have one, on the shorter runs until then, so no comparison mixes the two budgets."""
    if comp.plateau is None:
        return comp
    a, b = (replace(sel, experiment=name) for sel, name in zip((comp.a, comp.b), comp.plateau))
    if not (select_records(a, records) and select_records(b, records)):
        return comp
    return replace(comp, label=comp.label + ON_PLATEAU, a=a, b=b, plateau=None)


def evaluate_comparison(comp: Comparison, records: list[RunRecord], results: Path,
                        rules: Rules) -> ComparisonResult:
    comp = as_read(comp, records)
    sides, missing = {}, []
    for name, sel in (("a", comp.a), ("b", comp.b)):
        try:
            sides[name] = gather(sel, records, results, rules.convergence)
        except MissingEvidence as err:
            missing.append(err)
    if missing:
        return ComparisonResult(comp, NOT_RUN, "; ".join(str(m) for m in missing),
                                sides.get("a"), sides.get("b"), missing=missing)
    a, b = sides["a"], sides["b"]
    margin = comp.margin if comp.relative_margin is None else comp.relative_margin * abs(b.mean)
    interval, point_why = choose_interval(a, b, rules, comp.paired)
    result = ComparisonResult(comp, INCONCLUSIVE, "", a, b, interval, margin)
    if point_why and not comp.point_decides:
        says, why = INCONCLUSIVE, f"no interval: {point_why}; run more seeds"
    else:
        says, why = verdict_for(comp.relation, interval, margin)
    unconverged = [(path, why) for ev in (a, b) for path, why in ev.unconverged]
    # The levels that show training happened are on the median over seeds.
    floors = [f"{ev.selector.describe()} median {statistics.median(ev.values):.3g} < "
              f"{comp.trained_floor:g}" for side, ev in (("a", a), ("b", b))
              if comp.trained_floor is not None and side in comp.floor_sides
              and ev.kind != "value"
              and statistics.median(ev.values) < comp.trained_floor]
    if unconverged or floors:
        result.statistic_says = says
        result.gates = [f"{path}: {why}" for path, why in unconverged] + \
            [f"{f}, the level that shows training happened" for f in floors]
        parts = []
        if unconverged:
            # a run an analysis lists whose record is missing is unconverged yet not in .records
            bad = {p for p, _ in unconverged}
            runs = len(bad | {p for p in a.records + b.records
                              if p != a.artifact and p != b.artifact})
            parts.append(f"{len(bad)} of {runs} runs not converged "
                         f"(e.g. {unconverged[0][0]}: {unconverged[0][1]})")
        if floors:
            parts.append("below the level that shows training happened: " + ", ".join(floors))
        result.reason = "under-trained: " + "; ".join(parts)
        return result
    caveats = [ev.caveat for ev in (a, b) if ev.caveat]
    if caveats:   # not the value the relation is about: it decides nothing here
        result.statistic_says = says
        result.reason = f"{CAVEAT}: " + "; ".join(dict.fromkeys(caveats))
        return result
    if says == INCONCLUSIVE and interval.method == "welch_t" and not interval.undefined:
        # how far more seeds are from a verdict: a few, or more than a CPU budget holds
        n = seeds_to_decide(a.values, b.values, comp.relation, margin, rules.level, MOST_SEEDS)
        result.seeds_to_decide = n
        why += ("; at the observed means and spreads, " +
                (f"{n} seeds a side would decide it" if n else
                 f"more than {MOST_SEEDS} seeds a side would be needed"))
    result.verdict, result.reason = says, why
    return result


def evaluate_claim(claim: Claim, records: list[RunRecord], results: Path,
                   rules: Rules) -> ClaimResult:
    done = [evaluate_comparison(c, records, results, rules) for c in claim.comparisons]
    verdicts = [r.verdict for r in done]

    def reasons(v):
        return "; ".join(f"{r.comparison.label}: {r.reason}" for r in done if r.verdict == v)

    if NOT_RUN in verdicts:
        commands = sorted({m.command + (" (GPU + hub)" if m.gpu else "")
                           for r in done for m in r.missing})
        # comparisons share steps ("make runs && make analysis", "make analysis"): each once
        steps = dict.fromkeys(step for c in commands for step in c.split(" && "))
        return ClaimResult(claim, NOT_RUN, "records missing; run: " + " && ".join(steps), done,
                           "records missing")
    under = [r for r in done if r.gates]
    if under:
        # what the trained comparisons say: more training alone may not settle the claim
        rest = [r for r in done if not r.gates]
        others = f"; the other {len(rest)}: {_words(_tally(rest))}" if rest else ""
        return ClaimResult(claim, INCONCLUSIVE, f"under-trained: {len(under)} of "
                           f"{len(done)} comparisons rest on runs that did not converge or "
                           f"did not clear the trained level (e.g. {under[0].comparison.label}"
                           f": {under[0].reason.removeprefix('under-trained: ')}){others}", done,
                           f"under-trained ({len(under)} of {len(done)}){others}")
    if REFUTED in verdicts:
        return ClaimResult(claim, REFUTED, reasons(REFUTED), done)
    if INCONCLUSIVE in verdicts:
        wide = [r for r in done if r.verdict == INCONCLUSIVE and not r.reason.startswith(CAVEAT)]
        head, tally = ("intervals too wide" if wide else CAVEAT), _tally(done)
        return ClaimResult(claim, INCONCLUSIVE, f"{head}: {reasons(INCONCLUSIVE)}", done,
                           f"{head} ({_words(tally)})" if len(tally) > 1 else head)
    return ClaimResult(claim, REPRODUCED, reasons(REPRODUCED), done)
