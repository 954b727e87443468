"""Run records of a recipe that no longer exists: a swept family's record (experiments/converge.py)
trained at an lr its experiment file no longer states, after an lr sweep picked another. The
tables and the ledger find records by experiment name, so such a record would be read as a run
of the new recipe. `python -m experiments.stale` lists them; `--move-to DIR` moves each run's
folder to DIR/<its path under runs/> (out of results/, so the grid runs the recipe the file
states; a committed run stays in git's history).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .paths import CONF_DIR, results_dir

# the families whose lr a sweep picks and writes into their experiment files
SWEPT = ("glue_minilm/", "gpt3_smollm2/", "gpt2_smollm2/", "s7_minilm/", "s7_smollm2/", "scaling_smollm2/",
         "lowdata_smollm2/")


def stale_records(records: list[Path]) -> list[tuple[Path, float, float]]:
    """(record, its lr, the file's lr) for each record of a swept family whose lr differs."""
    from hydra import compose, initialize_config_dir

    by_experiment: dict[str, list[tuple[Path, float]]] = {}
    for path in records:
        data = json.loads(path.read_text(encoding="utf-8"))
        if str(data.get("experiment", "")).startswith(SWEPT):
            by_experiment.setdefault(data["experiment"], []).append(
                (path, data["config"]["train"]["lr"]))
    out = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for experiment, runs in sorted(by_experiment.items()):
            lr = compose(config_name="config", overrides=[f"experiment={experiment}"]).train.lr
            out += [(p, run_lr, lr) for p, run_lr in runs if run_lr != lr]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.stale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, default=None)
    p.add_argument("--move-to", type=Path, default=None)
    p.add_argument("--check", action="store_true",
                   help="exit 1 if any record is stale (scripts/converge.sh: before the cells)")
    args = p.parse_args(argv)
    runs = (args.results or results_dir()) / "runs"
    stale = stale_records(sorted(runs.glob("**/record.json")))
    for record, run_lr, lr in stale:
        folder = record.parent
        line = f"{folder.relative_to(runs)}: trained at lr {run_lr:g}, its file now states {lr:g}"
        if args.move_to:
            target = args.move_to / folder.relative_to(runs)
            if target.exists():  # never overwrite an earlier move
                p.error(f"{target} exists: choose another --move-to")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), str(target))
            line += f" -> moved to {target}"
        print(line)
    if not stale:
        print("no stale records")
    elif args.check and not args.move_to:
        print("the grid would skip these complete runs and the tables would read them as the "
              "new recipe's: move them with `python -m experiments.stale --move-to DIR`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
