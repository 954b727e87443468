"""The spectrum of ΔW (LoRA Learns Less and Forgets Less, §5; a Section 7 analysis here): per
weight type, the rank needed for 90% of ΔW's energy Σσ² (`lora_core.analysis.energy_rank`),
for FT's ΔW = W_tuned − W_pretrained and for LoRA's (α/r)·B·A, beside LoRA's r.
Writes `analysis/spectrum.json`. Owns `module_deltas`, `lora_deltas` and `spectrum_by_type`.
"""
from __future__ import annotations

# Weight types are the module names the update sits in (q_proj, ..., gate_proj, up_proj,
# down_proj for the Llama family), each read in every block; a type's summary is the median
# over blocks, with the spread beside it. The ratio that the later work's claim is about is
# FT's median energy rank over LoRA's r, the smallest over types (the most favourable to
# LoRA) being the one the ledger reads.

import json
import re
import statistics
from pathlib import Path

import torch

from lora_core.analysis import energy_rank, lora_delta
from lora_core.families import FAMILIES

from .. import records
from .inputs import MissingInputError, load_run, run_command

FRACTION = 0.9
FT_RUN = "beyond_smollm2/forgetting/ft"
LORA_RUN = "beyond_smollm2/forgetting/lora_r16"
PAPER = {"work": "Biderman et al. (2024), LoRA Learns Less and Forgets Less, §5",
         "finding": "Full fine-tuning's ΔW has a rank 10-100x higher than typical LoRA ranks "
                    "(rank needed to explain 90% of its spectrum's energy)."}


def _block_and_path(name: str, blocks: str) -> tuple[int, str] | None:
    """`model.layers.3.self_attn.q_proj.weight` -> (3, "self_attn.q_proj"); None outside the
    blocks."""
    m = re.search(rf"(?:^|\.){re.escape(blocks)}\.(\d+)\.(.+)\.weight$", name)
    if not m or "norm" in m.group(2).split(".")[-1].lower():
        return None
    return int(m.group(1)), m.group(2)


def _by_type(by_path: dict[tuple[str, int], torch.Tensor]) -> dict[tuple[str, int], torch.Tensor]:
    """Keys (path in block, block) -> (weight type, block): a path's last name where no other
    path ends in it (Llama's q_proj, BERT's query), else the whole path (BERT's three `dense`:
    attention.output.dense, intermediate.dense, output.dense)."""
    paths = {p for p, _ in by_path}
    last = [p.split(".")[-1] for p in paths]
    name = {p: p.split(".")[-1] if last.count(p.split(".")[-1]) == 1 else p for p in paths}
    return {(name[p], b): d for (p, b), d in by_path.items()}


def module_deltas(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                  blocks: str) -> dict[tuple[str, int], torch.Tensor]:
    """FT's ΔW = tuned − base for every 2-D weight inside the transformer blocks, keyed by
    (weight type, block). `tuned` must hold the weights in `base`'s names and shapes."""
    out = {}
    for name, w in tuned.items():
        where = _block_and_path(name, blocks)
        if where is None or w.ndim != 2:
            continue
        if name not in base:
            raise KeyError(f"{name} is in the tuned weights but not in the pretrained model "
                           "(another model or family?)")
        if base[name].shape != w.shape:
            raise ValueError(f"{name}: tuned {tuple(w.shape)} vs pretrained "
                             f"{tuple(base[name].shape)}")
        out[(where[1], where[0])] = w.detach().double() - base[name].detach().double()
    return _by_type(out)


def lora_deltas(tensors: dict[str, torch.Tensor], alpha: float,
                blocks: str) -> dict[tuple[str, int], torch.Tensor]:
    """LoRA's ΔW = (α/r)·B·A for every adapted module, keyed by (weight type, block)."""
    out = {}
    for name, A in tensors.items():
        if not name.endswith(".lora_A"):
            continue
        B = tensors[name[:-1] + "B"]
        where = _block_and_path(name[: -len(".lora_A")] + ".weight", blocks)
        if where is not None:
            out[(where[1], where[0])] = lora_delta(B, A, alpha / A.shape[0])
    return _by_type(out)


def spectrum_by_type(deltas: dict[tuple[str, int], torch.Tensor],
                     fraction: float = FRACTION) -> dict[str, dict]:
    """Per weight type: its energy rank in each block, their median, min and max, and the
    matrix shape (whose smaller side bounds the rank)."""
    by_type: dict[str, dict[int, torch.Tensor]] = {}
    for (t, block), d in deltas.items():
        by_type.setdefault(t, {})[block] = d
    out = {}
    for t, blocks in sorted(by_type.items()):
        ranks = [energy_rank(blocks[b], fraction) for b in sorted(blocks)]
        shape = list(next(iter(blocks.values())).shape)
        out[t] = {"shape": shape, "max_rank": min(shape), "blocks": sorted(blocks),
                  "energy_rank_by_block": ranks, "median": statistics.median(ranks),
                  "min": min(ranks), "max": max(ranks)}
    return out


def compare_to_r(ft: dict[str, dict], r: int) -> dict:
    ratios = {t: e["median"] / r for t, e in ft.items()}
    return {"lora_r": r, "ratio_to_lora_r": ratios,
            "min_ratio_to_lora_r": min(ratios.values()) if ratios else None,
            "median_energy_rank_all_types": statistics.median(
                x for e in ft.values() for x in e["energy_rank_by_block"]) if ft else None}


