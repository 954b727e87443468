"""Which training items go into which batch, epoch by epoch: the official seeded shuffle, or
length-bucketed batches (the stand-in profiles' fast path).

`official`: epoch e shuffles with seed + e (the official DistributedSampler with set_epoch),
split across ranks, consecutive slices of batch_size, the last partial batch dropped.
`length_buckets`: the same shuffle and the same dropped tail, then, as transformers' Trainer
`group_by_length` (LengthGroupedSampler), the order is cut into mega-batches of
BUCKET_MEGABATCHES x batch_size items, each sorted by length (longest first) and cut into
batches, and the batches' order is shuffled with the same seeded generator. Every kept item
still appears exactly once per epoch and the order is a function of (seed, epoch) alone, so a
resumed run continues exactly as an uninterrupted one; what changes is that a batch holds items
of similar length (far less padding, hence far less work on a CPU) instead of a uniform draw,
so batches are less alike than the official order's (short sentences train together).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

BATCH_ORDERS = ("official", "length_buckets")
BUCKET_MEGABATCHES = 50  # transformers' LengthGroupedSampler default (mega_batch_mult)


def item_length(item: Any) -> int:
    """Tokens in one encoded item (`Encoded` or a GLUE-style dict)."""
    ids = item["input_ids"] if isinstance(item, dict) else item.input_ids
    return len(ids)


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def epoch_batches(n_items: int, batch_size: int, seed: int, epoch: int,
                  lengths: Sequence[int] | None = None, order: str = "official") -> list[list[int]]:
    """This rank's batches of item indices for `epoch` (drop_last). `lengths` (one per item) is
    needed for order="length_buckets"."""
    if order not in BATCH_ORDERS:
        raise ValueError(f"train.batch_order={order!r}: choose one of {BATCH_ORDERS}")
    rank, world = _dist()
    generator = torch.Generator().manual_seed(seed + epoch)
    shuffled = torch.randperm(n_items, generator=generator).tolist()
    per_rank = shuffled[rank::world][: (n_items // world)]
    kept = per_rank[: len(per_rank) - len(per_rank) % batch_size]  # drop_last, before sorting
    if order == "official":
        return [kept[i:i + batch_size] for i in range(0, len(kept), batch_size)]
    if lengths is None or len(lengths) != n_items:
        raise ValueError(f"batch_order=length_buckets needs one length per item "
                         f"({n_items}), got {None if lengths is None else len(lengths)}")
    mega = BUCKET_MEGABATCHES * batch_size
    batches = []
    for start in range(0, len(kept), mega):
        # stable sort: ties keep the shuffled order, so the result depends only on the seed
        group = sorted(kept[start:start + mega], key=lambda i: -lengths[i])
        batches += [group[i:i + batch_size] for i in range(0, len(group), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
