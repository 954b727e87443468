"""Constructed run records and claims for the ledger's tests (tests/test_claims*.py)."""
from __future__ import annotations

import json
from pathlib import Path

from experiments.claims.evaluate import evaluate_claim
from experiments.claims.spec import load_ledger, parse_claim
from experiments.tables.collect import scan
LORA, FT = "table2_minilm/lora_sst2", "table2_minilm/ft_sst2"


def write_record(results: Path, experiment: str, seed: int, history: list[float], *,
                 task: str = "sst2", converged: bool | None = None, metric="dev/accuracy",
                 predictions: list[str] | None = None, references: list[str] | None = None):
    """A complete record whose dev metric (0-1) went through `history`, one value an epoch."""
    run = results / "runs" / experiment / f"seed{seed}"
    run.mkdir(parents=True)
    hist = [{"epoch": i + 1, "step": 10 * (i + 1), "train_loss": 1.0 / (i + 1), metric: v}
            for i, v in enumerate(history)]
    best = max(range(len(history)), key=lambda i: history[i])
    data = {"experiment": experiment, "row": experiment, "model": "minilm_l6",
            "model_display": "MiniLM-L6", "profile": "paper", "seed": seed, "status": "complete",
            "task": task, "data": {"train_examples": 600},
            "train": {"steps": 10 * len(history), "history": hist, "tokens_per_s": 50.0},
            "metrics": {metric: history[best]}, "predictions_epoch": best + 1,
            "peak_memory_mb": 1000.0}
    if converged is not None:
        data["converged"] = converged
    (run / "record.json").write_text(json.dumps(data))
    if predictions is not None:
        (run / "predictions.txt").write_text("\n".join(predictions) + "\n")
        (run / "references.txt").write_text("\n\n".join(references) + "\n")
    return run




def plateau(final: float) -> list[float]:
    """Best at epoch 2, then two evaluations without a new best: converged at patience 2."""
    return [final - 0.05, final + 0.0, final - 0.002, final - 0.003]


def claim(relation: str, margin: float = 0.0, a: str = LORA, b: str = FT, **extra) -> object:
    data = {"id": "test_claim", "statement": "LoRA vs FT on SST-2", "where": "Table 2",
            "comparisons": [{"label": "SST-2", "relation": relation, "margin": margin,
                             "a": {"experiment": a, "table": 2, "column": "SST-2"},
                             "b": {"experiment": b, "table": 2, "column": "SST-2"},
                             "paper": {"a": {"table": 2, "row": "RoB-base LoRA",
                                             "column": "SST-2"}}, **extra}]}
    return parse_claim(data, Path("test_claim.yaml"))


def judge(results: Path, c) -> object:
    ledger_rules = load_ledger().rules
    records, _ = scan(results)
    return evaluate_claim(c, records, results, ledger_rules)


def seeds(results: Path, experiment: str, finals: list[float], **kw) -> None:
    for s, final in enumerate(finals, start=1):
        write_record(results, experiment, s, plateau(final), **kw)


def artifact_claim(a: dict, b, relation: str, **extra):
    return parse_claim({"id": "art", "statement": "s", "where": "w", "comparisons": [
        {"label": "l", "relation": relation, "a": a, "b": b, **extra}]}, Path("art.yaml"))
