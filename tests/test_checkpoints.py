"""Checkpoints without pickle: a resumed run's weights *and* history equal the uninterrupted
run's; planted, cut-off or foreign checkpoint files give an error naming the file."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

from experiments.batching import collate_causal
from experiments.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from experiments.engine import TrainConfig, causal_lm_loss, train
from lora_core import LoRAConfig, apply_lora

from .conftest import tiny_model
from .test_engine import items, lora_gpt2


def run(cfg, checkpoint=None, stop=0, model=None):
    model = model or lora_gpt2()
    result = train(model, items(), collate_causal, causal_lm_loss(0.1), cfg,
                   checkpoint=checkpoint, stop_after_steps=stop)
    return model, result


def test_state_round_trips_through_json_and_safetensors(tmp_path):
    state = {"trainable": {"a.lora_A": torch.randn(2, 3)}, "rng": torch.get_rng_state(),
             "optimizer": {"state": {0: {"step": torch.tensor(3.0)}},
                           "param_groups": [{"betas": (0.9, 0.999), "params": [0]}]},
             "history": [{"epoch": 1, "train_loss": 0.25, "valid/x": float("nan")}], "step": 7}
    path = save_checkpoint(tmp_path / "last.json", state)
    back = load_checkpoint(path)
    assert torch.equal(back["trainable"]["a.lora_A"], state["trainable"]["a.lora_A"])
    assert torch.equal(back["rng"], state["rng"])
    assert list(back["optimizer"]["state"]) == [0]  # int keys stay ints (optimizer needs them)
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["step"] == 7 and back["history"][0]["train_loss"] == 0.25
    assert back["history"][0]["valid/x"] != back["history"][0]["valid/x"]  # NaN kept
    json.loads(path.read_text())  # the manifest is plain JSON
    # a second save leaves one tensor file, the one the manifest names
    save_checkpoint(path, state)
    files = list(tmp_path.glob("last-*.safetensors"))
    assert [f.name for f in files] == [json.loads(path.read_text())["tensors"]]
    shared = torch.randn(4, 4)  # views of one storage, which safetensors refuses as they are
    back = load_checkpoint(save_checkpoint(tmp_path / "views.json", {"a": shared, "b": shared[1]}))
    assert torch.equal(back["a"], shared) and torch.equal(back["b"], shared[1])


def test_resumed_history_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=4, warmup_steps=2, log_every=0, save_every=4)
    full, full_result = run(cfg)
    ckpt = tmp_path / "last.json"
    run(cfg, ckpt, stop=5)  # killed after step 5, mid-epoch 1; last checkpoint at step 4
    resumed, result = run(cfg, ckpt)
    assert result.resumed_from == 4 and result.steps == 12
    # before the fix the resumed epoch 1 averaged only batches 5-6: a different train_loss
    assert result.history == full_result.history
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_resume_after_training_ended_adds_no_epoch(tmp_path):
    # max_steps ends training inside epoch 1 of 2; a kill while decoding then resumes
    cfg = TrainConfig(lr=1e-2, epochs=2, max_steps=3, batch_size=4, log_every=0)
    _, full = run(cfg)
    ckpt = tmp_path / "last.json"
    run(cfg, ckpt)
    _, resumed = run(cfg, ckpt)
    assert len(full.history) == 1
    assert resumed.history == full.history  # not a second epoch with train_loss 0.0
    assert resumed.steps == 3


def test_planted_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    ckpt = tmp_path / "last.json"
    ckpt.write_bytes(pickle.dumps(Payload(), protocol=2))
    with pytest.raises(CheckpointError, match=r"last\.json: not a lora-repro checkpoint.*pickle"):
        run(TrainConfig(batch_size=4, log_every=0), ckpt)
    assert not marker.exists()


def test_corrupt_checkpoints_name_the_file(tmp_path):
    cfg = TrainConfig(lr=1e-2, epochs=1, batch_size=4, log_every=0, save_every=2)
    ckpt = tmp_path / "last.json"
    run(cfg, ckpt, stop=2)
    weights = next(tmp_path.glob("last-*.safetensors"))
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # cut off
    with pytest.raises(CheckpointError, match=rf"{weights.name}: .*cut off"):
        run(cfg, ckpt)
    weights.write_bytes(b"\x00" * len(data))  # right size, garbage
    with pytest.raises(CheckpointError, match=rf"{weights.name}: not a readable safetensors"):
        run(cfg, ckpt)
    weights.write_bytes(data)
    other = tiny_model("gpt2")  # another method: the checkpoint's tensors do not fit
    apply_lora(other, LoRAConfig(targets={"q": 2}, alpha=8))
    with pytest.raises(CheckpointError, match=r"last\.json: does not fit this run"):
        run(cfg, ckpt, model=other)
    ckpt.write_text("{\"format\": \"something-else\"}")
    with pytest.raises(CheckpointError, match=r"last\.json: format 'something-else'"):
        run(cfg, ckpt)
