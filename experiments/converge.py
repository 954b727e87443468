"""The converging stand-ins' run lists (issue #23): per method, an lr sweep on one task's dev set,
then every cell for each seed at the sweep's best lr, until the dev metric stops improving.

    python -m experiments.converge sweep glue_minilm [--methods ft lora] > list
    python -m experiments.converge runs glue_minilm [--methods ft lora] [--seeds 1 2 3] > list
    python -m experiments.converge status glue_minilm   # each method's sweep so far, its lr
    scripts/converge.sh glue_minilm ft lora        # both, the analysis and the configs between

The rule, one for every method: lrs base x {1/4, 1/2, 1} (base: the method's short-budget lr;
longer training wants a lower one), seed 1, each run the sweep cell's own recipe (glue_minilm:
its epoch cap, trained to the plateau, so the lr is judged by what the cells report; a family
with `sweep_epochs` set trains the first that many epochs of its cells' schedule instead,
`train.run_epochs`); the best is the highest dev metric at the run's best epoch
(experiments/analysis/lr_sweep.py: ties, grid edges and lrs that never beat the constant
predictor are flagged), and a best at an end of the grid adds an lr past it (MAX_EXTENSIONS).
The first glue_minilm sweep squeezed a 3-epoch schedule into its runs, so their lr decayed to
0 by the third epoch: its pick for BitFit (2.5e-3, whose MCC rose from 0 only as the lr fell)
sat at MCC 0 for the first 3 epochs of its 30-epoch cell, and the plateau rule stopped it.
Until a method's whole grid has run, its configs keep the family's previous sweep's pick
(`Family.previous`), or else the base lr, and say so.
The cells then train until the dev metric stops improving: PLATEAU_PATIENCE evaluations
without a new best (more on small train splits: plateau_patience), after at least 3 evaluations
or PLATEAU_MIN_SEEN examples (plateau_min_evaluations; experiments/plateau.py; the ledger's convergence rule in
experiments/claims/ledger/rules.yaml uses the same patience).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from .metrics.glue import main_metric
from .paths import results_dir


# Patience 1 stopped MiniLM LoRA on CoLA at its first noisy dip (seed 1 of commit 29a6ce9:
# dev MCC rose, fell once, and the run ended); two evaluations without a new best ride that out.
PLATEAU_PATIENCE = 2
# ...and the evaluations without a new best must span at least this many training examples: on
# a small train split an epoch is few steps, and a dev set of a few hundred items moves by a
# point or two on noise alone (glue_minilm/lora_rte seed 1 at commit 548191b: 2,490 examples,
# 277 dev items, stopped at its 5th of 30 epochs on two noisy evaluations).
PLATEAU_MIN_EXAMPLES = 5000


# ...and no run stops before it has seen PLATEAU_MIN_SEEN training examples (3 SST-2 epochs, 11
# of RTE): LoRA on RTE sat at chance (train loss ln 2) for its first three epochs, and its dev
# accuracy there, on 277 items, is noise the rule read as a plateau (glue_minilm/lora_rte seeds
# 1 and 2 at commit 70832ce stopped at epochs 6 and 5, best 56.0 and 53.1, train loss still
# falling: 0.54 and 0.59).
PLATEAU_MIN_SEEN = 25000
PLATEAU_MIN_EVALUATIONS = 3       # the engine's and the ledger's floor


def plateau_min_evaluations(train_examples: int, epochs: int) -> int:
    """Evaluations (epochs) before the plateau rule may stop a run: 3, or as many epochs of
    `train_examples` as PLATEAU_MIN_SEEN takes, never past the epoch cap."""
    return min(epochs, max(PLATEAU_MIN_EVALUATIONS, math.ceil(PLATEAU_MIN_SEEN / train_examples)))


def plateau_patience(train_examples: int) -> int:
    """Evaluations (epochs) without a new best before a run stops: PLATEAU_PATIENCE, or more
    where that many epochs of `train_examples` would not span PLATEAU_MIN_EXAMPLES."""
    return max(PLATEAU_PATIENCE, math.ceil(PLATEAU_MIN_EXAMPLES / train_examples))


# The stand-ins' short-budget lr per method, one home: the short stand-ins train at it
# (table2_minilm and table<N>_smollm2, written by scripts/make_glue_configs.py and
# make_gpt3_configs.py) and the converging stand-ins' lr sweeps take it as their grid's top.
# MiniLM, not tuned: picked for a ~60-step budget (FT 1e-4; the parameter-efficient methods 20x
# higher, BitFit higher still, as in their papers). Three probe runs on SST-2 (1,000 training
# examples, 3 epochs) guided the scale: FT 2e-5 reached 51.9% (no learning), Adapter^H 3e-4
# 65.7% and 1e-3 77.6%, so the small-budget optimum sits well above the paper's lrs.
MINILM_LR = {"ft": 1e-4, "bitfit": 5e-3, "adapter_h": 2e-3, "lora": 2e-3}
# SmolLM2 trains ~50 steps, not 2 epochs of 56k-393k examples: every lr is the paper's Table 12
# value scaled up 5x (FT 10x), untuned; the same factor for every parameter-efficient method
# keeps the comparison even-handed (tests/test_config_generators.py checks the factors).
SMOLLM2_LR = {"ft": 5e-5, "pre_embed": 2.5e-3, "pre_layer": 5e-4, "bitfit": 8e-3,
              "adapter_h": 5e-4, "lora": 1e-3, "lora_pre_embed": 1e-3, "lora_pre_layer": 1e-3}
# The Table 3 stand-in's short-budget lrs (conf/experiment/e2e_smollm2, 400 steps, untuned): FT
# 5e-5, LoRA (r = 4, alpha = 32) 5e-4; the converging stand-in's sweep (gpt2_smollm2) starts there.
E2E_SMOLLM2_LR = {"ft": 5e-5, "lora": 5e-4}
# scaling_smollm2's cells swept on their own (LoRA with a prefix) and the method each trains
SCALING_SMOLLM2_SWEPT = {"lora_pe_qv_r8": "lora_pre_embed", "lora_pl_qv_r8": "lora_pre_layer"}
# gpt3_smollm2's cells (Table 4's stand-in rows) and the method each trains
GPT3_SMOLLM2_CELLS = {"lora_qv_r8": "lora", "ft": "ft", "lora_qv_r1": "lora",
                      "adapter_h_r8": "adapter_h", "adapter_h_r1": "adapter_h",
                      "pre_embed": "pre_embed", "pre_layer": "pre_layer"}


@dataclass(frozen=True)
class Family:
    folder: str                   # conf/experiment/<folder>/
    sweep_cell: str               # the sweep's experiment, {method} filled in
    cells: tuple[str, ...]        # every experiment of a method, {method} filled in
    base_lr: dict                 # method -> its short-budget lr (the grid's top)
    metric: str                   # the dev metric the sweep is judged by
    analysis: str                 # runs/<analysis>/<method>/lr_<lr>, analysis/<analysis>.json
    # None: a sweep run is the sweep cell's whole recipe (to its plateau); n: the first n
    # epochs of the cell's schedule (the cheaper proxy, for a family whose runs take hours)
    sweep_epochs: int | None = 3
    # an earlier sweep of this family under a superseded rule (analysis/<previous>.json): its
    # pick holds for a method until this sweep has finished for it, so the runs made at it
    # stay the runs their configs describe until the new pick replaces them
    previous: str | None = None
    # overrides every sweep run takes besides its lr and epochs (E2E: decode one test source,
    # as the sweep reads the valid loss, not the BLEU of a decode that takes longer than training)
    sweep_overrides: str = ""


FAMILIES = {
    "glue_minilm": Family(
        "glue_minilm", "glue_minilm/{method}_cola",
        tuple(f"glue_minilm/{{method}}_{t}" for t in ("sst2", "mrpc", "cola", "rte", "stsb")),
        {m: MINILM_LR[m] for m in ("ft", "lora", "bitfit", "adapter_h")},
        # runs/ and analysis/lr_sweep_minilm keep the first sweep, whose schedule was squeezed
        # into its 3 epochs (see the module's docstring)
        f"dev/{main_metric('cola')}", "lr_sweep_glue_minilm", sweep_epochs=None,
        previous="lr_sweep_minilm"),
    "gpt3_smollm2": Family(
        "gpt3_smollm2", "gpt3_smollm2/sst2_gen/{method}",
        tuple(f"gpt3_smollm2/{t}/{{method}}" for t in ("sst2_gen", "rte_gen", "samsum")),
        {cell: SMOLLM2_LR[method] for cell, method in GPT3_SMOLLM2_CELLS.items()},
        "dev/accuracy", "lr_sweep_smollm2"),
    # App. E's LoRA with a prefix (Table 15's cells of claim 16): methods of their own, so an lr
    # sweep of their own, as every other method has (issue #23: one rule for every method)
    "scaling_smollm2": Family(
        "scaling_smollm2", "scaling_smollm2/sst2_gen/{method}", ("scaling_smollm2/sst2_gen/{method}",),
        {cell: SMOLLM2_LR[m] for cell, m in SCALING_SMOLLM2_SWEPT.items()}, "dev/accuracy",
        "lr_sweep_scaling_smollm2"),
    # Table 3 on E2E: swept by the valid loss after the first epoch of the cell's schedule
    "gpt2_smollm2": Family(
        "gpt2_smollm2", "gpt2_smollm2/e2e/{method}", ("gpt2_smollm2/e2e/{method}",),
        dict(E2E_SMOLLM2_LR), "valid_loss", "lr_sweep_gpt2_smollm2", sweep_epochs=1,
        sweep_overrides="data.max_eval_sources=1"),
}


# A best lr at an end of the grid may have a better one past it: the sweep then adds one lr
# (x2 or x1/2) past that end, up to MAX_EXTENSIONS times; where no lr beat the constant
# predictor (experiments/analysis/lr_sweep.py, rule 5) it adds a lower one, since the grid's
# top is a short-budget lr and a long schedule wants less (BitFit on CoLA: MCC 0 at 2.5e-3).
MAX_EXTENSIONS = 2


def _lr(value: float) -> float:
    return float(f"{value:.3g}")


def base_grid(family: Family, method: str) -> list[float]:
    base = family.base_lr[method]
    return [_lr(base * f) for f in (0.25, 0.5, 1.0)]


def _sweep_doc(family: Family, results: Path | None, name: str | None = None) -> dict | None:
    path = (results or results_dir()) / "analysis" / f"{name or family.analysis}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _best_of(grid: list[float], doc: dict | None, method: str):
    """The lr sweep's rule (best_lr) over `grid`, from the analysis's per-lr means; None while
    some lr of `grid` has not run."""
    from .analysis.lr_sweep import best_lr  # the rule, one home

    entry = (doc or {}).get("methods", {}).get(method)
    means = (entry or {}).get("mean_by_lr", {})
    if not all(f"{lr:g}" in means for lr in grid):
        return None
    points = {lr: [math.nan if means[f"{lr:g}"] is None else means[f"{lr:g}"]] for lr in grid}
    return best_lr(points, bool(doc.get("lower_is_better")), float(doc.get("tie_tolerance", 0)),
                   entry.get("chance"))


def sweep_grid(family: Family, method: str, results: Path | None = None) -> list[float]:
    """The lrs a method's sweep runs: the base grid, extended past an end while the best of
    the lrs run so far lies there (MAX_EXTENSIONS)."""
    grid, doc = base_grid(family, method), _sweep_doc(family, results)
    for _ in range(MAX_EXTENSIONS):
        best = _best_of(grid, doc, method)
        if best is None:
            break
        if best.lr is None or best.at_edge == "low":
            grid = [_lr(grid[0] / 2), *grid]
        elif best.at_edge == "high":
            grid = [*grid, _lr(grid[-1] * 2)]
        else:
            break
    return grid


def sweep_lines(family: Family, methods: list[str], results: Path | None = None) -> list[str]:
    """The sweep's runs as the results so far ask for them: run it, analyse it, and list it
    again until the list stops growing (scripts/converge.sh)."""
    lines = []
    for m in methods:
        for lr in sweep_grid(family, m, results):
            name = f"{family.analysis}/{m}/lr_{lr:g}"
            budget = (f" train.run_epochs={family.sweep_epochs} train.patience=null"
                      if family.sweep_epochs else "")
            budget += f" {family.sweep_overrides}" if family.sweep_overrides else ""
            lines.append(f"{name}/seed1 experiment={family.sweep_cell.format(method=m)} seed=1 "
                         f"logger=none train.lr={lr:g}{budget} run.name={name} "
                         f"run.table={family.analysis}")
    return lines


def run_lines(family: Family, methods: list[str], seeds: list[int]) -> list[str]:
    """Seed by seed, so a stopped grid leaves whole seeds behind."""
    return [f"{cell.format(method=m)}/seed{s} experiment={cell.format(method=m)} seed={s} "
            "logger=none" for s in seeds for m in methods for cell in family.cells]


def chosen_lr(family: Family, method: str, results: Path | None = None) -> tuple[float, str]:
    """(lr, where it comes from): the sweep's best once its whole grid, extensions included,
    has run."""
    grid = sweep_grid(family, method, results)
    best = _best_of(grid, _sweep_doc(family, results), method)
    source = f"results/analysis/{family.analysis}.json"
    if best is None:
        earlier = _sweep_doc(family, results, family.previous) if family.previous else None
        entry = (earlier or {}).get("methods", {}).get(method)
        if entry and entry.get("best_lr"):
            return entry["best_lr"], (f"the previous sweep's pick (results/analysis/"
                                      f"{family.previous}.json) until {source} has finished")
        return family.base_lr[method], "the short-budget lr: its lr sweep has not run yet"
    if best.lr is None:
        return family.base_lr[method], (f"the short-budget lr: no lr of its sweep ({source}) "
                                        "beat the constant predictor")
    edge = f", at the grid's {best.at_edge} edge" if best.at_edge else ""
    return best.lr, f"best of the lr sweep ({source}{edge})"


def sweep_finished(family: Family, method: str, results: Path | None = None) -> bool:
    """Whether the method's whole sweep, extensions included, has run (its pick is final)."""
    return _best_of(sweep_grid(family, method, results), _sweep_doc(family, results), method) is not None


