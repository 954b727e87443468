"""The generation job that decodes once, after training (E2E, WebNLG, DART): causal-LM training
on context/completion lines, the valid loss after every epoch, then beam search over each
distinct test source and the task's official-parity scorer. Owns the official output layout.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf
from torch import nn

from lora_core import prepare_for_inference

from . import records
from .batching import collate_causal, encode_examples, prompt_separator
from .decode import DecodeConfig, generate_completions
from .engine import causal_lm_loss, evaluate_loss
from .metrics.registry import scorer
from .run_record import Record
from .tasks import group_references, load_examples


def _limit(items: list, n) -> list:
    return items if not n else items[: int(n)]


def write_official_layout(run_dir: Path, hypotheses: Sequence[str],
                          references: Sequence[Sequence[str]]) -> None:
    """predictions.txt (one line per source) and references.txt (groups split by blank lines),
    the layout `python -m experiments.metrics e2e --refs --hyp` and the E2E scorer read."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "predictions.txt").write_text("".join(h.replace("\n", " ") + "\n" for h in hypotheses))
    (run_dir / "references.txt").write_text("\n".join("".join(r.strip() + "\n" for r in group)
                                                      for group in references))


class GenerationJob:
    evaluates_untrained = True  # finish() needs no training history

    def __init__(self, cfg, tokenizer, device):
        self.cfg, self.tokenizer, self.device = cfg, tokenizer, device
        task = cfg.task
        self.scorer = scorer(task.scorer)
        self.train_examples = load_examples(task.name, task.splits.train, limit=cfg.data.max_train)
        self.valid_examples = load_examples(task.name, task.splits.valid, limit=cfg.data.max_valid)
        self.separator = prompt_separator(cfg)
        self.train_items = encode_examples(tokenizer, self.train_examples, task.seq_len,
                                           separator=self.separator)
        self.valid_items = encode_examples(tokenizer, self.valid_examples, task.seq_len,
                                           separator=self.separator)
        self.loss_fn = causal_lm_loss(cfg.train.label_smoothing)
        self.monitor = ("valid_loss", "lower")  # what train.patience watches
        self.chance = None  # a loss has no constant-predictor floor the plateau rule needs

    @classmethod
    def num_labels(cls, cfg) -> None:
        return None

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

    @staticmethod
    def _score(cfg, hypotheses, references, last) -> dict:
        options = OmegaConf.to_container(cfg.task.options, resolve=True) if cfg.task.get("options") else {}
        return scorer(cfg.task.scorer).score(hypotheses, references, [ex.meta for ex in last],
                                             options)

    def finish(self, model: nn.Module, run_dir: Path, record: Record, history: list) -> dict:
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
        record.status = "decoded"
        record.decode = {"sources": len(keys), "wall_s": round(time.perf_counter() - started, 2)}
        record.peak_memory_mb = round(records.peak_memory_mb(), 1)
        records.write_record(run_dir, record)
        print(f"[score] {self.cfg.task.name}: {len(hypotheses)} outputs against the official-"
              "parity scorer (METEOR's Java start takes a few seconds)", flush=True)
        return self._score(self.cfg, hypotheses, references, last)

    @classmethod
    def score_decoded(cls, cfg, run_dir: Path, record: Record) -> Path:
        """Finish a run whose outputs are decoded but not scored (e.g. decoded on a GPU box)."""
        hypotheses = (run_dir / "predictions.txt").read_text(encoding="utf-8").splitlines()
        keys, references, last = cls.test_sources(cfg)
        if len(hypotheses) != len(keys):
            raise ValueError(f"{run_dir / 'predictions.txt'} has {len(hypotheses)} lines for "
                             f"{len(keys)} test sources: decode again (move the run away)")
        record.metrics, record.status = cls._score(cfg, hypotheses, references, last), "complete"
        records.write_record(run_dir, record)
        print(f"[run] scored: {record.metrics}\n[run] record: {run_dir / records.RECORD}")
        return run_dir / records.RECORD
