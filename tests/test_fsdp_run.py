"""`train.fsdp=true` through the real pipeline and engine (`python -m experiments.run`), two gloo
CPU processes started without torchrun (each given the env:// variables torchrun would set), on
a tiny random-init MiniLM for RTE, LoRA and FT: the same loss curve, dev scores and trained
weights as one process on the same global batch (float rounding), the adapter or trained
tensors in the single-device files, and a run killed after a sharded checkpoint that resumes to
the uninterrupted run's record, weights byte for byte."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from experiments.paths import REPO_ROOT

from .conftest import shared_data_or_skip

DIST_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
            "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")
# 16 RTE pairs, 2 epochs: 2 ranks x batch 4 = one process's batch 8, 2 steps an epoch. The
# official order gives rank r every other item of the one-process batch; no dropout (its masks
# would differ); a clip norm the gradients exceed, so clipping acts on the sharded gradients.
BUDGET = ["profile=smoke", "train.batch_order=official", "train.max_steps=0", "train.epochs=2",
          "train.log_every=1", "train.save_every=1", "train.clip_norm=0.05",
          "+model.arch.hidden_dropout_prob=0.0", "+model.arch.attention_probs_dropout_prob=0.0"]
STEPS, KILL_AT = 4, 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(results: Path, experiment: str, *extra: str, ranks: int = 1, kill_at: int = 0):
    """The run's processes (one per rank), finished; asserts each exited cleanly."""
    base = {k: v for k, v in os.environ.items() if k not in DIST_ENV and not k.startswith("SUBMITIT")}
    base.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", WANDB_MODE="disabled",
                PYTHONPATH=str(REPO_ROOT))
    entry = ([str(REPO_ROOT / "tests" / "killed_run.py"), str(kill_at)] if kill_at
             else ["-m", "experiments.run"])
    port, procs = _free_port(), []
    for rank in range(ranks):
        env = dict(base)
        if ranks > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(ranks),
                       LOCAL_WORLD_SIZE=str(ranks), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        cmd = [sys.executable, *entry, f"experiment={experiment}", *BUDGET, *extra,
               f"paths.results={results}", f"hydra.run.dir={results}/hydra/{len(procs)}"]
        procs.append(subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outs = []
    for proc in procs:
        try:
            outs.append(proc.communicate(timeout=400)[0])
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-4000:]
    return outs


def _record(results: Path, experiment: str) -> tuple[dict, Path]:
    run_dir = results / "runs" / experiment / "seed1"
    return json.loads((run_dir / "record.json").read_text()), run_dir


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    adapter = run_dir / "adapter" / "lora_adapter.safetensors"
    return load_file(str(adapter if adapter.exists() else run_dir / "trainable.safetensors"))


@pytest.fixture(scope="module", params=["lora", "ft"])
def runs(request, tmp_path_factory):
    shared_data_or_skip("data", "glue", "RTE")
    experiment = f"table2_minilm/{request.param}_rte"
    out = tmp_path_factory.mktemp(request.param)
    _launch(out / "one", experiment, "train.batch_size=8")
    _launch(out / "fsdp", experiment, "train.fsdp=true", ranks=2)
    killed = _launch(out / "killed", experiment, "train.fsdp=true", ranks=2, kill_at=KILL_AT)
    assert all(f"stopped at step {KILL_AT}" in o for o in killed)
    _launch(out / "killed", experiment, "train.fsdp=true", "run.resume=true", ranks=2)
    return request.param, experiment, out


@pytest.mark.slow
def test_fsdp_run_matches_one_process(runs):
    method, experiment, out = runs
    one, one_dir = _record(out / "one", experiment)
    two, two_dir = _record(out / "fsdp", experiment)
    assert one["status"] == two["status"] == "complete"
    assert one["distributed"] == {"world_size": 1, "strategy": "single", "backend": None}
    assert two["distributed"] == {"world_size": 2, "strategy": "fsdp", "backend": "gloo"}
    assert one["train"]["steps"] == two["train"]["steps"] == STEPS
    curve_one = [p["loss"] for p in one["train"]["curve"] if "loss" in p]
    curve_two = [p["loss"] for p in two["train"]["curve"] if "loss" in p]
    assert len(curve_one) == STEPS and len(set(curve_one)) == STEPS  # it trained
    assert curve_two == pytest.approx(curve_one, rel=1e-5)
    # the curve's token axis counts both ranks' tokens, as one process counts its whole batch
    assert [p["tokens"] for p in two["train"]["curve"]] == [p["tokens"] for p in one["train"]["curve"]]
    # the dev scores after each epoch (computed on the sharded model) and the reported ones
    # (rank 0 on the gathered weights) are one process's
    for a, b in zip(one["train"]["history"], two["train"]["history"], strict=True):
        assert {k: v for k, v in a.items() if "/" in k} == {k: v for k, v in b.items() if "/" in k}
    assert one["metrics"] == two["metrics"]
    # the trained tensors, gathered, in the single-device files (LoRA: the adapter and its config)
    a, b = _weights(one_dir), _weights(two_dir)
    assert a.keys() == b.keys() and (method == "lora") == any("lora_" in k for k in a)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-6, msg=name)
    if method == "lora":
        assert (one_dir / "adapter" / "lora_config.json").read_text() == \
            (two_dir / "adapter" / "lora_config.json").read_text()
    assert not (two_dir / "checkpoints").exists()  # a complete run drops its checkpoint


