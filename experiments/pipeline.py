"""One experiment run, as plain stages: model -> method -> data -> train -> decode -> score -> record.

`run_experiment(cfg)` takes the composed Hydra config (or any mapping of the same shape) and
returns the record path; `experiments.run` only hands it the config.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from lora_core import apply_method, count_parameters, init_from_adapter

from . import records
from .distribution import Distribution
from .engine import TrainConfig, TrainResult, train
from .job import job_class, present_heads
from .models import load_model, spec_from_config
from .run_checks import check_run_config, resume_differences
from .run_record import Record
from .tracking import make_tracker
from .weights import save_trained_weights


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _device(cfg) -> torch.device:
    """cfg.device; under torchrun each rank takes the GPU of its LOCAL_RANK (`cuda` alone
    would put every rank on GPU 0)."""
    want = cfg.get("device", "auto")
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(want)
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    return device


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if world > 1:
        return torch.distributed.get_rank(), world
    return 0, 1


def warmup_steps_for_tokens(tokens: int, items: list, samples_per_step: int) -> int:
    """Table 12 gives GPT-3's warm-up in tokens (250,000): the optimizer steps that take, at the
    mean length of this run's training lines (padding not counted), at least 1."""
    if not items:
        return 1
    lengths = [len(it["input_ids"] if isinstance(it, dict) else it.input_ids) for it in items]
    per_step = samples_per_step * sum(lengths) / len(lengths)
    return max(1, int(np.ceil(tokens / per_step)))


def build_model(cfg, num_labels: int | None = None, with_tokenizer: bool = True):
    """The model of cfg.model at cfg.model.init, shrunk when the profile asks for it; with a
    classification head of `num_labels` for classification tasks (and its tokenizer, which
    every task needs, unless with_tokenizer=False)."""
    spec, init = spec_from_config(OmegaConf.to_container(cfg.model, resolve=True))
    head = "sequence_classification" if num_labels else "causal_lm"
    loaded = load_model(spec, init=init, seed=cfg.seed, head=head, num_labels=num_labels,
                        with_tokenizer=with_tokenizer)
    if with_tokenizer and loaded.tokenizer is None:
        raise ValueError(f"no tokenizer for model {spec.name}: every task needs one")
    return spec, loaded


def _method_params(cfg) -> tuple[str, dict]:
    params = OmegaConf.to_container(cfg.method, resolve=True)
    return params.pop("name"), params


def run_experiment(cfg: DictConfig) -> Path:
    """Check the config (nothing is written for a run that cannot start), then run it while
    holding the lock on its directory (a second run into the same directory is refused)."""
    check_run_config(cfg)
    device = _device(cfg)
    rank, world = _init_distributed(device)
    run_dir = records.run_directory(Path(cfg.paths.results), cfg.run.name, int(cfg.seed),
                                    new_dir=cfg.run.new_dir)
    with records.run_lock(run_dir) if rank == 0 else nullcontext():
        return _run_in(cfg, run_dir, device, rank, world)


def _previous_record(cfg, run_dir: Path) -> Record | None:
    """The unfinished record to resume (None for a fresh run); refused where the config now
    differs from the one it recorded, naming the keys."""
    previous = records.check_can_start(run_dir, resume=cfg.run.resume)
    if previous is None:
        return None
    recorded = previous.config
    if not isinstance(recorded, dict):
        raise records.RunExistsError(f"{run_dir / records.RECORD} holds no `config` to resume "
                                     "with; move the directory away to start over")
    now = json.loads(json.dumps(OmegaConf.to_container(cfg, resolve=True), default=str))
    changed = resume_differences(recorded, now)
    if changed:
        raise records.RunExistsError(
            f"run.resume=true: the config differs from the one {run_dir / records.RECORD} was "
            "started with:\n  " + "\n  ".join(changed) + "\nResume with the recorded values, "
            "or start over with run.new_dir=true (a fresh seed<k>-N directory).")
    return previous


