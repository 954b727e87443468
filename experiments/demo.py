"""`make demo`: the Table 3 pipeline end to end at tiny scale, offline, on a CPU, in minutes.

Runs Table 3's rows (LoRA, FT, Adapter, PreLayer) in the `tiny` profile on the real E2E data,
then rebuilds a Table-3-shaped table from the records. A pipeline check: tiny random-init
models, never the paper's numbers.
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_dir

from .paths import CONF_DIR, results_dir

ROWS = ["table3/gpt2_m_lora", "table3/gpt2_m_ft", "table3/gpt2_m_adapter_l_0.37m",
        "table3/gpt2_m_prelayer"]
BANNER = ("PIPELINE CHECK AT TINY SCALE: GPT-2 M's family shrunk to 4 layers x 128 at random "
          "init, trained minutes on a slice of E2E. These are not the paper's numbers.")


def available_rows() -> list[str]:
    """The demo rows whose experiment config exists (baselines may not all be installed)."""
    return [r for r in ROWS if (CONF_DIR / "experiment" / f"{r}.yaml").exists()]


def run_demo(out: Path, profile: str = "tiny") -> Path:
    from .pipeline import run_experiment
    from .tables.cli import build_outputs

    started = time.perf_counter()
    for row in available_rows():
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=[
                f"experiment={row}", f"profile={profile}", f"paths.results={out}", "logger=none"])
        print(f"[demo] {row} ({profile} profile)", flush=True)
        run_experiment(cfg)
    report = build_outputs(out, out, tables=[3], figures=[], use_wandb=False)
    table = out / "tables" / "table3.md"
    print("\n" + BANNER + "\n")
    print(table.read_text())
    print(f"[demo] {len(available_rows())} rows in {time.perf_counter() - started:.0f} s; "
          f"records under {out / 'runs'}; table at {table}")
    if report.skipped:
        print(f"[demo] skipped records: {[str(s) for s in report.skipped]}")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="where runs and the table go (default: results/demo/<timestamp>; "
                             "a new folder each time, so nothing is overwritten)")
    parser.add_argument("--profile", default="tiny", help="tiny (default) or smoke")
    args = parser.parse_args(argv)
    out = args.out or results_dir() / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_demo(out, args.profile)


if __name__ == "__main__":
    main()
