"""The generation job scored after every epoch (SAMSum, WikiSQL, GLUE label words: the paper's
GPT-3 tasks, Tables 4, 8, 16): causal-LM training; after every epoch the eval split is decoded
and scored per example by the task's scorer, and the best epoch is reported (App. D.4: "the best
validation performance of each run").
"""
from __future__ import annotations

import time
from pathlib import Path

from omegaconf import OmegaConf
from torch import nn

from lora_core import prepare_for_inference

from . import records
from .batching import collate_causal, context_ids, encode_examples, prompt_separator
from .best_epoch import best_epoch
from .decode import DecodeConfig, generate_completions
from .engine import causal_lm_loss
from .generation_job import write_official_layout
from .metrics.registry import scorer
from .run_record import Record
from .tasks import load_examples
from .tasks.base import subsample
from .tasks.few_shot import draw_demonstrations, few_shot_prompt


class EpochGenerationJob:
    """Train on context/completion lines; decode and score the eval split after every
    `decode.every_epochs`-th epoch and the last (or once, for a run with nothing to train);
    report the best scored epoch, the last one beside it."""

    evaluates_untrained = True  # method=none: few-shot prompting runs with no training step

    def __init__(self, cfg, tokenizer, device):
        self.cfg, self.tokenizer, self.device = cfg, tokenizer, device
        task = cfg.task
        self.scorer = scorer(task.scorer)
        self.main_metric = self.scorer.main
        options = task.get("options")
        self.options = OmegaConf.to_container(options, resolve=True) if options else {}
        few_shot = self.options.pop("few_shot", None) or {}
        self.eval_split = task.splits.eval
        self.monitor = (f"{self.eval_split}/{self.main_metric}", "higher")  # train.patience
        seed = cfg.data.get("sample_seed")
        # MNLI-n (Table 16): n examples at random with the data's own seed, as ClassificationJob
        self.train_examples = subsample(
            load_examples(task.name, task.splits.train,
                          limit=None if seed is not None else cfg.data.max_train, **self.options),
            cfg.data.max_train, seed)
        self.eval_examples = load_examples(task.name, self.eval_split,
                                           limit=cfg.data.max_eval_sources, **self.options)
        self.truncation = task.get("truncation", "context_start")
        self.separator = prompt_separator(cfg)
        self.train_items = encode_examples(tokenizer, self.train_examples, task.seq_len,
                                           self.truncation, self.separator)
        self.loss_fn = causal_lm_loss(cfg.train.label_smoothing)
        decode = OmegaConf.to_container(cfg.decode, resolve=True)
        # decoding the eval split can cost more than an epoch of a small training set (Table 16's
        # n=100 on CPU), so a run may score every k-th epoch; the last is always scored
        self.decode_every = int(decode.pop("every_epochs", 1))
        if self.decode_every < 1:
            raise ValueError(f"decode.every_epochs={self.decode_every}: give 1 or more")
        self.decode_cfg = DecodeConfig(**decode)
        # demonstrations from this run's training examples (after max_train / sample_seed)
        self.demos = draw_demonstrations(self.train_examples, int(few_shot.get("per_class", 0)),
                                         int(few_shot.get("seed", 0)))
        eos = tokenizer.eos_token
        self.prompts = [few_shot_prompt(self.demos, ex.context, self.separator or eos, eos)
                        for ex in self.eval_examples]
        self._predictions: dict[int, list[str]] = {}
        self.chance = self.constant_score()

    @classmethod
    def num_labels(cls, cfg) -> None:
        return None

    @classmethod
    def score_decoded(cls, cfg, run_dir: Path, record: Record) -> Path:
        raise ValueError(f"{run_dir / records.RECORD} says `decoded`, which a run scored after "
                         f"every epoch ({cfg.task.name}) never writes: move the directory away "
                         "to start over")

    def constant_score(self) -> float | None:
        """For an accuracy task (a label word per line), the accuracy of always answering the
        commonest label: what a run that has not begun to learn scores, so the plateau rule does
        not read its flat scores as convergence. None for free text (no constant baseline)."""
        if self.main_metric != "accuracy" or not self.eval_examples:
            return None
        refs = [ex.completion for ex in self.eval_examples]
        metas = [ex.meta for ex in self.eval_examples]
        return max(self.scorer.score([c] * len(refs), refs, metas, self.options)["accuracy"]
                   for c in sorted(set(refs)))

    @staticmethod
    def collate(items):
        return collate_causal(items, pad_id=0)

    def _truncated_prompts(self) -> int:
        """Eval prompts the decoder left-truncates (prompt + separator over max_context_tokens)."""
        limit = self.decode_cfg.max_context_tokens
        return sum(len(context_ids(self.tokenizer, p, self.separator)) > limit
                   for p in self.prompts)

    def data_summary(self) -> dict:
        sources = sorted({str(ex.meta["source"]) for ex in self.train_examples + self.eval_examples
                          if "source" in ex.meta})
        return {"train_examples": len(self.train_examples),
                "eval_examples": {self.eval_split: len(self.eval_examples)},
                "truncated_train": sum(it.truncated for it in self.train_items),
                "truncated_eval": self._truncated_prompts(),
                "truncation": self.truncation,
                "few_shot_demonstrations": len(self.demos), "sources": sources}

    def evaluate(self, model: nn.Module) -> tuple[list[str], dict]:
        hyps = generate_completions(model, self.tokenizer, self.prompts, self.decode_cfg,
                                    device=self.device, separator=self.separator)
        return hyps, self.scorer.score(hyps, [ex.completion for ex in self.eval_examples],
                                       [ex.meta for ex in self.eval_examples], self.options)

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict:
        if epoch % self.decode_every and epoch != self.cfg.train.epochs:
            return {}
        started = time.perf_counter()
        hyps, scores = self.evaluate(model)
        self._predictions[epoch] = hyps
        return {"decode_wall_s": round(time.perf_counter() - started, 2),
                **{f"{self.eval_split}/{k}": v for k, v in scores.items()}}

    def finish(self, model: nn.Module, run_dir: Path, record: Record, history: list) -> dict:
        key = self.monitor[0]
        started = time.perf_counter()
        scored = [h for h in history if key in h]
        if scored:
            best = best_epoch(scored, key)
            if best is None:  # no scored epoch has a finite value
                best = scored[-1]
                record.best_epoch_note = f"no epoch has a finite {key}: the last is reported"
            record.best_epoch = best["epoch"]
            record.metrics_last_epoch = {k: v for k, v in scored[-1].items() if "/" in k}
            metrics = {k: v for k, v in best.items() if "/" in k}
            if best["epoch"] in self._predictions:
                hyps, record.predictions_epoch = self._predictions[best["epoch"]], best["epoch"]
            else:  # resumed past the best epoch: its outputs are gone, decode the final weights
                hyps, _ = self.evaluate(model)
                record.predictions_epoch = history[-1]["epoch"]
        else:  # nothing trained: one decode, LoRA merged / prefixes folded (same outputs)
            prepare_for_inference(model)
            hyps, scores = self.evaluate(model)
            metrics = {f"{self.eval_split}/{k}": v for k, v in scores.items()}
        write_official_layout(run_dir, hyps, [[ex.completion] for ex in self.eval_examples])
        wall = scored[-1]["decode_wall_s"] if scored else time.perf_counter() - started
        record.decode = {"sources": len(self.prompts), "wall_s": round(wall, 2)}
        record.peak_memory_mb = round(records.peak_memory_mb(), 1)
        return metrics