def sweep_status(family: Family, methods: list[str], results: Path | None = None) -> str:
    """A table: per method, the lrs its sweep wants (extensions included), the dev metric of
    each one run so far, and the lr its configs take with where it comes from."""
    doc = _sweep_doc(family, results) or {}
    rows = [f"| method | {family.metric} by lr (-: not run yet) | configs' lr | from |",
            "|---|---|---|---|"]
    for m in methods:
        means = doc.get("methods", {}).get(m, {}).get("mean_by_lr", {})
        scores = ", ".join(f"{lr:g}: " + (f"{means[f'{lr:g}']:.3f}" if means.get(f"{lr:g}")
                                          is not None else "-")
                           for lr in sweep_grid(family, m, results))
        lr, source = chosen_lr(family, m, results)
        rows.append(f"| {m} | {scores} | {lr:g} | {source} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.converge", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["sweep", "runs", "status"])
    p.add_argument("family", choices=sorted(FAMILIES))
    p.add_argument("--methods", nargs="*", default=None)
    p.add_argument("--seeds", nargs="*", type=int, default=[1, 2, 3])
    args = p.parse_args(argv)
    family = FAMILIES[args.family]
    methods = args.methods or list(family.base_lr)
    unknown = [m for m in methods if m not in family.base_lr]
    if unknown:
        p.error(f"{args.family} has no method {unknown}: choose from {list(family.base_lr)}")
    if args.what == "status":
        print(sweep_status(family, methods))
        return 0
    lines = (sweep_lines(family, methods) if args.what == "sweep"
             else run_lines(family, methods, args.seeds))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
