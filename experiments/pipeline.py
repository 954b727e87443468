"""One experiment run, as plain stages: model -> method -> data -> train -> decode -> score -> record.

`run_experiment(cfg)` takes the composed Hydra config (or any mapping of the same shape) and
returns the record path; `experiments.run` only hands it the config.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from lora_core import apply_method, count_parameters, merge_lora, save_adapter

from . import records
from .batching import collate_causal, encode_examples
from .decode import DecodeConfig, generate_completions
from .engine import TrainConfig, causal_lm_loss, evaluate_loss, train
from .models import load_model, model_spec, shrink_spec
from .nlg_scoring import score_generation, write_official_layout
from .tasks import group_references, load_examples
from .tracking import make_tracker

# Adapter files above this size stay out of git (results/weights/, hash in the record).
MAX_COMMITTED_WEIGHTS_MB = 5


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(cfg) -> torch.device:
    want = cfg.get("device", "auto")
    if want == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(want)


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if world > 1:
        return torch.distributed.get_rank(), world
    return 0, 1


def build_model(cfg):
    """The model of cfg.model at cfg.model.init, shrunk when the profile asks for it."""
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    init = model_cfg.pop("init", "pretrained")
    shrink = model_cfg.pop("shrink", None)
    spec = model_spec(model_cfg)
    if shrink:
        spec = shrink_spec(spec, **shrink)
    loaded = load_model(spec, init=init, seed=cfg.seed)
    if loaded.tokenizer is None:
        raise ValueError(f"no tokenizer for model {spec.name}: generation tasks need one")
    return spec, loaded


def _limit(items: list, n) -> list:
    return items if not n else items[: int(n)]


def _method_params(cfg) -> tuple[str, dict]:
    params = OmegaConf.to_container(cfg.method, resolve=True)
    return params.pop("name"), params


def _save_trained_weights(model, run_dir: Path, results: Path, experiment: str, seed: int) -> dict:
    """LoRA: the adapter beside the record. Other methods: the trainable tensors, beside the
    record when small, else in the git-ignored results/weights/ with their hash recorded."""
    if getattr(model, "lora_config", None) is not None:
        path = save_adapter(model, model.lora_config, run_dir / "adapter", overwrite=True)
        files = [path / "lora_adapter.safetensors"]
    else:
        from safetensors.torch import save_file

        tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters()
                   if p.requires_grad}
        size_mb = sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20
        where = run_dir if size_mb <= MAX_COMMITTED_WEIGHTS_MB else (
            results / "weights" / experiment / f"seed{seed}")
        where.mkdir(parents=True, exist_ok=True)
        files = [where / "trainable.safetensors"]
        # tied weights (GPT-2's lm_head = wte) appear once as parameters, so no sharing here
        save_file(tensors, str(files[0]))
    return {str(f.relative_to(results) if f.is_relative_to(results) else f): records.sha256_file(f)
            for f in files}


def _test_sources(cfg):
    """(keys, references, last example) of each distinct test source, as decoded."""
    keys, references, last = group_references(load_examples(cfg.task.name, cfg.task.splits.test))
    n = cfg.data.max_eval_sources
    return _limit(keys, n), _limit(references, n), _limit(last, n)


def score_decoded_run(cfg, run_dir: Path, record: dict) -> Path:
    """Finish a run whose outputs are decoded but not yet scored (e.g. decoded on a GPU box)."""
    hypotheses = (run_dir / "predictions.txt").read_text(encoding="utf-8").splitlines()
    keys, references, last = _test_sources(cfg)
    if len(hypotheses) != len(keys):
        raise ValueError(f"{run_dir / 'predictions.txt'} has {len(hypotheses)} lines for "
                         f"{len(keys)} test sources: decode again (move the run away)")
    record["metrics"] = score_generation(cfg.task.name, hypotheses, references,
                                         [ex.meta for ex in last])
    record["status"] = "complete"
    records.write_record(run_dir, record)
    print(f"[run] scored: {record['metrics']}\n[run] record: {run_dir / records.RECORD}")
    return run_dir / records.RECORD


def run_experiment(cfg: DictConfig) -> Path:
    seed = int(cfg.seed)
    device = _device(cfg)
    rank, world = _init_distributed(device)
    results = Path(cfg.paths.results)
    experiment = cfg.run.name
    run_dir = records.run_directory(results, experiment, seed, new_dir=cfg.run.new_dir)
    previous = records.check_can_start(run_dir, resume=cfg.run.resume) if rank == 0 else None
    if previous and previous.get("status") == "decoded":
        return score_decoded_run(cfg, run_dir, previous)
    seed_everything(seed)

    spec, loaded = build_model(cfg)
    model, tokenizer = loaded.model.to(device), loaded.tokenizer
    method, method_params = _method_params(cfg)
    apply_method(model, method, family=spec.family, **method_params)
    count = count_parameters(model)

    task = cfg.task
    train_examples = load_examples(task.name, task.splits.train, limit=cfg.data.max_train)
    valid_examples = load_examples(task.name, task.splits.valid, limit=cfg.data.max_valid)
    train_items = encode_examples(tokenizer, train_examples, task.seq_len)
    valid_items = encode_examples(tokenizer, valid_examples, task.seq_len)
    loss_fn = causal_lm_loss(cfg.train.label_smoothing)
    collate = lambda items: collate_causal(items, pad_id=0)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    record = previous or {
        "experiment": experiment, "table": cfg.run.table, "row": cfg.run.row,
        "model": spec.name, "model_display": spec.display_name, "model_source": loaded.source,
        "method": method, "task": task.name, "profile": cfg.profile.name, "seed": seed,
        "status": "running", "config": resolved,
        "params": {"trainable": count.trainable, "total": count.total},
        "data": {"train_examples": len(train_examples), "valid_examples": len(valid_examples),
                 "truncated_train": sum(it.truncated for it in train_items)},
    }
    record["environment"] = records.environment()
    if rank == 0:
        records.write_record(run_dir, record)
    tracker = make_tracker(OmegaConf.to_container(cfg.logger, resolve=True) if rank == 0 else None,
                           project=f"table{cfg.run.table}", group=str(cfg.run.row),
                           name=f"seed{seed}", config=resolved, directory=results / "wandb")

    def on_epoch_end(epoch: int, m) -> dict:
        return {"valid_loss": evaluate_loss(m, valid_items, collate, loss_fn,
                                            cfg.train.batch_size, device)}

    train_cfg = TrainConfig(**{k: v for k, v in OmegaConf.to_container(cfg.train).items()
                               if k in TrainConfig.__dataclass_fields__}, seed=seed)
    print(f"[run] {experiment} seed {seed}: {spec.name} + {method} on {task.name} "
          f"({len(train_items)} train lines, {count.trainable:,} trainable) -> {run_dir}")
    result = train(model, train_items, collate, loss_fn, train_cfg,
                   checkpoint=run_dir / "checkpoints" / "last.pt", on_step=tracker.log,
                   on_epoch_end=on_epoch_end, device=device)
    if rank != 0:
        torch.distributed.barrier()
        return run_dir / records.RECORD
    record["train"] = {"steps": result.steps, "wall_s": round(result.wall_s, 2),
                       "tokens_per_s": round(result.tokens_per_s, 1), "history": result.history,
                       "resumed_from_step": result.resumed_from}
    record["weights"] = _save_trained_weights(model, run_dir, results, experiment, seed)

    # Decode each distinct test source once; LoRA merged first (no extra latency, same outputs).
    keys, references, last = _test_sources(cfg)
    merge_lora(model)
    decode_cfg = DecodeConfig(**OmegaConf.to_container(cfg.decode, resolve=True))
    started = time.perf_counter()
    hypotheses = generate_completions(model, tokenizer, [ex.context for ex in last],
                                      decode_cfg, device=device)
    write_official_layout(run_dir, hypotheses, references)
    # "decoded" first: if scoring fails (no Java, say), run.resume=true only scores.
    record.update({"status": "decoded", "decode": {
        "sources": len(keys), "wall_s": round(time.perf_counter() - started, 2)},
        "peak_memory_mb": round(records.peak_memory_mb(), 1)})
    records.write_record(run_dir, record)
    metrics = score_generation(task.name, hypotheses, references, [ex.meta for ex in last])
    record.update({"metrics": metrics, "status": "complete"})
    records.write_record(run_dir, record)
    tracker.summary(metrics)
    tracker.finish()
    if world > 1:
        torch.distributed.barrier()
    print(f"[run] done: {metrics}\n[run] record: {run_dir / records.RECORD}")
    return run_dir / records.RECORD
