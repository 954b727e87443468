"""Figures 3, 4, 6, 7 and 8 of the paper (§7.2, App. H.1, H.3) from LoRA run records: φ grids
computed by `lora_core.analysis`, written as `figureN.json` (numbers, model, runs, the paper's
finding) and `figureN.png` (heat-maps) under the output folder.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from lora_core.analysis import random_gaussian_like, subspace_similarity_grid

from .heatmaps import HeatPanel, plot_heatmaps
from .inputs import InputMismatchError, LoRARun, RunStore, layer_positions

TYPES = (("q", "ΔWq"), ("v", "ΔWv"))
ZOOM = 8  # Figure 3's zoomed panels: the i, j <= 8 corner
RANDOM_SEEDS = (0, 1)  # the Gaussian baselines, fixed so reruns give the same numbers
LAYER_LABELS = {"middle": "middle", "first": "first", "third": "1/3", "two_thirds": "2/3",
                "last": "last"}
MIDDLE, SPREAD = ("middle",), ("first", "third", "two_thirds", "last")

# The paper's side of each figure (paper_spec §1), printed into every JSON for comparison.
PAPER = {
    3: {"model": "GPT-3 175B", "layer": "48 of 96", "source": "paper_spec §1 Figure 3 (§7.2)",
        "measure": "φ(A_r=8, A_r=64, i, j), i <= 8, j <= 64, right-singular vectors of A",
        "finding": "The top direction overlaps strongly: ΔWq and ΔWv each share a 1-dimensional "
                   "subspace between r=8 and r=64 with normalised similarity > 0.5; the other "
                   "directions are mostly noise, which explains why r=1 already works.",
        "panels": "ΔWq, ΔWv, then zooms into the lower-left triangle of each"},
    4: {"model": "GPT-3 175B", "layer": "48 of 96", "source": "paper_spec §1 Figure 4 (§7.2)",
        "measure": "φ between A_r=64 of two random seeds (ΔWq, ΔWv) and between two random "
                   "Gaussian matrices",
        "finding": "ΔWq has a higher 'intrinsic rank' than ΔWv: more shared directions across "
                   "seeds (consistent with Table 6, where Wq alone needs a larger r). Two random "
                   "Gaussian matrices share no directions.",
        "unconfirmed": "the i and j ranges plotted"},
    8: {"model": "GPT-3 175B", "layer": "48 of 96", "source": "paper_spec §1 Table 7 / Figure 8 (App. H.3)",
        "measure": "φ between the top-i singular directions of Wq and the top-j of ΔWq, for "
                   "varying r, plus a random baseline",
        "finding": "The top-4 directions of ΔWq barely exceed 0.2 similarity with the top-10% "
                   "directions of Wq; a larger r picks up more of the directions already "
                   "emphasised in Wq."},
}
PAPER[6] = dict(PAPER[3], layer="1, 32, 64 and 96 of 96", source="paper_spec §1 Figure 6 (App. H.1)")
PAPER[7] = dict(PAPER[4], layer="1, 32, 64 and 96 of 96", source="paper_spec §1 Figure 7 (App. H.1)")


def _grid(t: torch.Tensor) -> list[list[float]]:
    return [[float(x) for x in row] for row in t]


def same_model(runs: list[LoRARun]) -> dict:
    """The model every run shares (name, display name, weights source, layer count)."""
    names = {(r.record.get("model"), r.n_layers()) for r in runs}
    if len(names) != 1:
        raise InputMismatchError("the runs compared were trained on different models: "
                         + ", ".join(f"{r.experiment} seed {r.seed}: {r.record.get('model')} "
                                     f"({r.n_layers()} layers)" for r in runs))
    first = runs[0]
    return {"model": first.record.get("model"), "model_display": first.model_name,
            "model_source": first.record.get("model_source"), "profile": first.record.get("profile"),
            "n_layers": first.n_layers()}


def _layers(n_layers: int, which: tuple[str, ...]) -> list[tuple[str, int]]:
    pos = layer_positions(n_layers)
    out, seen = [], set()
    for name in which:
        if pos[name] not in seen:  # tiny models repeat positions (4 layers: 1/3 -> block 1)
            out.append((name, pos[name]))
            seen.add(pos[name])
    return out


def _layer_text(name: str, index: int, n: int) -> str:
    return f"layer {index + 1} of {n} ({LAYER_LABELS[name]})"


def _layer_list(layers: list[dict]) -> str:
    return "layer " + ", ".join(str(e["layer"]) for e in layers)


def _runs_text(runs: list[LoRARun]) -> str:
    return "runs: " + ", ".join(f"{r.experiment} seed{r.seed}" for r in runs)


def _write(out: Path, number: int, payload: dict, title: str, rows: list[list[HeatPanel]],
           notes: list[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"figure{number}.json"
    json_path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    png = plot_heatmaps(out / f"figure{number}.png", title, rows, notes)
    return [png, json_path]


# ---------------------------------------------------------------- Figures 3 and 6 (r=8 vs r=64)

def rank_similarity(store: RunStore, out: Path, number: int = 3) -> list[Path]:
    """Figure 3 (middle layer) or 6 (first, 1/3, 2/3, last): φ(A_r=8, A_r=64, i, j)."""
    run8, run64 = store.runs(("qv", 8, 1), ("qv", 64, 1))
    model = same_model([run8, run64])
    layers, rows = [], []
    for name, index in _layers(model["n_layers"], MIDDLE if number == 3 else SPREAD):
        entry = {"position": name, "layer": index + 1, "layer_index": index, "panels": {}}
        full, zoom = [], []
        for t, label in TYPES:
            grid = subspace_similarity_grid(run8.lora_A(t, index), run64.lora_A(t, index))
            zi, zj = min(ZOOM, grid.shape[0]), min(ZOOM, grid.shape[1])
            entry["panels"][label] = {
                "weight_type": t, "i_max": grid.shape[0], "j_max": grid.shape[1], "phi": _grid(grid),
                "phi_top1": float(grid[0, 0]), "phi_top1_in_all": float(grid[0, -1]),
                "phi_diagonal": [float(grid[k, k]) for k in range(min(grid.shape))]}
            full.append(HeatPanel(f"{label}, {_layer_text(name, index, model['n_layers'])}", grid.numpy()))
            zoom.append(HeatPanel(f"{label} zoom i,j <= {ZOOM}", grid[:zi, :zj].numpy()))
        layers.append(entry)
        rows.append(full + zoom)
    payload = {"figure": number, "measure": "φ(A_r=8, A_r=64, i, j) = ||U8^iᵀ U64^j||_F² / min(i, j), "
               "U = right-singular vectors of LoRA A", **model, "runs": [run8.describe(), run64.describe()],
               "layers": layers, "paper": PAPER[number],
               "choices": [f"zoom panels show the i, j <= {ZOOM} corner (the spec: 'zooms into the "
                           "lower-left triangle'), unmasked",
                           "layers at the paper's relative depths (48 of 96 -> n/2; 1, 32, 64, 96 "
                           "-> 1, n/3, 2n/3, n), 1-based"]}
    title = (f"Figure {number} (stand-in): φ(A_r=8, A_r=64, i, j), {model['model_display']}, "
             f"{_layer_list(layers)} of {model['n_layers']}\n"
             f"{_runs_text([run8, run64])}")
    return _write(out, number, payload, title, rows, [f"paper ({PAPER[number]['model']}, layer "
                                                       f"{PAPER[number]['layer']}): {PAPER[number]['finding']}"])


# ------------------------------------------------------------- Figures 4 and 7 (seed vs seed)

def seed_similarity(store: RunStore, out: Path, number: int = 4) -> list[Path]:
    """Figure 4 (middle layer) or 7 (first, 1/3, 2/3, last): φ between A_r=64 of seeds 1 and 2,
    for ΔWq and ΔWv, and between two random Gaussian matrices of the same shape."""
    run1, run2 = store.runs(("qv", 64, 1), ("qv", 64, 2))
    model = same_model([run1, run2])
    layers, rows = [], []
    for name, index in _layers(model["n_layers"], MIDDLE if number == 4 else SPREAD):
        entry = {"position": name, "layer": index + 1, "layer_index": index, "panels": {}}
        row = []
        A_q = run1.lora_A("q", index)
        pairs = [(label, run1.lora_A(t, index), run2.lora_A(t, index)) for t, label in TYPES]
        pairs.append(("Random Gaussian", random_gaussian_like(A_q, RANDOM_SEEDS[0]),
                      random_gaussian_like(A_q, RANDOM_SEEDS[1])))
        for label, A1, A2 in pairs:
            grid = subspace_similarity_grid(A1, A2)
            k = A1.shape[1]
            i = torch.arange(1, grid.shape[0] + 1, dtype=torch.float64)[:, None]
            j = torch.arange(1, grid.shape[1] + 1, dtype=torch.float64)[None, :]
            expected = torch.maximum(i, j) / k  # E φ for independent random subspaces of R^k
            entry["panels"][label] = {
                "i_max": grid.shape[0], "j_max": grid.shape[1], "in_features": k, "phi": _grid(grid),
                "phi_diagonal": [float(grid[d, d]) for d in range(min(grid.shape))],
                "mean_phi": float(grid.mean()), "mean_phi_random_expectation": float(expected.mean())}
            if label == "Random Gaussian":
                entry["panels"][label]["seeds"] = list(RANDOM_SEEDS)
            row.append(HeatPanel(f"{label}, {_layer_text(name, index, model['n_layers'])}", grid.numpy()))
        layers.append(entry)
        rows.append(row)
    payload = {"figure": number, "measure": "φ(A_r=64 seed 1, A_r=64 seed 2, i, j); random: two "
               "Gaussian matrices of A's shape; E φ(i, j) = max(i, j) / k for independent random "
               "subspaces of R^k", **model, "runs": [run1.describe(), run2.describe()],
               "layers": layers, "paper": PAPER[number],
               "choices": ["full i, j <= 64 range plotted (the paper's range is unconfirmed; the "
                           "JSON holds the full grid either way)",
                           f"random baseline: lora_core.analysis.random_gaussian_like seeds {list(RANDOM_SEEDS)}"]}
    title = (f"Figure {number} (stand-in): φ(A_r=64 seed 1, A_r=64 seed 2, i, j), "
             f"{model['model_display']}, {_layer_list(layers)} of "
             f"{model['n_layers']}\n{_runs_text([run1, run2])}")
    return _write(out, number, payload, title, rows, [f"paper ({PAPER[number]['model']}, layer "
                                                       f"{PAPER[number]['layer']}): {PAPER[number]['finding']}"])


# ------------------------------------------------------------------ Figure 8 (Wq vs ΔWq)

FIGURE8_RANKS = (4, 8, 64)


def weight_similarity(store: RunStore, out: Path) -> list[Path]:
    """Figure 8: φ between the top-i right-singular directions of Wq (i up to 10% of its
    directions) and the top-j of ΔWq (j <= r), for r = 4, 8, 64, and of a random matrix."""
    runs = store.runs(*[("qv", r, 1) for r in FIGURE8_RANKS])
    model = same_model(runs)
    (name, index), = _layers(model["n_layers"], MIDDLE)
    W = store.base.weight(runs[0], "q", index)
    n_i = math.ceil(W.shape[1] / 10)  # the paper's "top-10% directions of Wq"
    panels, row = {}, []
    for run in runs:
        W_run = store.base.weight(run, "q", index)
        if not torch.equal(W_run, W):
            raise InputMismatchError(f"{run.experiment} was trained on another Wq than {runs[0].experiment} "
                             "(random init with another seed?): Figure 8 compares one W")
        r = run.rank("q", index)
        grid = subspace_similarity_grid(W, run.delta_weight("q", index))[:n_i, :r]
        panels[f"r={r}"] = {"experiment": run.experiment, "r": r, "phi": _grid(grid),
                            "phi_top10pct_vs_top4": float(grid[-1, min(4, r) - 1])}
        row.append(HeatPanel(f"Wq vs ΔWq, r={r}", grid.numpy(), ylabel="i (Wq)", xlabel="j (ΔWq)"))
    r_max = max(FIGURE8_RANKS)
    random = random_gaussian_like(W, RANDOM_SEEDS[0])
    grid = subspace_similarity_grid(W, random)[:n_i, :r_max]
    panels["Random"] = {"r": r_max, "seed": RANDOM_SEEDS[0], "phi": _grid(grid),
                        "phi_top10pct_vs_top4": float(grid[-1, 3])}
    row.append(HeatPanel("Wq vs random Gaussian", grid.numpy(), ylabel="i (Wq)", xlabel="j (random)"))
    base_source = store.base.source(runs[0])
    payload = {"figure": 8, "measure": "φ(Wq, ΔWq, i, j) over right-singular (input-side) directions; "
               f"i <= {n_i} (top 10% of Wq's {W.shape[1]}), j <= r", **model,
               "layer": index + 1, "layer_index": index, "base_weights_source": base_source,
               "runs": [r.describe() for r in runs], "panels": panels, "paper": PAPER[8],
               "choices": ["right-singular (input-side) directions, as φ on A in App. G; ΔWq = "
                           "(alpha/r)·B·A",
                           f"random baseline: a Gaussian matrix of Wq's shape, seed {RANDOM_SEEDS[0]}"]}
    title = (f"Figure 8 (stand-in): φ(Wq, ΔWq, i, j), {model['model_display']}, "
             f"{_layer_text(name, index, model['n_layers'])}\n{_runs_text(runs)}")
    return _write(out, 8, payload, title, [row], [f"paper ({PAPER[8]['model']}, layer "
                                                   f"{PAPER[8]['layer']}): {PAPER[8]['finding']}"])
