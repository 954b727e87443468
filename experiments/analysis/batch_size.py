"""Batch-size sensitivity (LoRA Without Regret (d)): for LoRA and FT trained at two or three batch
sizes on the same data (lr rescaled as each experiment file records), the penalty of the largest
batch against the smallest, per seed, on two measures: the loss the work compares (the training
loss over the last quarter of the one epoch's tokens, `experiments.curve.tail_loss`: every batch
is scored before it is trained on, so it is a held-out loss) and the dev metric. Writes
`analysis/batch_size.json`.
"""
from __future__ import annotations

# penalty = metric(smallest batch) − metric(largest batch) for a higher-is-better metric (the
# reverse for a loss), paired by seed: positive means the large batch did worse. The claim is
# that LoRA's penalty exceeds FT's; the ledger compares the per-seed loss penalties (Welch's t),
# since the loss is what the work measures. The dev metric's penalties are kept beside them: on
# 400 dev items an accuracy moves by whole examples, too coarse for gaps of this size.

import json
import re
from pathlib import Path

from ..curve import tail_loss
from .beyond_records import (PREFIX, config_value, curve, lower_is_better, main_dev_metric,
                             records_under, run_list, run_values)

FOLDER = f"{PREFIX}/batch_size"
_NAME = re.compile(r"^(?P<method>.+)_b(?P<batch>\d+)$")
TAIL = 0.25  # the share of the epoch's tokens whose training loss is the run's final loss
PAPER = {"work": "Schulman et al. (2025), LoRA Without Regret",
         "finding": "LoRA tolerates large batch sizes less well than full fine-tuning: its loss "
                    "at a large batch falls further behind, whatever the rank."}


def penalties(values_by_method: dict[str, dict[int, dict[int, float]]],
              lower_better: bool) -> dict[str, dict]:
    """method -> batch -> seed -> value  ->  method -> {batches, penalty per seed}."""
    out = {}
    for method, by_batch in sorted(values_by_method.items()):
        batches = sorted(by_batch)
        if len(batches) < 2:
            continue
        small, large = by_batch[batches[0]], by_batch[batches[-1]]
        seeds = sorted(set(small) & set(large))
        sign = -1.0 if lower_better else 1.0
        out[method] = {"small_batch": batches[0], "large_batch": batches[-1], "seeds": seeds,
                       "penalty": [sign * (small[s] - large[s]) for s in seeds],
                       "by_batch": {str(b): {str(s): v for s, v in sorted(by_batch[b].items())}
                                    for b in batches}}
    return out


def build(results: Path, out: Path, metric: str | None = None,
          figures: Path | None = None) -> list[Path]:
    from .inputs import MissingInputError

    values = run_values(records_under(results, FOLDER), metric)
    if not values:
        (out / "batch_size.json").unlink(missing_ok=True)   # never outlives its records
        raise MissingInputError(f"no complete records under runs/{FOLDER}/; run: "
                                "make beyond-runs-batch_size")
    metric = metric or main_dev_metric(values[0].data)
    table: dict[str, dict[int, dict[int, float]]] = {}
    losses: dict[str, dict[int, dict[int, float]]] = {}
    lrs = {}
    for v in values:
        m = _NAME.match(v.experiment.rsplit("/", 1)[1])
        batch = int(config_value(v.data, "train.batch_size") or m.group("batch"))
        table.setdefault(m.group("method"), {}).setdefault(batch, {})[v.seed] = v.value
        loss = tail_loss(curve(v.data), TAIL)
        if loss is not None:
            losses.setdefault(m.group("method"), {}).setdefault(batch, {})[v.seed] = loss
        lrs[f"{m.group('method')}_b{batch}"] = config_value(v.data, "train.lr")
    methods = penalties(table, lower_is_better(metric))
    for method, loss in penalties(losses, lower_better=True).items():
        methods.setdefault(method, {})["loss"] = loss
    doc = {"analysis": "batch_size", "generated_by": "python -m experiments.analysis batch_size",
           "model": values[0].data.get("model"), "model_display": values[0].data.get("model_display"),
           "task": values[0].data.get("task"), "metric": metric,
           "lower_is_better": lower_is_better(metric), "loss": f"training loss over the last "
           f"{TAIL:.0%} of the epoch's tokens", "lr_as_trained": lrs, "paper": PAPER,
           "methods": dict(sorted(methods.items())),
           "runs": run_list(values)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "batch_size.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    written = [path]
    if figures is not None:
        written.append(plot({"final loss (" + doc["loss"] + ")": losses, metric: table}, doc,
                            figures / "batch_size.png"))
    return written


def plot(panels: dict[str, dict[str, dict[int, dict[int, float]]]], doc: dict, path: Path) -> Path:
    """One panel per measure: the value against the batch size for each method, every seed a dot
    and the seed mean a line, so a penalty reads as the line's rise (loss) or fall (metric)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    for ax, (label, table) in zip(axes[0], panels.items()):
        for k, (method, by_batch) in enumerate(sorted(table.items())):
            colour = f"C{k}"
            batches = sorted(by_batch)
            for b in batches:
                ax.scatter([b] * len(by_batch[b]), list(by_batch[b].values()), color=colour, s=14,
                           alpha=0.6)
            ax.plot(batches, [sum(by_batch[b].values()) / len(by_batch[b]) for b in batches],
                    color=colour, marker="o", label=method)
        ax.set_xscale("log", base=2)
        ticks = sorted({b for by_batch in table.values() for b in by_batch})
        ax.set_xticks(ticks, [str(b) for b in ticks])
        ax.minorticks_off()
        ax.set_xlabel("batch size (lr rescaled as each run recorded)")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"Batch-size sensitivity, {doc['model_display']} on {doc['task']} "
                 "(dots: seeds; line: their mean)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
