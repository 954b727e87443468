"""Scoring a generation run: the task's official metrics, and the official file layout on disk.

WebNLG is scored on its seen, unseen and all categories (Table 14's S / U / A columns).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence


def write_official_layout(run_dir: Path, hypotheses: Sequence[str],
                          references: Sequence[Sequence[str]]) -> None:
    """predictions.txt (one line per source) and references.txt (groups split by blank lines),
    the layout `python -m experiments.metrics e2e --refs --hyp` and the E2E scorer read."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "predictions.txt").write_text("".join(h.replace("\n", " ") + "\n" for h in hypotheses))
    (run_dir / "references.txt").write_text("\n".join("".join(r.strip() + "\n" for r in group)
                                                      for group in references))


def score_generation(task: str, hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                     metas: Sequence[dict]) -> dict:
    from . import metrics

    if task == "e2e":
        return metrics.score_e2e(list(hypotheses), [list(r) for r in references])
    if task == "dart":
        return metrics.score_dart(list(hypotheses), [list(r) for r in references])
    if task == "webnlg":
        splits = metrics.score_webnlg_splits(list(hypotheses), [list(r) for r in references],
                                             [m["seen"] for m in metas])
        # flat keys, as Table 14's columns: BLEU_U, BLEU_S, BLEU_A, ...
        return {f"{name}_{part[0].upper()}": value for part, scores in splits.items()
                if scores for name, value in scores.items()}
    raise ValueError(f"no generation scorer for task {task!r}")
