"""What differs between task kinds inside one run: data encoding, loss, per-epoch evaluation and
the final outputs. `GenerationJob` (E2E, WebNLG, DART: beam search then the official scorers),
`ClassificationJob` (GLUE: dev metrics every epoch, the paper's best epoch), and for the GPT-3
tasks `gpt3_jobs.GPT3GenerationJob`.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from lora_core import FAMILIES, prepare_for_inference

from . import records
from .best_epoch import best_epoch
from .batching import collate_causal, collate_pairs, encode_examples, encode_pairs, prompt_separator
from .decode import DecodeConfig, generate_completions
from .engine import causal_lm_loss, classification_loss, evaluate_loss
from .gpt3_jobs import SCORERS, GPT3GenerationJob
from .nlg_scoring import score_generation, write_official_layout
from .tasks import group_references, load_examples
from .tasks.base import subsample
from .tasks.glue import GLUE_TASKS, load_glue

# The metric each GLUE task is reported with in Table 2 (paper_spec §3.5).
GLUE_MAIN_METRIC = {"cola": "matthews_correlation", "stsb": "pearson"}


def _limit(items: list, n) -> list:
    return items if not n else items[: int(n)]


def job_num_labels(cfg) -> int | None:
    if cfg.task.kind != "classification":
        return None
    return GLUE_TASKS[cfg.task.name].num_labels


def present_heads(model: nn.Module, family: str) -> list[str]:
    """The family's task-head modules that exist in this model (trained, not counted)."""
    names = [n for n, _ in model.named_modules()]
    return [h for h in FAMILIES[family].heads
            if any(n == h or n.endswith("." + h) for n in names)]


def make_job(cfg, tokenizer, device):
    kinds = {"generation": GenerationJob, "classification": ClassificationJob}
    if cfg.task.kind not in kinds:
        raise ValueError(f"task.kind={cfg.task.kind!r}: choose one of {sorted(kinds)}")
    if cfg.task.kind == "generation" and cfg.task.name in SCORERS:
        # scored per example on an eval split every epoch (SAMSum, WikiSQL, label words)
        return GPT3GenerationJob(cfg, tokenizer, device)
    return kinds[cfg.task.kind](cfg, tokenizer, device)


class GenerationJob:
    """Causal-LM training on context/completion lines; beam search and scoring at the end."""

    evaluates_untrained = True  # finish() needs no training history

    def __init__(self, cfg, tokenizer, device):
        self.cfg, self.tokenizer, self.device = cfg, tokenizer, device
        task = cfg.task
        self.train_examples = load_examples(task.name, task.splits.train, limit=cfg.data.max_train)
        self.valid_examples = load_examples(task.name, task.splits.valid, limit=cfg.data.max_valid)
        self.separator = prompt_separator(cfg)
        self.train_items = encode_examples(tokenizer, self.train_examples, task.seq_len,
                                           separator=self.separator)
        self.valid_items = encode_examples(tokenizer, self.valid_examples, task.seq_len,
                                           separator=self.separator)
        self.loss_fn = causal_lm_loss(cfg.train.label_smoothing)
        self.monitor = ("valid_loss", "lower")  # what train.patience watches

    @staticmethod
    def collate(items):
        return collate_causal(items, pad_id=0)

    def data_summary(self) -> dict:
        return {"train_examples": len(self.train_examples),
                "valid_examples": len(self.valid_examples),
                "truncated_train": sum(it.truncated for it in self.train_items)}

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict:
        return {"valid_loss": evaluate_loss(model, self.valid_items, self.collate, self.loss_fn,
                                            self.cfg.train.batch_size, self.device)}

    @staticmethod
    def test_sources(cfg):
        """(keys, references, last example) of each distinct test source, as decoded."""
        keys, refs, last = group_references(load_examples(cfg.task.name, cfg.task.splits.test))
        n = cfg.data.max_eval_sources
        return _limit(keys, n), _limit(refs, n), _limit(last, n)

    def finish(self, model: nn.Module, run_dir: Path, record: dict, history: list) -> dict:
        """Decode each distinct test source once (LoRA merged, prefixes folded: same outputs)."""
        keys, references, last = self.test_sources(self.cfg)
        prepare_for_inference(model)
        decode_cfg = DecodeConfig(**OmegaConf.to_container(self.cfg.decode, resolve=True))
        started = time.perf_counter()
        hypotheses = generate_completions(model, self.tokenizer, [ex.context for ex in last],
                                          decode_cfg, device=self.device,
                                          separator=self.separator)
        write_official_layout(run_dir, hypotheses, references)
        # "decoded" first: if scoring fails (no Java, say), run.resume=true only scores.
        record.update({"status": "decoded", "decode": {
            "sources": len(keys), "wall_s": round(time.perf_counter() - started, 2)},
            "peak_memory_mb": round(records.peak_memory_mb(), 1)})
        records.write_record(run_dir, record)
        print(f"[score] {self.cfg.task.name}: {len(hypotheses)} outputs against the official-"
              "parity scorer (METEOR's Java start takes a few seconds)", flush=True)
        return score_generation(self.cfg.task.name, hypotheses, references,
                                [ex.meta for ex in last])

    @classmethod
    def score_decoded_run(cls, cfg, run_dir: Path, record: dict) -> Path:
        """Finish a run whose outputs are decoded but not scored (e.g. decoded on a GPU box)."""
        hypotheses = (run_dir / "predictions.txt").read_text(encoding="utf-8").splitlines()
        keys, references, last = cls.test_sources(cfg)
        if len(hypotheses) != len(keys):
            raise ValueError(f"{run_dir / 'predictions.txt'} has {len(hypotheses)} lines for "
                             f"{len(keys)} test sources: decode again (move the run away)")
        record["metrics"] = score_generation(cfg.task.name, hypotheses, references,
                                             [ex.meta for ex in last])
        record["status"] = "complete"
        records.write_record(run_dir, record)
        print(f"[run] scored: {record['metrics']}\n[run] record: {run_dir / records.RECORD}")
        return run_dir / records.RECORD


