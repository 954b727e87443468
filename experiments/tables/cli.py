"""`python -m experiments.tables`: build tables (and the figures drawn from them) from the run
records, write them, log a W&B summary run per table, and refresh `results/README.md`."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ..paper_numbers import PaperDataError, figure_numbers, load_figure, load_table, table_numbers
from ..paths import results_dir
from .aggregate import BuiltTable, build
from .collect import Skipped, scan
from .minilm import write as write_minilm
from .smollm2 import VIEWS as SMOLLM2_VIEWS
from .smollm2 import write as write_smollm2
from .figures import write_figure
from .index import write_index
from .render import to_csv, to_latex, to_markdown


@dataclass
class BuildReport:
    tables: dict = field(default_factory=dict)      # number -> BuiltTable
    written: list = field(default_factory=list)     # paths
    skipped: list = field(default_factory=list)     # every Skipped, of any table
    no_table: list = field(default_factory=list)    # complete records that name no table
    wandb_runs: list = field(default_factory=list)


# Stand-in tables the paper does not print, each written by its own module: `table=<name>`
# (or `make table<name>`) -> its writer; `all` writes every one.
STANDIN_WRITERS = {"2_minilm": write_minilm,
                   **{v.key: partial(write_smollm2, view=v) for v in SMOLLM2_VIEWS.values()}}

# Tables measured by a benchmark or an analysis rather than rebuilt from run records' metrics:
# never overwritten here.
BUILT_BY_BENCHMARKS = {1: "python -m experiments.bench.latency (make table1)",
                       7: "python -m experiments.analysis table7 (make table7), from LoRA adapters"}


def _numbers(text: str | None, known: list[int], what: str) -> list[int]:
    if text is None or str(text).strip().lower() == "all":
        return list(known)
    try:
        wanted = [int(x) for x in str(text).replace("table", "").replace("figure", "").split(",")
                  if x.strip()]
    except ValueError:
        raise SystemExit(f"{what}={text!r}: give a number, a comma list (3,13) or all") from None
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"no paper data for {what} {', '.join(map(str, unknown))}; "
                         f"known: {', '.join(map(str, known))} (experiments/paper/)")
    return wanted


def build_outputs(results: Path, out: Path, tables: list[int], figures: list[int],
                  write_tables: bool = True, use_wandb: bool = True) -> BuildReport:
    records, skipped = scan(results)
    report = BuildReport(skipped=list(skipped),
                         no_table=[r.path for r in records if r.table is None])
    needed = sorted(set(tables) | {load_figure(f).table for f in figures})
    for n in needed:
        built = build(load_table(n), records, skipped)
        report.tables[n] = built
        # skips found while building (task mismatch, superseded reruns) join the report
        report.skipped += [s for s in built.skipped if s not in report.skipped]
    figure_paths: dict[int, list[Path]] = {}
    for f in figures:
        spec = load_figure(f)
        path, _ = write_figure(spec, report.tables[spec.table], out / "figures")
        report.written.append(path)
        figure_paths.setdefault(spec.table, []).append(path)
    if write_tables:
        (out / "tables").mkdir(parents=True, exist_ok=True)
        for n in tables:
            built = report.tables[n]
            for ext, text in (("md", to_markdown(built)), ("csv", to_csv(built)),
                              ("tex", to_latex(built))):
                path = out / "tables" / f"table{n}.{ext}"
                path.write_text(text, encoding="utf-8")
                report.written.append(path)
            if use_wandb:
                run = log_wandb(built, figure_paths.get(n, []), out)
                if run:
                    report.wandb_runs.append(run)
    report.written.append(write_index(out))
    return report


def log_wandb(built: BuiltTable, figures: list[Path], out: Path) -> str | None:
    from .dashboard import log_summary  # imports wandb only when it is used

    return log_summary(built, figures, out)


def _print_report(report: BuildReport, results: Path, out: Path) -> None:
    for n, built in report.tables.items():
        with_runs = sum(r.has_runs for r in built.rows)
        print(f"Table {n}: {with_runs} row(s) of ours from {built.used_records} record(s), "
              f"{len(built.paper.rows)} paper rows, {len(built.skipped)} skipped")
    for path in report.written:
        print(f"wrote {path}")
    for run in report.wandb_runs:
        print(f"W&B summary run: {run} (upload: wandb sync {run})")
    if report.skipped:
        print(f"\nSkipped {len(report.skipped)} record(s), not averaged:", file=sys.stderr)
        for s in sorted(report.skipped, key=lambda s: s.path):
            where = f" [Table {s.table}]" if s.table is not None else ""
            print(f"  {results / s.path}{where}: {s.reason}", file=sys.stderr)
    if report.no_table:
        print(f"{len(report.no_table)} complete record(s) name no table (not in any table): "
              + ", ".join(report.no_table), file=sys.stderr)


def _hydra_style(argv: list[str]) -> list[str]:
    """`table=3` -> `--table 3`, `all` -> `--table all`, so both spellings work."""
    out = []
    for arg in argv:
        if not arg.startswith("-") and "=" in arg:
            key, value = arg.split("=", 1)
            key = key.replace("_", "-")
            if key in ("no-wandb", "wandb"):  # a switch: no_wandb=true, wandb=false
                off = value.lower() in ("1", "true", "yes") if key == "no-wandb" else \
                    value.lower() in ("0", "false", "no")
                out += ["--no-wandb"] if off else []
            else:
                out += [f"--{key}", value]
        elif arg == "all":
            out += ["--table", "all"]
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> BuildReport:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.tables", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Hydra's key=value form works too: table=3, table=3,13, table=all (or just all), "
               "figure=2 (draw that figure only), results=DIR, out=DIR.")
    parser.add_argument("--table", help="a table number, a comma list, a stand-in table ("
                        + ", ".join(STANDIN_WRITERS) + "), or all (default: all)")
    parser.add_argument("--figure", help="draw only this figure (a number, a list, or all)")
    parser.add_argument("--results", type=Path, default=None,
                        help="results directory holding runs/ (default: results/, or "
                             "$LORA_REPRO_RESULTS)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where tables/, figures/, wandb/ and README.md go (default: --results)")
    parser.add_argument("--no-wandb", action="store_true", help="skip the W&B summary runs")
    args = parser.parse_args(_hydra_style(list(sys.argv[1:] if argv is None else argv)))
    results = args.results or results_dir()
    out = args.out or results
    wanted = [] if args.table is None else [t.strip() for t in str(args.table).split(",")]
    standins = [t for t in wanted if t.removeprefix("table") in STANDIN_WRITERS]
    every = ((args.table is None and args.figure is None)
             or str(args.table).strip().lower() == "all")
    names = list(STANDIN_WRITERS) if every else [t.removeprefix("table") for t in standins]
    # written before build_outputs, whose index lists the stand-in tables it finds on disk
    written = [p for name in names for p in STANDIN_WRITERS[name](results, out)]
    if standins:
        rest = [t for t in wanted if t not in standins]
        if not rest:
            report = BuildReport(written=written + [write_index(out)])
            _print_report(report, results, out)
            return report
        args.table = ",".join(rest)
    try:
        if args.figure is not None and args.table is None:
            tables, figures, write_tables = [], _numbers(args.figure, figure_numbers(), "figure"), False
        else:
            tables = _numbers(args.table, table_numbers(), "table")
            for number, command in BUILT_BY_BENCHMARKS.items():
                if number in tables and args.table not in (None, "all"):
                    raise SystemExit(f"Table {number} is written by its benchmark: {command}")
            tables = [t for t in tables if t not in BUILT_BY_BENCHMARKS]
            figures = ([f for f in figure_numbers() if load_figure(f).table in tables]
                       if args.figure is None else _numbers(args.figure, figure_numbers(), "figure"))
            write_tables = True
        report = build_outputs(results, out, tables, figures, write_tables=write_tables,
                               use_wandb=not args.no_wandb)
        report.written = written + report.written
    except PaperDataError as err:
        raise SystemExit(f"error: {err}") from None
    _print_report(report, results, out)
    return report


__all__ = ["BuildReport", "Skipped", "build_outputs", "main"]