def _ft_weights(results: Path, experiment: str, seed: int) -> tuple[dict, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    run_dir = results / "runs" / experiment / f"seed{seed}"
    found = records.read_record(run_dir)
    record = found.to_dict() if found else None  # the typed record's JSON view
    if record is None or record.get("status") != "complete":
        raise MissingInputError(f"no complete FT run {experiment} seed {seed} (runs/{experiment}/"
                                f"seed{seed}); run "
                                f"it: {run_command(experiment, seed)}")
    files = [p for p in (record.get("weights") or {}) if p.endswith("trainable.safetensors")]
    for rel in files:
        path = Path(rel) if Path(rel).is_absolute() else results / rel
        if path.is_file():
            if records.sha256_file(path) != record["weights"][rel]:
                raise MissingInputError(f"{path}: its sha256 differs from the record's")
            return record, load_file(str(path))
    raise MissingInputError(f"{experiment} seed {seed}: FT's trained weights "
                            f"({', '.join(files) or 'trainable.safetensors'}) are not under "
                            f"{results}; they stay on the machine that trained (git-ignored). "
                            f"Rerun there or: {run_command(experiment, seed)} run.new_dir=true")


def _pretrained(record: dict) -> dict[str, torch.Tensor]:
    """The weights the run started from, under the names its model gives them (the head as
    the run's, so that an encoder's `bert.` prefix matches; the head's own weights are not
    compared)."""
    from .forgetting import pretrained_model

    head = (record["config"]["model"] or {}).get("head") or "causal_lm"
    model = pretrained_model(record, with_tokenizer=False, head=head,
                             num_labels=None if head == "causal_lm" else 2).model
    return {n: p.detach() for n, p in model.named_parameters()}


def build(store, out: Path, seed: int = 1) -> list[Path]:
    """FT's and LoRA's ΔW spectra from the forgetting runs (FT_RUN, LORA_RUN), and the figure."""
    from .beyond_records import empty_figure, kept_from_records

    png = out.parent / "figures" / "spectrum.png"
    try:
        written = _build(store, out, seed)
    except MissingInputError as err:
        if kept_from_records(out / "spectrum.json", Path(store.results)):
            return [out / "spectrum.json"]   # the weights are elsewhere; its runs are recorded
        (out / "spectrum.json").unlink(missing_ok=True)   # never outlives its runs
        empty_figure(png, "Energy rank of ΔW, FT vs LoRA's r (LoRA Learns Less and Forgets Less)",
                     str(err).split(";")[0] + "; the runs: make beyond-runs-forgetting")
        raise
    return written + [plot(json.loads(written[0].read_text(encoding="utf-8")), png)]


def plot(doc: dict, path: Path) -> Path:
    """Per weight type: FT's energy rank (median over blocks, bars from min to max), LoRA's
    B·A energy rank, LoRA's r and each type's largest possible rank."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = list(doc["ft"]["types"])
    ft = [doc["ft"]["types"][t] for t in types]
    x = range(len(types))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.errorbar(x, [e["median"] for e in ft], fmt="o", capsize=4, label="FT ΔW (median, min-max)",
                yerr=[[e["median"] - e["min"] for e in ft], [e["max"] - e["median"] for e in ft]])
    lora = doc["lora"]["types"]
    ax.plot([i for i, t in enumerate(types) if t in lora], [lora[t]["median"] for t in types
            if t in lora], "s", label="LoRA B·A (median)")
    ax.plot(x, [e["max_rank"] for e in ft], "_", ms=18, color="grey", label="largest possible")
    ax.axhline(doc["lora_r"], color="red", ls="--", lw=1, label=f"LoRA r = {doc['lora_r']}")
    ax.set_xticks(list(x), types, rotation=30)
    ax.set_yscale("log")
    ax.set_ylabel(f"rank for {doc['fraction']:.0%} of Σσ²")
    ax.set_title(f"Energy rank of ΔW per weight type, {doc['model_display']}", fontsize=10)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _build(store, out: Path, seed: int) -> list[Path]:
    results = Path(store.results)
    record, tuned = _ft_weights(results, FT_RUN, seed)
    family = record["config"]["model"].get("family", "llama")
    blocks = FAMILIES[family].blocks
    ft = spectrum_by_type(module_deltas(_pretrained(record), tuned, blocks))
    if not ft:
        raise MissingInputError(f"{FT_RUN}: its weights hold no block weights to compare")
    lora = load_run(results, LORA_RUN, seed, store.adapters_root)
    lora_spec = spectrum_by_type(lora_deltas(lora.tensors, lora.alpha, blocks))
    r = max(lora.targets.values())
    doc = {"analysis": "spectrum", "generated_by": "python -m experiments.analysis spectrum",
           "fraction": FRACTION, "model": record.get("model"),
           "model_display": record.get("model_display"), "paper": PAPER,
           "ft": {"experiment": FT_RUN, "seed": seed, "types": ft},
           "lora": {"experiment": LORA_RUN, "seed": seed, "r": r, "alpha": lora.alpha,
                    "types": lora_spec},
           **compare_to_r(ft, r),
           "runs": [{"experiment": FT_RUN, "seed": seed}, {"experiment": LORA_RUN, "seed": seed}]}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "spectrum.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path]
