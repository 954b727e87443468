"""The classification job (GLUE): sentence pairs -> head logits; the dev metrics after every
epoch, the best epoch reported (App. D: each seed at its best epoch), the last kept beside it.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import records
from .batching import collate_pairs, encode_pairs
from .best_epoch import best_epoch
from .engine import classification_loss
from .generation_job import write_official_layout
from .metrics.registry import scorer
from .run_record import Record
from .tasks.base import subsample
from .tasks.glue import GLUE_TASKS, load_glue


def _label_text(value) -> str:
    """A class index as an integer, an STS-B score as a float, one line each."""
    return str(value) if isinstance(value, int) else repr(float(value))


class ClassificationJob:
    evaluates_untrained = False  # reports the best trained epoch

    def __init__(self, cfg, tokenizer, device):
        self.cfg, self.tokenizer, self.device = cfg, tokenizer, device
        self.name = cfg.task.name
        self.scorer = scorer(cfg.task.scorer)
        self.main_metric = self.scorer.main
        # what train.patience watches: the metric the best epoch is chosen by
        self.monitor = (f"{cfg.task.splits.eval[0]}/{self.main_metric}", "higher")
        seed = cfg.data.get("sample_seed")
        self.train_examples = subsample(
            load_glue(self.name, cfg.task.splits.train, limit=None if seed is not None else cfg.data.max_train),
            cfg.data.max_train, seed)
        self.eval_splits = {split: load_glue(self.name, split, limit=cfg.data.max_valid)
                            for split in cfg.task.splits.eval}
        self.train_items = encode_pairs(tokenizer, self.train_examples, cfg.task.seq_len)
        self.eval_items = {s: encode_pairs(tokenizer, ex, cfg.task.seq_len)
                           for s, ex in self.eval_splits.items()}
        self.chance = self.constant_score(self.eval_items[cfg.task.splits.eval[0]])
        self.loss_fn = classification_loss()
        self.pad_id = tokenizer.pad_token_id or 0
        self._predictions: dict[int, tuple[list, list]] = {}  # epoch -> (predictions, labels)

    @classmethod
    def num_labels(cls, cfg) -> int:
        return GLUE_TASKS[cfg.task.name].num_labels

    @classmethod
    def score_decoded(cls, cfg, run_dir: Path, record: Record) -> Path:
        raise ValueError(f"{run_dir / records.RECORD} says `decoded`, which only a generation "
                         f"run writes, but task {cfg.task.name} is a classification task: "
                         "move the directory away to start over")

    def collate(self, items):
        return collate_pairs(items, pad_id=self.pad_id)

    def data_summary(self) -> dict:
        return {"train_examples": len(self.train_examples),
                "eval_examples": {s: len(e) for s, e in self.eval_splits.items()},
                "truncated_train": sum(len(it["input_ids"]) >= self.cfg.task.seq_len
                                       for it in self.train_items)}

    def constant_score(self, items: list) -> float:
        """The main metric of the best constant prediction on `items` (the majority share for
        accuracy, 0 for Matthews correlation; for a regression task the mean label, whose
        correlation is undefined and counts as 0): what a run that has not begun to learn
        scores, so the plateau rule does not read its flat scores as convergence."""
        labels = [it["labels"] for it in items]
        if not labels:
            return 0.0
        constants = ([sum(labels) / len(labels)] if isinstance(labels[0], float)
                     else sorted(set(labels)))
        scores = []
        for c in constants:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a constant's correlation is undefined
                value = self.scorer.score([c] * len(labels), labels, [{}] * len(labels), {})[
                    self.main_metric]
            scores.append(float(value) if math.isfinite(value) else 0.0)
        return max(scores)

    @torch.no_grad()
    def predict(self, model: nn.Module, items: list) -> list:
        model.eval()
        # batches of similar length pad less; predictions go back to the items' order
        order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]))
        preds: list = [None] * len(items)
        for i in range(0, len(order), 64):
            chunk = order[i:i + 64]
            batch = {k: v.to(self.device) for k, v in self.collate([items[j] for j in chunk]).items()
                     if k != "labels"}
            logits = model(**batch).logits
            out = (logits.squeeze(-1) if logits.shape[-1] == 1 else logits.argmax(-1)).tolist()
            for j, p in zip(chunk, out):
                preds[j] = p
        return preds

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict:
        out = {}
        for split, items in self.eval_items.items():
            preds, labels = self.predict(model, items), [it["labels"] for it in items]
            if split == self.cfg.task.splits.eval[0]:
                # kept per epoch: finish() writes the best epoch's, for the claims ledger's
                # paired bootstrap over dev items (experiments/claims/per_example.py)
                self._predictions[epoch] = (preds, labels)
            scores = self.scorer.score(preds, labels, [{}] * len(items), {})
            out.update({f"{split}/{k}": v for k, v in scores.items()})
        return out

    def finish(self, model: nn.Module, run_dir: Path, record: Record, history: list) -> dict:
        key = self.monitor[0]
        best = best_epoch(history, key)
        if best is None:  # no epoch scored a number (e.g. STS-B's Pearson of constant output)
            best = history[-1]
            record.best_epoch_note = f"no epoch has a finite {key}: the last one is reported"
        record.best_epoch = best["epoch"]
        record.metrics_last_epoch = {k: v for k, v in history[-1].items() if "/" in k}
        record.peak_memory_mb = round(records.peak_memory_mb(), 1)
        if best["epoch"] in self._predictions:  # absent when resumed past the best epoch
            preds, labels = self._predictions[best["epoch"]]
            write_official_layout(run_dir, [_label_text(p) for p in preds],
                                  [[_label_text(y)] for y in labels])
            record.predictions_epoch = best["epoch"]
        return {k: v for k, v in best.items() if "/" in k}
