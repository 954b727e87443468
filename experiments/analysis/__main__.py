"""`python -m experiments.analysis {figure3,figure4,figure6,figure7,figure8,table7,all}`: the
Section 7 analyses from the run records under results/runs, written to results/analysis/;
`beyond` (spectrum, spectrum_minilm, lr_sweep, rank_curves, batch_size, learning_vs_forgetting) and `forgetting`
for issue #27, their figures in results/figures/.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..converge import FAMILIES as CONVERGE_FAMILIES
from ..paths import results_dir
from . import (batch_size, figures, forgetting, forgetting_figure, forgetting_minilm, lr_sweep,
               rank_curves, spectrum, spectrum_minilm)
from . import table7
from .inputs import DEFAULT_PREFIX, DEFAULT_TASK, InputMismatchError, MissingInputError, RunStore

def _sweep_output(family):
    """The lr-sweep analysis of one converging stand-in family."""
    def build(store, out):
        return lr_sweep.build(store.results, out, out.parent / "figures", metric=family.metric,
                              folder=family.analysis, name=family.analysis,
                              command=f"scripts/converge.sh {family.folder}")
    return build


OUTPUTS = {
    "figure3": lambda store, out: figures.rank_similarity(store, out, 3),
    "figure4": lambda store, out: figures.seed_similarity(store, out, 4),
    "figure6": lambda store, out: figures.rank_similarity(store, out, 6),
    "figure7": lambda store, out: figures.seed_similarity(store, out, 7),
    "figure8": figures.weight_similarity,
    "table7": table7.build,
    # beyond the paper (issue #27): figures go beside the analysis folder, in figures/
    "spectrum": spectrum.build,
    "spectrum_minilm": spectrum_minilm.build,   # FT's ΔW on the converged Table 2 stand-in
    "lr_sweep": lambda store, out: lr_sweep.build(store.results, out, out.parent / "figures",
                                                  metric=store.metric),
    # issue #23: the lr per method of the converging stand-ins (experiments/converge.py)
    **{f.analysis: _sweep_output(f) for f in CONVERGE_FAMILIES.values()},
    "rank_curves": lambda store, out: rank_curves.build(store.results, out, out.parent / "figures"),
    "batch_size": lambda store, out: batch_size.build(store.results, out, metric=store.metric,
                                                      figures=out.parent / "figures"),
    "forgetting": forgetting.build,   # evaluates the tuned models: minutes, not seconds
    "forgetting_minilm": forgetting_minilm.build,
    "learning_vs_forgetting": lambda store, out: forgetting_figure.build(out, out.parent / "figures"),
}
# `all`: the paper's Section 7 outputs. `beyond`: what `make claims` rebuilds before the
# ledger for issue #27, read from records and JSON with no model evaluation (`forgetting`
# evaluates models and runs on its own: `make forgetting`).
GROUPS = {"all": ("figure3", "figure4", "figure6", "figure7", "figure8", "table7"),
          "beyond": ("spectrum", "spectrum_minilm", "lr_sweep", "rank_curves", "batch_size",
                     "learning_vs_forgetting"),
          "forgetting_all": ("forgetting", "forgetting_minilm")}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m experiments.analysis", description=__doc__)
    p.add_argument("what", choices=[*OUTPUTS, *GROUPS])
    p.add_argument("--results", type=Path, default=None,
                   help="results root holding runs/ (default: LORA_REPRO_RESULTS or results/)")
    p.add_argument("--adapters-root", type=Path, default=None,
                   help="folder holding <experiment>/seed<k>/adapter/ when adapters live apart "
                        "from their records (e.g. a git-ignored weights folder)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: <results>/analysis)")
    p.add_argument("--task", default=DEFAULT_TASK, help=f"task of the runs (default {DEFAULT_TASK})")
    p.add_argument("--prefix", default=DEFAULT_PREFIX,
                   help=f"experiment group: runs are <prefix>/<task>/qv_r<r> (default {DEFAULT_PREFIX})")
    p.add_argument("--metric", default=None,
                   help="lr_sweep, batch_size: the final value each run is judged by, e.g. "
                        "dev_loss (from the learning curve; lower is better) or dev/accuracy "
                        "(default: each run's own dev metric)")
    p.add_argument("--strict", action="store_true", help="with `all` or `beyond`: exit 1 when anything is missing")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    results = args.results or results_dir()
    out = args.out or Path(results) / "analysis"
    store = RunStore(results, args.adapters_root, task=args.task, prefix=args.prefix)
    store.metric = args.metric
    names = list(GROUPS.get(args.what, [args.what]))
    missing, failed = {}, {}
    for name in names:
        try:
            written = OUTPUTS[name](store, out)
        except (MissingInputError, InputMismatchError) as err:
            if len(names) == 1:
                print(f"error: {name}: {err}", file=sys.stderr)
                return 1
            (missing if isinstance(err, MissingInputError) else failed)[name] = str(err)
            continue
        print(f"[analysis] {name}: " + ", ".join(str(p) for p in written))
    if missing:
        print(f"[analysis] {len(missing)} of {len(names)} not built, inputs missing:")
        for name, why in missing.items():
            print(f"  {name}: " + why.replace("\n", "\n    "))
        commands = dict.fromkeys(m.group(0) for why in missing.values()
                                 for m in re.finditer(r"python -m experiments\.run [^\n]*", why))
        if commands:
            print("[analysis] to produce them:\n  " + "\n  ".join(commands))
    for name, why in failed.items():
        print(f"[analysis] {name} failed: {why}", file=sys.stderr)
    return 1 if failed or (missing and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
