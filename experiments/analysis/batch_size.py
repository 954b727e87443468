"""Batch-size sensitivity (LoRA Without Regret (d)): for LoRA and FT trained at two or three batch
sizes on the same data (lr rescaled as each experiment file records), the penalty of the largest
batch against the smallest, per seed. Writes `analysis/batch_size.json`.
"""
from __future__ import annotations

# penalty = metric(smallest batch) − metric(largest batch) for a higher-is-better metric (the
# reverse for a loss), paired by seed: positive means the large batch did worse. The claim is
# that LoRA's penalty exceeds FT's; the ledger compares the two per-seed lists (Welch's t).

import json
import re
from pathlib import Path

from .beyond_records import (PREFIX, config_value, lower_is_better, main_dev_metric,
                             records_under, run_list, run_values)

FOLDER = f"{PREFIX}/batch_size"
_NAME = re.compile(r"^(?P<method>.+)_b(?P<batch>\d+)$")
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


def build(results: Path, out: Path, metric: str | None = None) -> list[Path]:
    from .inputs import MissingInputError

    values = run_values(records_under(results, FOLDER), metric)
    if not values:
        (out / "batch_size.json").unlink(missing_ok=True)   # never outlives its records
        raise MissingInputError(f"no complete records under runs/{FOLDER}/; run: "
                                "make beyond-runs-batch_size")
    metric = metric or main_dev_metric(values[0].data)
    table: dict[str, dict[int, dict[int, float]]] = {}
    lrs = {}
    for v in values:
        m = _NAME.match(v.experiment.rsplit("/", 1)[1])
        batch = int(config_value(v.data, "train.batch_size") or m.group("batch"))
        table.setdefault(m.group("method"), {}).setdefault(batch, {})[v.seed] = v.value
        lrs[f"{m.group('method')}_b{batch}"] = config_value(v.data, "train.lr")
    doc = {"analysis": "batch_size", "generated_by": "python -m experiments.analysis batch_size",
           "model": values[0].data.get("model"), "model_display": values[0].data.get("model_display"),
           "task": values[0].data.get("task"), "metric": metric,
           "lower_is_better": lower_is_better(metric), "lr_as_trained": lrs, "paper": PAPER,
           "methods": penalties(table, lower_is_better(metric)), "runs": run_list(values)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "batch_size.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path]
