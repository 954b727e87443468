"""Writes the converging SmolLM2 stand-in of Table 3 (issue #23): LoRA and FT on E2E trained until
the valid loss stops improving, 3 seeds, each at its lr sweep's pick (experiments/converge.py,
family gpt2_smollm2; `scripts/converge.sh gpt2_smollm2` runs the sweep, then this, then the cells).

- `conf/experiment/gpt2_smollm2/e2e/<method>.yaml`: what differs by method (lr, row).
- `conf/profile/standin_smollm2_e2e_plateau.yaml`: what both share.

The data and decoding are the short stand-in's (conf/experiment/e2e_smollm2: the first 3,200
training lines, 400 valid lines, beam 5 over the 630 test MRs), so the two differ only in how
long they train. Run `python scripts/make_gpt2_configs.py` after editing; the files are committed.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conf_out import EXPERIMENTS as CONF, select_profile, write_profile  # noqa: E402
from experiments.converge import FAMILIES, PLATEAU_PATIENCE, chosen_lr  # noqa: E402

FAMILY = "gpt2_smollm2"
PROFILE = "standin_smollm2_e2e_plateau"
# Table 3's LoRA (r = 4 on Wq, Wv, alpha 32: conf/method/lora.yaml's defaults) and FT
ROWS = {"lora": "SmolLM2-135M LoRA (stand-in, to a plateau)",
        "ft": "SmolLM2-135M FT (stand-in, to a plateau)"}
# up to 10 epochs of the 3,200 lines (the short stand-in trains 1), stopped once the valid loss
# has not improved for PLATEAU_PATIENCE epochs (after at least 3)
SHARED = {"train": {"epochs": 10, "patience": PLATEAU_PATIENCE, "autocast": "bf16",
                    "batch_order": "length_buckets", "warmup_steps": 40, "log_every": 20,
                    "save_every": 100},
          "data": {"max_train": 3200, "max_valid": 400},
          "decode": {"num_beams": 5, "early_stopping": True, "batch_size": 30}}


def render(method: str) -> str:
    lr, source = chosen_lr(FAMILIES[FAMILY], method)
    return "\n".join([
        "# @package _global_",
        f"# {ROWS[method]} on E2E: SmolLM2-135M trained until the valid loss stops improving",
        "# (issue #23's converging stand-in for Table 3). Written by scripts/make_gpt2_configs.py.",
        "defaults:", "  - override /model: smollm2_135m", f"  - override /method: {method}",
        "  - override /task: e2e", "  - override /train: nlg", "  - override /decode: beam",
        select_profile(PROFILE), "run:", f"  name: {FAMILY}/e2e/{method}", "  table: 3",
        f"  row: \"{ROWS[method]}\"", "train:", f"  lr: {lr:g}  # {source}", ""])


def main() -> None:
    shutil.rmtree(CONF / FAMILY, ignore_errors=True)
    written = []
    for method in ROWS:
        path = CONF / FAMILY / "e2e" / f"{method}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(method))
        written.append(path)
    written.append(write_profile(
        PROFILE, "The converging SmolLM2-135M stand-in of Table 3 on E2E (conf/experiment/gpt2_smollm2):\n"
        "the short stand-in's data and decoding (standin_smollm2_e2e), trained up to 10 epochs until\n"
        "the valid loss stops improving (train.patience), bf16 autocast. Each file keeps its lr.",
        "make_gpt2_configs.py", SHARED))
    print(f"wrote {len(written)} files under {CONF.parent}")


if __name__ == "__main__":
    main()
