"""The ledger's outputs: `results/claims.json` (everything, for programs) and
`results/CLAIMS.md` (for readers), both generated from records. Owns `to_json`, `to_markdown`."""
from __future__ import annotations

# No timestamps: the same records give byte-identical files, so a diff shows what changed.

import json
import math
from collections import Counter
from pathlib import Path

from ..evidence import plan_for
from .evaluate import ClaimResult, ComparisonResult
from .evidence import Evidence, _dotted
from .spec import PaperRef, Rules
from .stats import INCONCLUSIVE, NOT_RUN, REFUTED, REPRODUCED

ORDER = (REPRODUCED, REFUTED, INCONCLUSIVE, NOT_RUN)
PAPER, LATER = "paper", "later work"
SECTION_TITLES = {PAPER: "The paper's claims (Hu et al., 2021)",
                  LATER: "Later work: what followed the paper (issue #27)"}


def _round(x, digits: int = 4):
    # an unbounded end (an undefined interval) is null: JSON has no Infinity
    return None if x is None or not math.isfinite(x) else round(float(x), digits) + 0.0  # no -0.0


def paper_value(ref: PaperRef | None, results: Path) -> dict | None:
    if ref is None:
        return None
    printed = ref.printed
    if printed is None and ":" in ref.source:   # {file, key}: the paper block of an artifact
        file, key = ref.source.split(":", 1)
        path = Path(results) / file
        if path.is_file():
            value = _dotted(json.loads(path.read_text(encoding="utf-8")), key)
            printed = None if value is None else str(value)
    return {"printed": printed, "source": ref.source}


def _span(values: list) -> str | None:
    """`5`, or `2,490-10,000` for a range; None when no record says."""
    values = sorted({v for v in values if v is not None})
    if not values:
        return None
    lo, hi = (f"{v:,}" if isinstance(v, int) else f"{v:g}" for v in (values[0], values[-1]))
    return lo if lo == hi else f"{lo}-{hi}"


def budget_lines(budgets: list[dict]) -> list[str]:
    """One line per model: the ranges of training examples, epochs and steps of the runs behind a
    claim (each counted once), and how many stopped on the plateau rule. (Not the profile: the
    tables group every stand-in profile under "paper", which would misname a stand-in here.)"""
    groups: dict[tuple, list[dict]] = {}
    for b in {b.get("record"): b for b in budgets}.values():   # a run behind two comparisons
        groups.setdefault(str(b.get("model")), []).append(b)
    lines = []
    for model, bs in sorted(groups.items()):
        parts = [model]
        for key, unit in (("train_examples", "training examples"), ("steps", "steps")):
            span = _span([b.get(key) for b in bs])
            if span:
                parts.append(f"{span} {unit}")
        trained, most = _span([b.get("epochs") for b in bs]), _span([b.get("max_epochs") for b in bs])
        if trained:
            parts.append(f"{trained} epoch(s) trained" + (f" of up to {most}" if most else ""))
        elif most:
            parts.append(f"{most} epoch(s)")
        stopped = sum(1 for b in bs if b.get("stopped_early"))
        if stopped:
            parts.append(f"{stopped} of {len(bs)} runs stopped once the dev metric stopped "
                         "improving")
        lines.append(", ".join(parts))
    return lines


def _evidence(ev: Evidence | None) -> dict | None:
    if ev is None:
        return None
    return {"selects": ev.selector.describe(), "kind": ev.kind, "mean": _round(ev.mean),
            "std": _round(ev.std), "n": len(ev.values), "values": [_round(v) for v in ev.values],
            "seeds": ev.seeds, "model": ev.model, "budget": ev.budget, "records": ev.records,
            "per_example": sorted(ev.per_example), "per_example_note": ev.per_example_note,
            "unconverged": [{"record": p, "reason": r} for p, r in ev.unconverged]}