def _label_text(value) -> str:
    """A class index as an integer, an STS-B score as a float, one line each."""
    return str(value) if isinstance(value, int) else repr(float(value))


class ClassificationJob:
    """GLUE: pairs -> head logits; dev metrics after every epoch; the best epoch is reported
    (App. D: each seed at its best epoch), the last one kept beside it."""

    def __init__(self, cfg, tokenizer, device):
        self.cfg, self.tokenizer, self.device = cfg, tokenizer, device
        self.name = cfg.task.name
        self.main_metric = GLUE_MAIN_METRIC.get(self.name, "accuracy")
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
        self.loss_fn = classification_loss()
        self.pad_id = tokenizer.pad_token_id or 0
        self._predictions: dict[int, tuple[list, list]] = {}  # epoch -> (predictions, labels)

    def collate(self, items):
        return collate_pairs(items, pad_id=self.pad_id)

    def data_summary(self) -> dict:
        return {"train_examples": len(self.train_examples),
                "eval_examples": {s: len(e) for s, e in self.eval_splits.items()},
                "truncated_train": sum(len(it["input_ids"]) >= self.cfg.task.seq_len
                                       for it in self.train_items)}

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
        from .metrics import score_glue

        out = {}
        for split, items in self.eval_items.items():
            preds, labels = self.predict(model, items), [it["labels"] for it in items]
            if split == self.cfg.task.splits.eval[0]:
                # kept per epoch: finish() writes the best epoch's, for the claims ledger's
                # paired bootstrap over dev items (experiments/claims/per_example.py)
                self._predictions[epoch] = (preds, labels)
            scores = score_glue(self.name, preds, labels)
            out.update({f"{split}/{k}": v for k, v in scores.items()})
        return out

    def finish(self, model: nn.Module, run_dir: Path, record: dict, history: list) -> dict:
        first_split = self.cfg.task.splits.eval[0]
        key = f"{first_split}/{self.main_metric}"
        best = best_epoch(history, key)
        if best is None:  # no epoch scored a number (e.g. STS-B's Pearson of constant output)
            best = history[-1]
            record["best_epoch_note"] = f"no epoch has a finite {key}: the last one is reported"
        record["best_epoch"] = best["epoch"]
        record["metrics_last_epoch"] = {k: v for k, v in history[-1].items() if "/" in k}
        record["peak_memory_mb"] = round(records.peak_memory_mb(), 1)
        if best["epoch"] in self._predictions:  # absent when resumed past the best epoch
            preds, labels = self._predictions[best["epoch"]]
            write_official_layout(run_dir, [_label_text(p) for p in preds],
                                  [[_label_text(y)] for y in labels])
            record["predictions_epoch"] = best["epoch"]
        return {k: v for k, v in best.items() if "/" in k}
