"""The run list of a sweep for `scripts/run_grid.sh`: one line per (experiment file, seed) under
the folders or files named, in the order given.

A file that names another's configuration (`run.same_as`, experiments/same_as.py) is run as
that owner, so one run fills both tables and no configuration is trained twice.

    python -m experiments.grid table6_smollm2/samsum table5_smollm2/samsum --seeds 1 2 > list
    scripts/run_grid.sh list          # skips complete runs, resumes unfinished ones
"""
from __future__ import annotations

import argparse
import sys

from .paths import CONF_DIR
from .same_as import owner_of

EXPERIMENT_DIR = CONF_DIR / "experiment"


def experiments_under(name: str) -> list[str]:
    """The experiment files `name` names: one file (`table6_smollm2/samsum/qv_r8`) or every
    file below a folder (`table6_smollm2/samsum`), sorted."""
    path = EXPERIMENT_DIR / name
    if path.with_suffix(".yaml").is_file():
        return [name]
    if path.is_dir():
        found = sorted(str(p.relative_to(EXPERIMENT_DIR).with_suffix(""))
                       for p in path.rglob("*.yaml"))
        if found:
            return found
    raise FileNotFoundError(f"{name!r} names no experiment file or folder of them under "
                            f"{EXPERIMENT_DIR} (e.g. table6_smollm2/samsum or "
                            "table6_smollm2/samsum/qv_r8)")


def grid_lines(names: list[str], seeds: list[int]) -> list[str]:
    experiments = dict.fromkeys(owner_of(e) for n in names for e in experiments_under(n))
    return [f"{e}/seed{s} experiment={e} seed={s} logger=none" for e in experiments for s in seeds]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.grid", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="+", help="experiment files or folders under conf/experiment")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    args = parser.parse_args(argv)
    try:
        lines = grid_lines(args.names, args.seeds)
    except FileNotFoundError as err:
        parser.error(str(err))
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