def _comparison(r: ComparisonResult, results: Path) -> dict:
    c, iv = r.comparison, r.interval
    return {"label": c.label, "relation": c.relation, "margin": _round(r.margin),
            "verdict": r.verdict, "reason": r.reason, "statistic_says": r.statistic_says,
            "gates": r.gates, "seeds_to_decide": r.seeds_to_decide,
            "paper": {"a": paper_value(c.paper_a, results), "b": paper_value(c.paper_b, results)},
            "a": _evidence(r.a), "b": _evidence(r.b),
            "difference": None if iv is None else {
                "value": _round(iv.difference), "low": _round(iv.low), "high": _round(iv.high),
                "method": iv.method, "level": iv.level, "note": iv.note or None,
                "undefined": iv.undefined},
            "missing": [{"what": m.what, "command": m.command, "gpu": m.gpu} for m in r.missing]}


def to_json(results_list: list[ClaimResult], rules: Rules, results: Path) -> dict:
    counts = Counter(r.verdict for r in results_list)
    by_section = {sec: Counter(r.verdict for r in results_list
                               if (LATER if r.claim.source else PAPER) == sec)
                  for sec in (PAPER, LATER)}
    return {"generated_by": "python -m experiments.claims",
            "rules": {"level": rules.level, "n_resamples": rules.n_resamples,
                      "bootstrap_seed": rules.bootstrap_seed,
                      "convergence": vars(rules.convergence)},
            "summary": {v: counts.get(v, 0) for v in ORDER},
            "summary_by_section": {sec: {v: c.get(v, 0) for v in ORDER}
                                   for sec, c in by_section.items()},
            "claims": [{"id": r.claim.id, "statement": r.claim.statement,
                        "where": r.claim.where, "stand_in": r.claim.stand_in,
                        "verdict": r.verdict, "reason": r.reason, "why": r.why,
                        "paper_scale": list(r.claim.paper_scale), "notes": list(r.claim.notes),
                        "source": r.claim.path.name if r.claim.path else None,
                        "section": LATER if r.claim.source else PAPER,
                        "later_work": r.claim.source,
                        "comparisons": [_comparison(c, results) for c in r.comparisons],
                        "evidence_plan": plan_for(r.claim.id, results)}
                       for r in results_list]}


def _ours(side: dict | None) -> str:
    if side is None:
        return "—"
    if side["kind"] == "value":
        return f"{side['mean']:g}"
    std = f" ± {side['std']:.2f}" if side["std"] is not None else ""
    unit = {"seeds": "seed", "trials": "trial", "point": "value"}[side["kind"]]
    return f"{side['mean']:.2f}{std} ({side['n']} {unit}{'s' if side['n'] != 1 else ''})"


def _diff(d: dict | None) -> str:
    if d is None:
        return "—"
    if d.get("undefined"):
        return f"{d['value']:+.2f} (no interval: {d['method']} without spread)"
    if d["low"] is None:
        return f"{d['value']:+.2f} (point)"
    how = d["method"] + (f", {d['note']}" if d.get("note") else "")
    return f"{d['value']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] ({how})"


def _paper(p: dict) -> str:
    a, b = p["a"], p["b"]
    return f"{(a or {}).get('printed') or '—'} vs {(b or {}).get('printed') or '—'}"


