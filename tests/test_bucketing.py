"""Length-bucketed batch order: every kept example once per epoch, reproducible from the seed,
less padding than the official order, and a resumed bucketed run equal to an uninterrupted one."""
from __future__ import annotations

import random

import pytest
import torch

from experiments.batch_order import BUCKET_MEGABATCHES, epoch_batches
from experiments.batching import Encoded, collate_causal
from experiments.engine import TrainConfig, causal_lm_loss, train
from lora_core import LoRAConfig, apply_lora

from .conftest import tiny_model


def lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 90) for _ in range(n)]


@pytest.mark.parametrize("n,batch", [(800, 16), (803, 16), (37, 4), (2000, 8)])
def test_each_example_once_per_epoch(n, batch):
    lens = lengths(n)
    for epoch in range(3):
        batches = epoch_batches(n, batch, seed=7, epoch=epoch, lengths=lens, order="length_buckets")
        flat = [i for b in batches for i in b]
        assert all(len(b) == batch for b in batches)
        assert len(flat) == len(set(flat)) == n - n % batch  # drop_last, nothing repeated
        # the same examples as the official order keeps (the same shuffled tail is dropped)
        official = epoch_batches(n, batch, seed=7, epoch=epoch)
        assert sorted(flat) == sorted(i for b in official for i in b)


def test_order_is_reproducible_from_the_seed():
    lens = lengths(500)
    a = epoch_batches(500, 8, seed=3, epoch=1, lengths=lens, order="length_buckets")
    assert a == epoch_batches(500, 8, seed=3, epoch=1, lengths=lens, order="length_buckets")
    assert a != epoch_batches(500, 8, seed=4, epoch=1, lengths=lens, order="length_buckets")
    assert a != epoch_batches(500, 8, seed=3, epoch=2, lengths=lens, order="length_buckets")


def test_buckets_pad_less_and_sort_within_megabatches():
    n, batch = 800, 16
    lens = lengths(n)
    padded = lambda bs: sum(len(b) * max(lens[i] for i in b) for b in bs)  # noqa: E731
    bucketed = epoch_batches(n, batch, 1, 0, lens, "length_buckets")
    official = epoch_batches(n, batch, 1, 0)
    assert padded(bucketed) < 0.7 * padded(official)
    # within one mega-batch (here the whole epoch: 800 < 50 x 16) batches do not overlap in length
    assert n <= BUCKET_MEGABATCHES * batch
    spans = sorted((min(lens[i] for i in b), max(lens[i] for i in b)) for b in bucketed)
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:]))


def test_bad_order_and_missing_lengths_are_errors():
    with pytest.raises(ValueError, match="batch_order='sorted'"):
        epoch_batches(10, 2, 1, 0, order="sorted")
    with pytest.raises(ValueError, match="needs one length per item"):
        epoch_batches(10, 2, 1, 0, lengths=[1, 2], order="length_buckets")


def varied_items(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n):
        ctx = torch.randint(3, 97, (2 + k % 9,), generator=g).tolist()
        comp = torch.randint(3, 97, (2 + k % 4,), generator=g).tolist()
        out.append(Encoded(ctx + comp, [-100] * len(ctx) + comp))
    return out


def _model():
    model = tiny_model("gpt2")
    apply_lora(model, LoRAConfig(targets={"q": 4, "v": 4}, alpha=8))
    return model


def test_bucketed_resume_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=4, warmup_steps=2, log_every=0, save_every=3,
                      batch_order="length_buckets", progress=False)
    data = varied_items()
    full = _model()
    train(full, data, collate_causal, causal_lm_loss(), cfg)
    ckpt = tmp_path / "last.pt"
    train(_model(), data, collate_causal, causal_lm_loss(), cfg, checkpoint=ckpt, stop_after_steps=7)
    resumed = _model()
    result = train(resumed, data, collate_causal, causal_lm_loss(), cfg, checkpoint=ckpt)
    assert result.resumed_from == 6 and result.steps == 20 and result.batch_order == "length_buckets"
    for (name, a), (_, b) in zip(full.named_parameters(), resumed.named_parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
