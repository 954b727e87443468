"""The learning-versus-forgetting figure (LoRA Learns Less and Forgets Less): each tuned run as
a point, what it learned of the target task against what it forgot, from
`analysis/forgetting.json`. Writes `figures/learning_vs_forgetting.png`."""
from __future__ import annotations

import json
from pathlib import Path

from .beyond_records import empty_figure

COMMAND = "make forgetting"
MEASURES = (("general_nll_increase", "general-text NLL increase (nats/token)"),
            ("sst2_gen_drop", "SST-2 zero-shot accuracy drop (points)"),
            ("rte_gen_drop", "RTE zero-shot accuracy drop (points)"))


def build(analysis: Path, figures: Path) -> list[Path]:
    source = analysis / "forgetting.json"
    png = figures / "learning_vs_forgetting.png"
    if not source.is_file():
        return [empty_figure(png, "Learning vs forgetting (LoRA Learns Less and Forgets Less)",
                             f"no {source.name} yet: it is written by `{COMMAND}` from the runs "
                             "under runs/beyond_smollm2/forgetting/ (base, FT, LoRA)")]
    return [plot(json.loads(source.read_text(encoding="utf-8")), png)]


def plot(doc: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MEASURES), figsize=(4.2 * len(MEASURES), 3.8),
                             layout="constrained")
    labels = sorted({r["label"] for r in doc["runs_detail"]})
    # one colour and marker per method, so its seeds read as one group
    style = {label: {"marker": m, "color": f"C{i}"} for i, (label, m)
             in enumerate(zip(labels, "osD^v<>"))}
    for ax, (key, title) in zip(axes, MEASURES):
        for r in doc["runs_detail"]:
            if r.get("learning") is None or key not in r["forgetting"]:
                continue
            ax.scatter(r["learning"], r["forgetting"][key], label=r["label"], s=40,
                       **style[r["label"]])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(f"learned: {doc['learning_metric']} − untrained")
        ax.set_ylabel(f"forgot: {title}")
        # a probe the base model cannot do has nothing to forget (forgetting.probe_skill)
        caveat = (doc.get("tasks", {}).get(key.removesuffix("_drop")) or {}).get("caveat")
        if caveat:
            ax.set_title("the base model is at chance here:\nnothing to forget", fontsize=9)
        handles, names = ax.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        if unique:
            ax.legend(unique.values(), unique.keys(), fontsize=8)
    fig.suptitle(f"Learning vs forgetting, {doc['model_display']} (one point per run and seed)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
