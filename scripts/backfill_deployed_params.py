"""Adds `params.deployed` to run records written before the pipeline recorded it.

`deployed` is the trainable count once a prefix-layer's reparameterisation MLP is folded away
(what the paper counts); older PreLayer records hold only the training-time count, with the MLP.
It is recomputed on the `meta` device from the record's own model and method config, the same
code path the pipeline uses, and marked `deployed_backfilled: true`. Records that already have
it are left alone, so the script can run again safely.

    python scripts/backfill_deployed_params.py [RESULTS_DIR ...]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from lora_core import apply_method, count_parameters
from experiments.models import load_model, model_spec
from experiments.records import write_record


def deployed_count(config: dict) -> int:
    spec = model_spec(config["model"]["name"])
    built = load_model(spec, init="meta", with_tokenizer=False)
    method = dict(config["method"])
    apply_method(built.model, method.pop("name"), family=spec.family, **method)
    return count_parameters(built.model).deployed


def backfill(results: Path) -> int:
    changed = 0
    for path in sorted(results.rglob("record.json")):
        record = json.loads(path.read_text())
        params = record.get("params")
        if not isinstance(params, dict) or "deployed" in params or "config" not in record:
            continue
        if record["config"]["method"]["name"] != "pre_layer":
            continue  # only a prefix-layer's count changes when folded
        params["deployed"] = deployed_count(record["config"])
        params["deployed_backfilled"] = True
        write_record(path.parent, record)
        print(f"{path}: deployed {params['deployed']:,} (training-time {params['trainable']:,})")
        changed += 1
    return changed


if __name__ == "__main__":
    roots = [Path(p) for p in sys.argv[1:]] or [Path("results")]
    print(f"{sum(backfill(r) for r in roots)} record(s) updated")