def _why(k: dict) -> str:
    if k["statistic_says"]:
        return f"{k['reason']} (the statistic alone: {k['statistic_says']})"
    return k["reason"]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: dict) -> str:
    lines = ["# The paper's claims and later work's, each with a verdict", "",
             "Generated by `python -m experiments.claims` (`make claims`) from the run records "
             "under `results/runs/` and the artifacts under `results/`; the claims, their "
             "evidence and their rules are data in `experiments/claims/ledger/`. Do not edit "
             "by hand.", "",
             f"Intervals are {doc['rules']['level']:.0%}: Welch's t over seeds where each side "
             "has two or more, else a paired bootstrap over evaluation items of one seed a side "
             f"(BCa, {doc['rules']['n_resamples']} resamples). A run counts as converged when "
             "its record says so, or its dev history has at least "
             f"{doc['rules']['convergence']['min_evaluations']} evaluations and the last "
             f"{doc['rules']['convergence']['patience']} did not improve on the earlier best by "
             f"more than {doc['rules']['convergence']['tolerance']:g}; a claim resting on a run "
             "that did not converge is inconclusive, never reproduced or refuted. Where a "
             "Welch interval is too wide, the ledger also says how many seeds a side would "
             "decide it if the observed means and spreads held: a projection to plan runs by, "
             "not a power analysis (new seeds move the means too). Seeds are extended once, "
             "declared before the new ones run, never until a verdict appears.", "",
             "Summary: " + ", ".join(f"{n} {v}" for v, n in doc["summary"].items())]
    for sec in (PAPER, LATER):
        claims = [c for c in doc["claims"] if c.get("section", PAPER) == sec]
        if not claims:
            continue
        counts = (doc.get("summary_by_section") or {}).get(sec) or {}
        lines += ["", f"## {SECTION_TITLES[sec]}", ""]
        if sec == LATER:
            lines += ["Claims of two later works, each tested on this suite's stand-ins with "
                      "the protocol the work describes; each names its source and finding.", ""]
        lines += ["Summary: " + ", ".join(f"{n} {v}" for v, n in counts.items()), "",
                  "| claim | where | ours | verdict | why |", "|---|---|---|---|---|"]
        for c in claims:
            why = c["why"] if c["verdict"] in (INCONCLUSIVE, NOT_RUN) else ""
            where = c["where"] if sec == PAPER else f"{c['later_work']['work']}; {c['where']}"
            lines.append(f"| [{_cell(c['statement'])}](#{c['id']}) | {_cell(where)} | "
                         f"{_cell(c['stand_in'] or 'the paper setting only')} | "
                         f"**{c['verdict']}** | {_cell(why)} |")
        for c in claims:
            lines += _details(c)
    return "\n".join(lines) + "\n"


def _details(c: dict) -> list[str]:
    """One claim's section: its verdict, source (later work), comparisons, budget, records."""
    lines = ["", f"<a id=\"{c['id']}\"></a>", f"### {c['statement']}", "",
             f"*{c['where']}*" + (f" · ours: {c['stand_in']}" if c["stand_in"] else ""), "",
             f"**Verdict: {c['verdict']}.** {c['reason']}", ""]
    if c.get("later_work"):
        src = c["later_work"]
        cite = ", ".join(x for x in (src.get("authors"), src.get("year")) if x)
        lines += [f"Source: *{src['work']}*" + (f" ({cite})" if cite else "")
                  + (f", <{src['url']}>" if src.get("url") else "")
                  + f". It reports: {src['finding']}", ""]
    lines += ["| comparison | " + ("source" if c.get("later_work") else "paper")
              + " (a vs b) | ours a | ours b | a − b, 95% interval | verdict | why |",
              "|---|---|---|---|---|---|---|"]
    for k in c["comparisons"]:
        rel = f"{k['relation']}" + (f", margin {k['margin']:g}" if k["margin"] else "")
        lines.append(f"| {_cell(k['label'])} ({rel}) | {_cell(_paper(k['paper']))} | "
                     f"{_ours(k['a'])} | {_ours(k['b'])} | {_diff(k['difference'])} | "
                     f"{k['verdict']} | {_cell(_why(k))} |")
    budgets = [b for k in c["comparisons"] for s in (k["a"], k["b"]) if s for b in s["budget"]]
    if budgets:
        lines += ["", "Budget and model: " + "; ".join(budget_lines(budgets)) + "."]
    records = sorted({p for k in c["comparisons"] for s in (k["a"], k["b"]) if s
                      for p in s["records"]})
    if records:
        lines += ["", "<details><summary>Records behind it "
                  f"({len(records)})</summary>", ""]
        lines += [f"- `{p}`" for p in records] + ["", "</details>"]
    if c["paper_scale"]:
        lines += ["", "The paper's own setting (GPU): " +
                  "; ".join(f"`{cmd}`" for cmd in c["paper_scale"])]
    for note in c["notes"]:
        lines += ["", f"Note: {note}"]
    plan = [f"stage {p['stage']}, {p['complete']} of {p['planned']} runs complete, "
            + ("read by this claim" if p["read_now"] else "read by each comparison once both "
               "its sides have a run, in place of the shorter runs") + f" (`{p['command']}`)"
            for p in c.get("evidence_plan", [])]
    if plan:
        lines += ["", "Evidence plan (`make evidence-status`): " + "; ".join(plan) + "."]
    return lines
