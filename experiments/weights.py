"""A run's trained weights on disk: the LoRA adapter beside the record, or the trainable
tensors of any other method (safetensors, hash recorded), and reading them back.
"""
from __future__ import annotations

from pathlib import Path

from lora_core import lora_adapter_config, save_adapter

from . import records

# Adapter files above this size stay out of git (results/weights/, hash in the record).
MAX_COMMITTED_WEIGHTS_MB = 5


def save_trained_weights(model, run_dir: Path, results: Path, experiment: str, seed: int) -> dict:
    """LoRA: the adapter beside the record. Other methods: the trainable tensors, beside the
    record when small, else in the git-ignored results/weights/ with their hash recorded."""
    config = lora_adapter_config(model)
    if config is not None:
        path = save_adapter(model, config, run_dir / "adapter", overwrite=True)
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


def load_trained_weights(model, path: str | Path) -> None:
    """Put a run's `trainable.safetensors` (the non-LoRA methods' trained tensors, heads
    included) back into `model`, built and adapted as in that run; strict: every trainable
    parameter must be in the file with its shape, and nothing else. LoRA runs: load_adapter."""
    from safetensors.torch import load_file

    from lora_core.state import copy_strict

    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    copy_strict(model, load_file(str(path)), trainable, str(path),
                what="trained weights (built with the run's method?)")
