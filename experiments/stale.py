"""Run records of a recipe that no longer exists: a swept family's record (experiments/converge.py)
trained at an lr its experiment file no longer states, after an lr sweep picked another, or with
method settings the file no longer states (e.g. PreLayer's `init`, added with a new default; a
record without a key the file now sets counts as different). The tables and the ledger find
records by experiment name, so such a record would be read as a run of the new recipe.
`python -m experiments.stale` lists them; `--move-to DIR` moves each run's folder to
DIR/<its path under runs/> (out of results/, so the grid runs the recipe the file states; a
committed run stays in git's history).
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


def stale_records(records: list[Path]) -> list[tuple[Path, dict[str, tuple]]]:
    """(record, {setting: (as the record ran it, as the file states it)}) for each record of a
    swept family that differs from its experiment file in train.lr or any method.* setting."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    by_experiment: dict[str, list[tuple[Path, dict]]] = {}
    for path in records:
        data = json.loads(path.read_text(encoding="utf-8"))
        if str(data.get("experiment", "")).startswith(SWEPT):
            by_experiment.setdefault(data["experiment"], []).append((path, data["config"]))
    out = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for experiment, runs in sorted(by_experiment.items()):
            cfg = compose(config_name="config", overrides=[f"experiment={experiment}"])
            states = _recipe(OmegaConf.to_container(cfg, resolve=True))
            for path, config in runs:
                ran = _recipe(config)
                diff = {k: (ran.get(k), states.get(k)) for k in sorted(set(ran) | set(states))
                        if ran.get(k) != states.get(k)
                        and not (k.startswith("method.") and k not in states)}
                if diff:
                    out.append((path, diff))
    return out


def _recipe(config: dict) -> dict:
    """The settings a sweep or a method change can move: train.lr and every method.* key."""
    method = config.get("method") or {}
    return {"train.lr": (config.get("train") or {}).get("lr"),
            **{f"method.{k}": v for k, v in method.items()}}


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
    for record, diff in stale:
        folder = record.parent
        line = f"{folder.relative_to(runs)}: " + "; ".join(
            f"trained with {k} {ran}, its file now states {states}"
            for k, (ran, states) in diff.items())
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
