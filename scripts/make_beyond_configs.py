"""Write the experiment files of issue #27 (beyond the paper) under
conf/experiment/beyond_smollm2/: the lr sweep, rank learning curves, MLP vs attention at a
matched parameter count, batch-size sensitivity and the forgetting runs, all on SmolLM2-135M.

    python scripts/make_beyond_configs.py          # rewrites the folder; commit the result

Every budget below is a CPU budget for the stand-in, stated once here: what all files share in
their profile (conf/profile/standin_smollm2_beyond.yaml), the rest in each file (and so in each
record's config); none is the later works' own setting.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

from conf_out import EXPERIMENTS, select_profile, write_profile
from make_gpt3_configs import chosen_separators  # the measured separator per task

OUT = EXPERIMENTS / "beyond_smollm2"
# What every file shares, held once by its profile: one epoch, bf16 autocast (float32 weights
# and AdamW state: the CPU budget, as the converging stand-ins, experiments/converge.py).
PROFILE = "standin_smollm2_beyond"
SHARED = {"train": {"epochs": 1, "autocast": "bf16"}}

ALL = ("q", "k", "v", "o", "mlp")
ATTN = ("q", "k", "v", "o")
ALPHA = 32        # LoRA Without Regret: α = 32 for every r, so the best lr hardly moves with r

# (a) one lr grid for every method, half-decade steps (LoRA Without Regret sweeps on a log grid)
LR_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
LR_METHODS = {"ft": None, "lora_r1": 1, "lora_r8": 8, "lora_r64": 64}
# (c) rank learning curves: LoRA on every layer at r = 1 ... 256 over FT; LoRA's lr 10x FT's
# (the (a) finding; replace with the sweep's best ratio once it is measured)
CURVE_RANKS = (1, 4, 16, 64, 256)
FT_LR, LORA_LR = 5e-5, 5e-4
# (b) matched parameter count on SmolLM2 (d = 576, kv 192, MLP 1536): LoRA parameters per layer
# are r·(576+576) for q and o, r·(576+192) for k and v (3840·r for attention), r·(576+1536) for
# each of gate, up and down (6336·r for the MLP). 3840·53 = 10176·20 = 203,520 per layer exactly;
# MLP-only at r = 32 has 202,752 (0.4% fewer).
MATCHED = {"attn_r53": (ATTN, 53), "all_r20": (ALL, 20), "mlp_r32": (("mlp",), 32)}
# (d) batch sizes; the lr is rescaled by sqrt(batch / BASE_BATCH) (square-root scaling for
# Adam), recorded in every file, so that the comparison is of batch size, not of a stale lr
BATCHES, BASE_BATCH = (8, 32, 128), 32
# forgetting: tuned on SAMSum (learning), scored on what it was not tuned on (forgetting)
FORGET_RANK = 16
# Batches of similar length (experiments/batch_order.py): SST-2 and E2E lines vary so much that
# random batches are half padding (0.50 in the mlp_vs_attn records); buckets halve the compute.
# The groups whose records were run in the official order (mlp_vs_attn, forgetting) keep it, so
# that every seed of a cell ran the same configuration.
BUCKETS = {"batch_order": "length_buckets"}

SST2 = {"task": "sst2_gen", "train": "gpt3",
        "body": {"task": {"seq_len": 96}, "decode": {"max_context_tokens": 88},
                 "data": {"max_train": 800, "sample_seed": 0, "max_eval_sources": 400}},
        "train_body": {"batch_size": 16, "warmup_steps": 5, "log_every": 5, "save_every": 10}}


def method(types: tuple[str, ...] | None, r: int | None) -> tuple[str, dict | None]:
    if types is None:
        return "ft", None
    # a list of types replaces conf/method/lora.yaml's default wholesale (a dict would merge)
    return "lora", {"targets": list(types), "r": r, "alpha": ALPHA, "dropout": 0.0}


def _yaml(value, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict) and not all(isinstance(x, (int, float)) for x in v.values()):
                lines.append(f"{pad}{k}:\n{_yaml(v, indent + 2)}")
            elif isinstance(v, dict):
                lines.append(f"{pad}{k}: {{" + ", ".join(f"{a}: {_scalar(b)}" for a, b in v.items()) + "}")
            elif isinstance(v, list):
                lines.append(f"{pad}{k}: [" + ", ".join(str(x) for x in v) + "]")
            else:
                lines.append(f"{pad}{k}: {_scalar(v)}")
        return "\n".join(lines)
    return pad + _scalar(value)


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}" if "e" not in f"{v:.6g}" else f"{v:.1e}"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a YAML double-quoted scalar, \n kept
    return str(v)


def write(name: str, why: str, method_name: str, params: dict | None, base: dict,
          train: dict, extra: dict | None = None) -> Path:
    path = OUT / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"run": {"name": f"beyond_smollm2/{name}", "row": name.replace("/", " ")}}
    if params:
        body["method"] = params
    body["train"] = dict(train)
    for key, value in base["body"].items():
        body[key] = dict(value)
    # an instruct model needs a separator it can continue
    separator = chosen_separators().get(base["task"])
    if separator is not None:
        body["prompt"] = {"separator": separator}
    for key, value in (extra or {}).items():
        body.setdefault(key, {}).update(value)
    text = ("# @package _global_\n"
            f"# Issue #27 (beyond the paper): {why}\n"
            "# Offline stand-in on SmolLM2-135M's real weights at a CPU budget.\n"
            "# Written by scripts/make_beyond_configs.py: edit that script, not this file.\n"
            "defaults:\n"
            "  - override /model: smollm2_135m\n"
            f"  - override /method: {method_name}\n"
            f"  - override /task: {base['task']}\n"
            f"  - override /train: {base['train']}\n{select_profile(PROFILE)}\n"
            + _yaml(body) + "\n")
    path.write_text(text, encoding="utf-8")
    return path


def lr_tag(lr: float) -> str:
    return f"lr_{lr:.0e}".replace("e-0", "e-")


def lr_sweep() -> list[Path]:
    out = []
    for label, r in LR_METHODS.items():
        name, params = method(None if r is None else ALL, r)
        for lr in LR_GRID:
            out.append(write(f"lr_sweep/{label}/{lr_tag(lr)}",
                             f"LoRA Without Regret (a), the lr sweep: {label} at lr {lr:g} "
                             "(the same grid for every method)", name, params, SST2,
                             {**SST2["train_body"], **BUCKETS, "lr": lr}))
    return out


def rank_curves() -> list[Path]:
    e2e = {"task": "e2e", "train": "nlg",
           "body": {"data": {"max_train": 3200, "max_valid": 200, "max_eval_sources": 100},
                    "decode": {"num_beams": 5, "early_stopping": True, "batch_size": 30}}}
    train = {"batch_size": 8, "warmup_steps": 40, "log_every": 10, "save_every": 50, **BUCKETS}
    out = [write("rank_curves/ft", "LoRA Without Regret (c): FT's learning curve on E2E",
                 "ft", None, e2e, {**train, "lr": FT_LR})]
    for r in CURVE_RANKS:
        name, params = method(ALL, r)
        out.append(write(f"rank_curves/lora_r{r}", f"LoRA Without Regret (c): LoRA r={r} on "
                         "every layer, its learning curve against FT's", name, params, e2e,
                         {**train, "lr": LORA_LR}))
    return out


def mlp_vs_attention() -> list[Path]:
    out = []
    for label, (types, r) in MATCHED.items():
        name, params = method(types, r)
        out.append(write(f"mlp_vs_attn/{label}", "LoRA Without Regret (b): LoRA on "
                         f"{'+'.join(types)} at r={r}, parameter count matched across files",
                         name, params, SST2, {**SST2["train_body"], "lr": LORA_LR}))
    return out


def batch_size() -> list[Path]:
    out = []
    base = {**SST2, "body": {**SST2["body"], "data": {**SST2["body"]["data"], "max_train": 3200}}}
    for label, lr0 in (("ft", FT_LR), ("lora_r8", LORA_LR)):
        name, params = method(None if label == "ft" else ALL, 8)
        for b in BATCHES:
            lr = lr0 * math.sqrt(b / BASE_BATCH)
            out.append(write(f"batch_size/{label}_b{b}", f"LoRA Without Regret (d): {label} at "
                             f"batch {b}, lr {lr0:g} x sqrt({b}/{BASE_BATCH}) = {lr:.3g}",
                             name, params, base,
                             {**SST2["train_body"], **BUCKETS, "batch_size": b,
                              "lr": float(f"{lr:.3g}"),
                              "warmup_steps": max(1, 400 // b)}))
    return out


def forgetting() -> list[Path]:
    samsum = {"task": "samsum", "train": "gpt3",
              "body": {"task": {"seq_len": 512}, "decode": {"max_context_tokens": 384},
                       "data": {"max_train": 400, "sample_seed": 0, "max_eval_sources": 100}}}
    train = {"batch_size": 8, "warmup_steps": 5, "log_every": 5, "save_every": 10}
    out = [write("forgetting/base", "LoRA Learns Less and Forgets Less: the untrained model on "
                 "SAMSum (nothing trains), the level learning is measured from", "none", None,
                 samsum, {**train, "lr": 0.0})]
    out += [write("forgetting/ft", "LoRA Learns Less and Forgets Less: FT on SAMSum (learning); "
                 "its weights are scored on what it was not tuned on (forgetting) and give "
                 "FT's ΔW spectrum", "ft", None, samsum, {**train, "lr": FT_LR})]
    for label, types in ((f"lora_r{FORGET_RANK}", ALL), (f"lora_attn_r{FORGET_RANK}", ATTN)):
        name, params = method(types, FORGET_RANK)
        out.append(write(f"forgetting/{label}", "LoRA Learns Less and Forgets Less: LoRA "
                         f"({'+'.join(types)}, r={FORGET_RANK}) on SAMSum at FT's budget",
                         name, params, samsum, {**train, "lr": LORA_LR}))
    return out


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    written = lr_sweep() + rank_curves() + mlp_vs_attention() + batch_size() + forgetting()
    write_profile(PROFILE, "Issue #27's runs beyond the paper (conf/experiment/beyond_smollm2): SmolLM2-135M's real\n"
                  "weights at a CPU budget; each file keeps its task's data, batch, warm-up and lr.",
                  "make_beyond_configs.py", SHARED)
    print(f"wrote {len(written)} files under {OUT} and the profile {PROFILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