@pytest.mark.slow
def test_killed_fsdp_run_resumes_to_the_uninterrupted_one(runs):
    _, experiment, out = runs
    whole, whole_dir = _record(out / "fsdp", experiment)
    resumed, resumed_dir = _record(out / "killed", experiment)
    assert resumed["status"] == "complete" and resumed["train"]["resumed_from_step"] == KILL_AT
    assert resumed["train"]["curve"] == whole["train"]["curve"]
    assert resumed["train"]["history"] == whole["train"]["history"]
    assert resumed["metrics"] == whole["metrics"]
    assert resumed["weights"] == whole["weights"]  # sha256 of the saved files: byte for byte


@pytest.mark.slow
def test_sharded_checkpoint_layout(tmp_path):
    """What a killed FSDP run leaves: last.json naming one directory of per-rank safetensors
    shards (no pickle); a resume without train.fsdp is refused, naming the key."""
    shared_data_or_skip("data", "glue", "RTE")
    experiment = "table2_minilm/lora_rte"
    _launch(tmp_path, experiment, "train.fsdp=true", ranks=2, kill_at=2)
    checkpoints = tmp_path / "runs" / experiment / "seed1" / "checkpoints"
    manifest = json.loads((checkpoints / "last.json").read_text())
    assert manifest["world_size"] == 2 and manifest["format"].startswith("lora-repro-sharded")
    # the step-1 directory went once step 2's was named
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last-step2-at0.2", "last.json"]
    assert sorted(p.name for p in (checkpoints / manifest["shards"]).iterdir()) == [
        "extra.json", "rank0-of-2.safetensors", "rank1-of-2.safetensors"]
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV}
    done = subprocess.run([sys.executable, "-m", "experiments.run", f"experiment={experiment}",
                           *BUDGET, "run.resume=true", f"paths.results={tmp_path}",
                           f"hydra.run.dir={tmp_path}/hydra/x"], cwd=REPO_ROOT,
                          env=dict(env, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "train.fsdp: True -> None" in done.stderr


def test_engine_refuses_a_checkpoint_of_the_other_kind(tmp_path):
    from experiments.engine import TrainConfig, classification_loss, train
    from experiments.train_checkpoint import SHARDED_FORMAT, CheckpointError

    from .conftest import tiny_model

    model = tiny_model("bert").train()
    items = [{"input_ids": [5, 6, 7], "labels": 1}] * 4
    checkpoint = tmp_path / "last.json"
    checkpoint.write_text(json.dumps({"format": SHARDED_FORMAT, "shards": "x", "world_size": 2}))
    collate = lambda its: {"input_ids": torch.tensor([i["input_ids"] for i in its]),  # noqa: E731
                           "attention_mask": torch.ones(len(its), 3, dtype=torch.long),
                           "labels": torch.tensor([i["labels"] for i in its])}
    with pytest.raises(CheckpointError, match="written by an FSDP run: resume it with train.fsdp"):
        train(model, items, collate, classification_loss(), TrainConfig(batch_size=2),
              checkpoint=checkpoint)
    with pytest.raises(ValueError, match="train.fsdp=true needs a model"):
        train(model, items, collate, classification_loss(), TrainConfig(batch_size=2, fsdp=True))


def _gather_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from experiments import sharding

    from .conftest import tiny_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = tiny_model("gpt2").train()  # lm_head.weight is transformer.wte.weight
    skeleton = sharding.meta_copy(model)
    sharding.shard_model(model, "gpt2")
    ids = torch.randint(3, 97, (2, 10), generator=torch.Generator().manual_seed(rank))
    model(input_ids=ids, labels=ids).loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()  # the gathered weights are the trained ones
    probe = torch.arange(3, 13).unsqueeze(0)
    with torch.no_grad():
        sharded_logits = model.eval()(input_ids=probe).logits
    full = sharding.gather_model(model, skeleton)
    if rank == 0:
        assert type(full).__name__ == "GPT2LMHeadModel"  # an ordinary module, no FSDP hooks
        assert full.lm_head.weight is full.transformer.wte.weight
        with torch.no_grad():
            logits = full(input_ids=probe).logits
        from safetensors.torch import save_file

        save_file({"sharded": sharded_logits.contiguous(), "full": logits.contiguous()}, out)
    else:
        assert full is None
    dist.destroy_process_group()


@pytest.mark.slow
def test_gathered_model_is_the_trained_one_with_its_ties(tmp_path):
    """gather_model fills the meta copy with the sharded model's trained weights, GPT-2's tied
    embedding and head stay one tensor, and the result computes what the sharded model does."""
    import torch.multiprocessing as mp

    out = tmp_path / "logits.safetensors"
    mp.spawn(_gather_worker, args=(_free_port(), str(out)), nprocs=2)
    logits = load_file(str(out))
    torch.testing.assert_close(logits["full"], logits["sharded"], rtol=0, atol=1e-5)