def _run_in(cfg: DictConfig, run_dir: Path, device: torch.device, rank: int, world: int) -> Path:
    seed = int(cfg.seed)
    results = Path(cfg.paths.results)
    experiment = cfg.run.name
    previous = _previous_record(cfg, run_dir) if rank == 0 else None
    job_type = job_class(cfg)
    if previous and previous.status == "decoded":
        return job_type.score_decoded(cfg, run_dir, previous)
    seed_everything(seed)
    distribution = Distribution.of_run(cfg, world)

    num_labels = job_type.num_labels(cfg)
    spec, loaded = build_model(cfg, num_labels=num_labels)
    model, tokenizer = loaded.model.to(device), loaded.tokenizer
    method, method_params = _method_params(cfg)
    heads = present_heads(model, spec.family) if num_labels else []
    apply_method(model, method, head_modules=heads, family=spec.family, **method_params)
    init_note = init_from_adapter(model, cfg.init_from) if cfg.get("init_from") else None
    count = count_parameters(model, head_modules=heads)
    distribution.shard(model, spec.family)  # train.fsdp: after the method, so LoRA is sharded too

    job = job_type(cfg, tokenizer, device)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    record = previous or Record(
        experiment=experiment, table=cfg.run.table, row=cfg.run.row,
        model=spec.name, model_display=spec.display_name, model_source=loaded.source,
        method=method, task=cfg.task.name, profile=cfg.profile.name, seed=seed,
        status="running", config=resolved,
        # the paper counts neither heads nor classifier layers (issue #16): both are kept
        params={"trainable": count.trainable, "total": count.total, "head": count.head,
                "trainable_without_head": count.trainable_without_head,
                "deployed": count.deployed},
        data=job.data_summary(), init_from=init_note)
    record.environment = records.environment()
    record.distributed = distribution.summary()
    if rank == 0:
        records.write_record(run_dir, record)
    tracker = make_tracker(OmegaConf.to_container(cfg.logger, resolve=True) if rank == 0 else None,
                           project=f"table{cfg.run.table}", group=str(cfg.run.row),
                           name=f"seed{seed}", config=resolved, directory=results / "wandb")

    train_opts = {k: v for k, v in OmegaConf.to_container(cfg.train, resolve=True).items()
                  if k in TrainConfig.__dataclass_fields__}
    if cfg.train.get("warmup_tokens") and not train_opts.get("warmup_steps"):
        train_opts["warmup_steps"] = warmup_steps_for_tokens(
            int(cfg.train.warmup_tokens), job.train_items,
            int(cfg.train.batch_size) * int(cfg.train.get("grad_accum", 1)) * world)
        record.train_warmup_steps = train_opts["warmup_steps"]
    train_cfg = TrainConfig(**train_opts, seed=seed)
    print(f"[run] {experiment} seed {seed}: {spec.name} + {method} on {cfg.task.name} "
          f"({len(job.train_items)} train items, {count.trainable:,} trainable) -> {run_dir}")
    if count.trainable == 0:
        # method=none (few-shot prompting, Table 8): nothing to train or save, only evaluate
        if not job.evaluates_untrained:
            raise ValueError(f"method {method!r} leaves nothing trainable, and task "
                             f"{cfg.task.name} (task.evaluate={cfg.task.evaluate}) reports the best "
                             "trained epoch: use a method that trains")
        result = TrainResult(0, 0.0, 0.0, [], 0)
    else:
        if (run_dir / "checkpoints" / "last.pt").exists():
            print(f"[run] {run_dir / 'checkpoints' / 'last.pt'} is a torch.save pickle from an "
                  "older version: not loaded (a pickle can run code); training starts from "
                  "step 0, to the same result")
        result = train(model, job.train_items, job.collate, job.loss_fn, train_cfg,
                       checkpoint=run_dir / "checkpoints" / "last.json", on_step=tracker.log,
                       on_epoch_end=job.on_epoch_end, device=device,
                       monitor=job.monitor, chance=job.chance)
    model = distribution.full_model(model)  # FSDP: rank 0 gets the gathered full weights
    if rank != 0:
        # rank 0 saves, decodes and scores alone (hours for a large model): a barrier here
        # would time out (the process group's 10 to 30 minutes) and take the job down with it
        return run_dir / records.RECORD
    # training and per-epoch evaluation timed apart; tokens/s is training's own
    record.train = result.summary()
    record.weights = (save_trained_weights(model, run_dir, results, experiment, seed)
                      if count.trainable else {})

    metrics = job.finish(model, run_dir, record, result.history)
    record.metrics, record.status = metrics, "complete"
    records.write_record(run_dir, record)
    # a complete run is never resumed: its training checkpoint (optimizer state too) can go
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    tracker.summary(metrics)
    tracker.finish()
    print(f"[run] done: {metrics}\n[run] record: {run_dir / records.RECORD}")
    return run_dir / records.RECORD
