"""Baselines that train a subset of the model's own parameters: FT^Top2 and BitFit.

Nothing is added to the model; these only choose which existing parameters receive gradients
(task heads always train, as for every method).
"""
from __future__ import annotations

from typing import Iterable

from torch import nn

from .families import family_of, find_blocks, find_module
from .lora import set_trainable_modules


def train_top_blocks(model: nn.Module, top_layers: int = 2, final_norm: bool = True,
                     family: str | None = None, trainable_modules: Iterable[str] = ()) -> nn.Module:
    """FT^Top2 (Li & Liang, 2021): train only the last `top_layers` blocks, the final norm
    (if `final_norm` and the family has one) and the task heads.

    Li & Liang's code (gpt2/run_language_modeling.py, tuning_mode finetune-top) always trains
    `transformer.ln_f` with the top blocks; its top_layers=2 also trains the (tied) token
    embedding, which would be 51.5M more on GPT-2 M, while the cited 25.19M is exactly
    2 blocks + ln_f (its top_layers=22 setting). So ln_f trains here and the embedding does not.
    """
    fam = family_of(model, family)
    _, blocks = find_blocks(model, fam)
    if not 0 < top_layers <= len(blocks):
        raise ValueError(f"top_layers={top_layers}: choose 1..{len(blocks)} for this "
                         f"{len(blocks)}-block {fam.name} model")
    for p in model.parameters():
        p.requires_grad_(False)
    for block in list(blocks)[-top_layers:]:
        for p in block.parameters():
            p.requires_grad_(True)
    if final_norm and fam.final_norm is not None:
        for p in find_module(model, fam.final_norm)[1].parameters():
            p.requires_grad_(True)
    set_trainable_modules(model, trainable_modules)
    return model


def train_biases(model: nn.Module, norm_biases: bool = True, family: str | None = None,
                 trainable_modules: Iterable[str] = ()) -> nn.Module:
    """BitFit (Ben Zaken et al., 2021): train only bias terms (and the task heads).

    norm_biases: also train the LayerNorms' biases (β), as BitFit does ("all bias terms").
    A family without biases (Llama: no projection biases, RMSNorm has no β) raises: BitFit would
    train nothing but the head.
    """
    fam = family_of(model, family)
    norm_types = (nn.LayerNorm, nn.GroupNorm)
    chosen = []
    for mod in model.modules():
        bias = mod._parameters.get("bias")
        if bias is None or (isinstance(mod, norm_types) and not norm_biases):
            continue
        chosen.append(bias)
    head_ids = {id(p) for suffix in trainable_modules for n, m in model.named_modules()
                if n == suffix or n.endswith("." + suffix) for p in m.parameters()}
    if not [p for p in chosen if id(p) not in head_ids]:
        raise ValueError(
            f"BitFit needs bias terms, and this {fam.name} model has none outside its head "
            f"({'Llama has no projection biases and RMSNorm has no β' if fam.name == 'llama' else 'none found'}). "
            "The suite reports BitFit as n/a for such models rather than adding zero-initialised "
            "biases (another method); use a family with biases (gpt2, roberta, bert, deberta-v2, qwen2).")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in chosen:
        p.requires_grad_(True)
    set_trainable_modules(model, trainable_modules)
    return model
