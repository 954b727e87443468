"""One worker of tests/test_sharding.py: a tiny Llama, LoRA or FT, trained with AdamW on fixed
batches. Without torchrun it trains unsharded (the reference); under torchrun it shards the model
with experiments.sharding, trains the same steps (each rank half of every batch), then trains
again from scratch to `--stop` steps, checkpoints, and continues a freshly built model from the
checkpoint. Rank 0 writes the per-step losses and the trained tensors to --out.

    python tests/fsdp_worker.py --method lora --out DIR
    torchrun --nproc_per_node=2 tests/fsdp_worker.py --method lora --out DIR
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import transformers as T

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from experiments import sharding  # noqa: E402
from lora_core import LoRAConfig, apply_lora, save_adapter  # noqa: E402

LORA = LoRAConfig(targets={"q": 4, "v": 4}, alpha=8, dropout=0.0)  # no dropout: no RNG to split


def build(method: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(T.LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=97, max_position_embeddings=64))
    if method == "lora":
        apply_lora(model, LORA)
        torch.manual_seed(1)
        with torch.no_grad():  # B starts at zero: give it values so every tensor matters
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
    return model


def batch(step: int, rank: int, world: int) -> torch.Tensor:
    ids = torch.randint(0, 97, (4, 12), generator=torch.Generator().manual_seed(100 + step))
    return ids[rank::world]


def train(model, opt, steps: range, rank: int, world: int) -> list[float]:
    losses = []
    for step in steps:
        ids = batch(step, rank, world)
        logits = model(input_ids=ids).logits[:, :-1]
        # every rank has as many tokens, so the mean of rank means is the batch mean
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.detach().clone()
        if world > 1:
            dist.all_reduce(value)
            value /= world
        losses.append(value.item())
    return losses


def trained(model) -> dict[str, torch.Tensor]:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return sharding.full_tensors(model, names)


def build_sharded(method: str, sharded: bool):
    model = build(method)
    if sharded:
        sharding.shard_model(model, family="llama")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    return model, opt


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=("lora", "ft"), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--stop", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")
    rank = dist.get_rank() if world > 1 else 0
    args.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    model, opt = build_sharded(args.method, sharded=world > 1)
    result = {"losses": train(model, opt, range(args.steps), rank, world)}
    tensors = trained(model)
    adapter = args.out / "adapter"
    if args.method == "lora":
        if world > 1:
            sharding.save_adapter_sharded(model, LORA, adapter)
        else:
            save_adapter(model, LORA, adapter)
    if world > 1:
        # interrupted after --stop steps, then a fresh model continues from the checkpoint
        model, opt = build_sharded(args.method, sharded=True)
        train(model, opt, range(args.stop), rank, world)
        sharding.save_checkpoint(args.out / "checkpoint", model, opt, {"step": args.stop})
        model, opt = build_sharded(args.method, sharded=True)
        start = sharding.load_checkpoint(args.out / "checkpoint", model, opt)["step"]
        result["resumed_losses"] = train(model, opt, range(start, args.steps), rank, world)
        resumed = trained(model)
    if rank == 0:
        save_file(tensors, str(args.out / "trained.safetensors"))
        if world > 1:
            save_file(resumed, str(args.out / "resumed.safetensors"))
        (args.out / "result.json").write_text(json.dumps(result))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
