"""The latency benchmark's outputs (experiments/bench/latency.py measures): results/bench/
latency.json, the paper-layout Table 1 beside the paper's cells, and Figure 5's heat-maps.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..paper_numbers import load_table


def paper_table1() -> list[dict]:
    """The paper's Table 1 (Quadro RTX8000, mean ± std of 100 trials, ms), per column, read
    from experiments/paper/table1.yaml: base and adapters as (mean, std[, slow-down %])."""
    table = load_table(1)
    rows = {r.row: r.cells for r in table.rows}
    out = []
    for col in table.value_columns:
        batch, seq = (int(x[1:]) for x in col.key.split("_"))
        cells = {name: rows[row][col.key] for name, row in
                 (("base", "Fine-Tune/LoRA"), ("adapter_l", "Adapter^L"), ("adapter_h", "Adapter^H"))}
        out.append({"batch": batch, "seq": seq, "budget": col.params,
                    "base": (cells["base"].value, cells["base"].pm),
                    **{k: (c.value, c.pm, float(c.note.strip("+%()"))) for k, c in cells.items()
                       if k != "base"}})
    return out


PAPER_TABLE1 = paper_table1()


def slowdown(results: dict, name: str, reference: str = "base") -> float:
    return 100.0 * (results[name]["mean_ms"] / results[reference]["mean_ms"] - 1.0)


def _fmt(cell: dict, name: str, with_pct: bool = True) -> str:
    res = cell["results"][name]
    text = f"{res['mean_ms']:.1f} ± {res['std_ms']:.1f}"
    return text + (f" ({slowdown(cell['results'], name):+.1f}%)" if with_pct else "")


def ratio(cell: dict, stat: str, name: str = "lora_merged") -> float:
    return cell["results"][name][stat] / cell["results"]["base"][stat]


def table1_markdown(record: dict) -> str:
    part, env = record["table1"], record["environment"]
    cells = part["cells"]
    same_cells = [(c["batch"], c["seq"]) for c in cells] == [(p["batch"], p["seq"]) for p in PAPER_TABLE1]
    head = "| | " + " | ".join(f"Col {c['column']}" for c in cells) + " |"
    sep = "|---|" + "---|" * len(cells)

    def row(label: str, values) -> str:
        return f"| {label} | " + " | ".join(values) + " |"

    paper = PAPER_TABLE1 if same_cells else [None] * len(cells)
    lines = [
        f"# Table 1: inference latency of one forward pass, {record['model_display']} (ms)", "",
        f"Ours: {env['device_name']} ({env['device']}, {env['threads']} threads), torch "
        f"{env['torch']}, {env['dtype']}, {record['model']} at random init, batch x sequence "
        f"as below, no grad, eval, use_cache=False; mean ± std of {part['trials']} "
        f"timed trials after {part['warmup']} warm-up, variants interleaved. "
        "Paper: Quadro RTX8000, 100 trials. Slow-down is relative to the no-adapter model of "
        "the same source.", "",
        head, sep,
        row("Batch size", [str(c["batch"]) for c in cells]),
        row("Sequence length", [str(c["seq"]) for c in cells]),
        row("\\|Θ\\|", [c["budget"] for c in cells]),
    ]
    if not same_cells:
        lines.append(row("Paper's cell (batch x seq)",
                         [f"{p['batch']} x {p['seq']}" for p in PAPER_TABLE1[:len(cells)]]))
        paper = PAPER_TABLE1[:len(cells)]
    lines += [
        row("Fine-Tune/LoRA (paper)", [f"{p['base'][0]} ± {p['base'][1]}" for p in paper]),
        row("No adapter (ours)", [_fmt(c, "base", False) for c in cells]),
        row("LoRA merged (ours)", [_fmt(c, "lora_merged") for c in cells]),
        row("LoRA unmerged (ours)", [_fmt(c, "lora_unmerged") for c in cells]),
        row("Adapter^L (paper)", [f"{p['adapter_l'][0]} ± {p['adapter_l'][1]} (+{p['adapter_l'][2]}%)"
                                  for p in paper]),
        row("Adapter^L (ours)", [_fmt(c, "adapter_l") for c in cells]),
        row("Adapter^L r (ours, \\|Θ\\|)", [f"{c['r']['adapter_l']} ({c['adapter_params']['adapter_l']:,})"
                                        for c in cells]),
        row("Adapter^H (paper)", [f"{p['adapter_h'][0]} ± {p['adapter_h'][1]} (+{p['adapter_h'][2]}%)"
                                  for p in paper]),
        row("Adapter^H (ours)", [_fmt(c, "adapter_h") for c in cells]),
        row("Adapter^H r (ours, \\|Θ\\|)", [f"{c['r']['adapter_h']} ({c['adapter_params']['adapter_h']:,})"
                                        for c in cells]),
        row("merged LoRA / no adapter, mean (median)",
            [f"{ratio(c, 'mean_ms'):.3f} ({ratio(c, 'median_ms'):.3f})" for c in cells]),
        "",
    ]
    n_layer = record["n_layer"]
    if record["grid"].get("fixed_r"):
        lines.append("Quick smoke run: fixed bottlenecks, not derived from the paper's |Θ|.")
    else:
        lines.append(
            "Bottlenecks are derived from the paper's |Θ| with its formula "
            f"L̂_Adpt·(2·d·r + r + d) + 2·L̂_LN·d (Adapter^L: {n_layer} adapters + {n_layer} "
            f"LayerNorms; Adapter^H: {2 * n_layer} adapters), the integer r nearest the budget; "
            "the paper does not state them.")
    lines.append("LoRA: r = 4 on Wq, Wv (Table 11). Merged = `merge_and_unload`: the plain "
                 "GPT-2 modules holding W + BA, so any difference from the no-adapter row is "
                 "measurement noise.")
    if not same_cells:
        lines.append("Our cells are smaller than the paper's (this device); the paper's figures "
                     "are for its cells, shown for scale only.")
    if env["device"] == "cpu":
        lines.append("On a CPU an adapter costs about its share of the FLOPs and weight reads, a "
                     "few percent at most, while the run-to-run spread (std) on a shared machine "
                     "is of the same size or larger: read the slow-downs against the std. The "
                     "paper's large small-batch slow-down is a GPU effect: the adapters' small "
                     "extra layers run one after another on a GPU that a small batch leaves "
                     "mostly idle (paper §3).")
    return "\n".join(lines) + "\n"


def figure5_png(record: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.colors
    import matplotlib.pyplot as plt
    import numpy as np

    fig5, env = record["figure5"], record["environment"]
    batches, seqs, ranks = fig5["batch"], fig5["seq"], fig5["r"]
    index = {(c["batch"], c["seq"]): c["results"] for c in fig5["cells"]}
    methods = [("adapter_h", "Adapter$^H$"), ("adapter_l", "Adapter$^L$")]
    grids = {(m, r): np.array([[slowdown(index[(b, s)], f"{m}_r{r}") for s in seqs]
                               for b in batches]) for m, _ in methods for r in ranks}
    # one colour scale for all panels, so they compare at a glance; white at 0 % (noise on a
    # CPU can make an adapter look faster, shown in blue rather than hidden)
    vmin = min(-1.0, min(float(g.min()) for g in grids.values()))
    vmax = max(1.0, max(float(g.max()) for g in grids.values()))
    norm = matplotlib.colors.TwoSlopeNorm(vmin=vmin, vcenter=0.0, vmax=vmax)
    fig, axes = plt.subplots(2, len(ranks), figsize=(3.6 * len(ranks), 6.4), squeeze=False)
    for row, (method, label) in enumerate(methods):
        for col, r in enumerate(ranks):
            grid = grids[(method, r)]
            ax = axes[row][col]
            im = ax.imshow(grid, cmap="RdBu_r", norm=norm, origin="lower", aspect="auto")
            for i in range(len(batches)):
                for j in range(len(seqs)):
                    dark = abs(norm(grid[i, j]) - 0.5) > 0.35
                    ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
            ax.set_xticks(range(len(seqs)), [str(s) for s in seqs])
            ax.set_yticks(range(len(batches)), [str(b) for b in batches])
            ax.set_xlabel("sequence length")
            ax.set_ylabel("batch size")
            ax.set_title(f"{label}, r = {r}")
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"Figure 5 on our machine: % slow-down vs no adapter, {record['model']}\n"
                 f"{env['device_name']} ({env['device']}), torch {env['torch']}, "
                 f"{fig5['trials']} trials per cell", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(record: dict, out: Path) -> list[Path]:
    written = []
    json_path = out / "bench" / "latency.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    written.append(json_path)
    if record.get("table1"):
        path = out / "tables" / "table1.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(table1_markdown(record))
        written.append(path)
    if record.get("figure5"):
        path = out / "figures" / "figure5_latency.png"
        figure5_png(record, path)
        written.append(path)
    return written


def previous_parts(json_path: Path, record: dict) -> dict:
    """An earlier run's parts, kept when they come from the same device, model and grid
    setting (so `--part table1` then `--part figure5` leave one complete file)."""
    if not json_path.exists():
        return {}
    old = json.loads(json_path.read_text())
    same = all(old.get(k) == record.get(k) for k in ("model", "quick")) and \
        old.get("environment", {}).get("device_name") == record["environment"]["device_name"]
    if not same:
        print(f"[latency] replacing {json_path} (it came from another device, model or grid)")
        return {}
    return {k: old[k] for k in ("table1", "figure5") if k in old}
