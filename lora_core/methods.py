"""One entry point for every adaptation method: `apply_method(model, "lora", targets=...)`.

Each method turns a model into the adapted one in place and marks what trains; task heads
named in `head_modules` always train (the paper trains but does not count them). The registry
also records which model families each method supports, and refuses the other combinations.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from torch import nn

from .adapters import apply_adapters, dropped_layers
from .families import FAMILIES, family_of, find_blocks
from .lora import LoRAConfig, apply_lora, set_trainable_modules
from .partial import train_biases, train_top_blocks
from .prefix import ATTRIBUTE as PREFIX_ATTRIBUTE
from .prefix_methods import apply_prefix_embedding, apply_prefix_layer

MethodFn = Callable[..., nn.Module]
METHODS: dict[str, MethodFn] = {}
# method -> families it works on (FAMILIES names); others are refused with this table.
SUPPORTED: dict[str, tuple[str, ...]] = {}
WHY_UNSUPPORTED: dict[str, str] = {}
ALL_FAMILIES = tuple(FAMILIES)


def register_method(name: str, families: Iterable[str] = ALL_FAMILIES, why: str = ""):
    """Register `fn(model, head_modules, family, **params)` as method `name`; `why` explains
    the families left out."""
    def wrap(fn: MethodFn) -> MethodFn:
        METHODS[name] = fn
        SUPPORTED[name] = tuple(families)
        if why:
            WHY_UNSUPPORTED[name] = why
        return fn
    return wrap


def supported_combinations() -> str:
    return "; ".join(f"{m}: {', '.join(f)}" for m, f in sorted(SUPPORTED.items()))


def apply_method(model: nn.Module, name: str, head_modules: Iterable[str] = (),
                 family: str | None = None, **params) -> nn.Module:
    """Apply method `name` with its parameters; errors list the methods and the supported
    (method, family) combinations."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}: known methods are {sorted(METHODS)}")
    fam = family_of(model, family)
    if fam.name not in SUPPORTED[name]:
        why = f" ({WHY_UNSUPPORTED[name]})" if name in WHY_UNSUPPORTED else ""
        raise ValueError(f"method {name!r} does not support the {fam.name} family{why}; "
                         f"supported combinations are {supported_combinations()}")
    return METHODS[name](model, head_modules=list(head_modules), family=fam.name, **params)


def target_ranks(targets, r: int | None = None) -> dict[str, int]:
    """Weight type -> rank from either form a method config takes: a list of weight types with
    one rank `r` (`targets: [q, v], r: 8`, the Hydra configs' form: a list replaces the
    default wholesale where a dict would merge into it), or a dict of ranks
    (`{q: 8, k: 0, v: 8}`, records written before the list form; r = 0 leaves a type out)."""
    if isinstance(targets, Mapping):
        if r is not None:
            raise ValueError(f"LoRA targets {dict(targets)} give each type its rank; r={r} as "
                             "well is ambiguous: give a list of types with r, or a dict alone")
        return {str(name): int(rank) for name, rank in targets.items() if rank != 0}
    if isinstance(targets, str) or not isinstance(targets, Iterable):
        raise ValueError(f"LoRA targets={targets!r} must be a list of weight types (e.g. "
                         "[q, v]) with a rank r, or a dict of weight type -> rank")
    names = [str(t) for t in targets]
    if r is None or isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"LoRA targets {names} need one rank r, an integer >= 1 (got r={r!r}): "
                         "set method.r")
    if len(set(names)) != len(names):
        raise ValueError(f"LoRA targets {names} name a weight type twice")
    return dict.fromkeys(names, r)


@register_method("lora")
def _lora(model: nn.Module, head_modules: list[str], family: str | None, targets,
          r: int | None = None, alpha: float = 1.0, dropout: float = 0.0, bias: str = "none",
          embedding_r: int = 0, layers: list[int] | None = None) -> nn.Module:
    targets = target_ranks(targets, r)
    config = LoRAConfig(targets=targets, alpha=alpha, dropout=dropout, bias=bias,
                        embedding_r=embedding_r, layers=layers,
                        trainable_modules=list(head_modules), family=family)
    apply_lora(model, config)
    model.lora_config = config  # what save_adapter needs to write the adapter back out
    return model


@register_method("none")
def _no_training(model: nn.Module, head_modules: list[str], family: str | None) -> nn.Module:
    """Nothing trains: the pretrained model as it is, for zero- and few-shot prompting
    (Table 8's GPT-3 few-shot row). A run with nothing trainable only evaluates."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@register_method("ft")
def _full_finetune(model: nn.Module, head_modules: list[str], family: str | None) -> nn.Module:
    """FT: every parameter trains."""
    for p in model.parameters():
        p.requires_grad_(True)
    set_trainable_modules(model, head_modules)
    return model


@register_method("ft_top2")
def _ft_top(model: nn.Module, head_modules: list[str], family: str | None, top_layers: int = 2,
            final_norm: bool = True) -> nn.Module:
    """FT^Top2: the last `top_layers` blocks, the final norm and the heads train."""
    return train_top_blocks(model, top_layers, final_norm, family, head_modules)


# Llama (SmolLM2, Llama-3.1) has no bias at all. Adding zero-initialised biases would be a new
# method, not BitFit, so Table 4's Llama stand-in rows show BitFit as n/a with this reason;
# Qwen2 keeps its Wq/Wk/Wv biases, and BitFit trains those.
@register_method("bitfit", families=("gpt2", "roberta", "bert", "deberta-v2", "qwen2"),
                 why="Llama has no bias terms: no projection biases and RMSNorm has no β, so "
                     "BitFit would train only the head; the suite reports it as n/a rather than "
                     "adding zero-initialised biases, which would be another method")
def _bitfit(model: nn.Module, head_modules: list[str], family: str | None,
            norm_biases: bool = True) -> nn.Module:
    """BitFit: every bias term (LayerNorm β too, unless norm_biases=False) and the heads."""
    return train_biases(model, norm_biases, family, head_modules)


@register_method("pre_embed")
def _pre_embed(model: nn.Module, head_modules: list[str], family: str | None,
               prefix_length: int, infix_length: int = 0,
               infix_after_token: int | None = None) -> nn.Module:
    """PreEmbed: l_p + l_i trainable token embeddings."""
    return apply_prefix_embedding(model, prefix_length, infix_length, infix_after_token,
                                  family, head_modules)


@register_method("pre_layer")
def _pre_layer(model: nn.Module, head_modules: list[str], family: str | None,
               prefix_length: int, infix_length: int = 0, infix_after_token: int | None = None,
               reparam: bool = True, reparam_hidden: int = 512,
               init: str = "real_tokens") -> nn.Module:
    """PreLayer: trainable slot activations at every block (MLP-reparameterised if `reparam`),
    starting from real tokens' activations (`init`, see apply_prefix_layer)."""
    return apply_prefix_layer(model, prefix_length, infix_length, infix_after_token, reparam,
                              reparam_hidden, family, head_modules, init)


def lora_adapter_config(model: nn.Module) -> LoRAConfig | None:
    """The LoRAConfig `apply_method("lora")` attached, which `save_adapter` writes beside the
    adapter; None where the trained set is not a LoRA adapter file (another method, or LoRA
    combined with a prefix, saved as plain trainable tensors)."""
    return getattr(model, "lora_config", None)


def _without_adapter_file(model: nn.Module) -> nn.Module:
    # LoRA with a prefix: saved as the trainable tensors of both (a LoRA adapter file would drop
    # the prefix); merging LoRA and folding the prefix still work through their own modules
    del model.lora_config
    return model


@register_method("lora_pre_embed")
def _lora_pre_embed(model: nn.Module, head_modules: list[str], family: str | None, targets,
                    prefix_length: int, infix_length: int = 0, infix_after_token: int | None = None,
                    alpha: float = 1.0, dropout: float = 0.0, r: int | None = None) -> nn.Module:
    """LoRA+PE (App. E, Table 15): LoRA on `targets` and PreEmbed's l_p + l_i embeddings train
    together."""
    _pre_embed(model, head_modules, family, prefix_length, infix_length, infix_after_token)
    _lora(model, [*head_modules, PREFIX_ATTRIBUTE], family, targets, r, alpha, dropout)
    return _without_adapter_file(model)


@register_method("lora_pre_layer")
def _lora_pre_layer(model: nn.Module, head_modules: list[str], family: str | None, targets,
                    prefix_length: int, infix_length: int = 0, infix_after_token: int | None = None,
                    alpha: float = 1.0, dropout: float = 0.0, reparam: bool = True,
                    reparam_hidden: int = 512, r: int | None = None,
                    init: str = "real_tokens") -> nn.Module:
    """LoRA+PL (App. E, Table 15): LoRA on `targets` and PreLayer's slot activations (through
    their reparameterisation) train together."""
    _pre_layer(model, head_modules, family, prefix_length, infix_length, infix_after_token,
               reparam, reparam_hidden, init)
    _lora(model, [*head_modules, PREFIX_ATTRIBUTE], family, targets, r, alpha, dropout)
    return _without_adapter_file(model)


@register_method("adapter_h")
def _adapter_h(model: nn.Module, head_modules: list[str], family: str | None, r: int,
               activation: str = "relu") -> nn.Module:
    """Adapter^H (Houlsby): after the attention output and the MLP output, before the residual."""
    return apply_adapters(model, r, ("attn_out", "mlp_out"), activation=activation,
                          family=family, trainable_modules=head_modules)


@register_method("adapter_l")
def _adapter_l(model: nn.Module, head_modules: list[str], family: str | None, r: int,
               activation: str = "relu") -> nn.Module:
    """Adapter^L (Lin et al.): one adapter with its own LayerNorm on each block's output."""
    return apply_adapters(model, r, ("block_out",), layer_norm=True, activation=activation,
                          family=family, trainable_modules=head_modules)


@register_method("adapter_p")
def _adapter_p(model: nn.Module, head_modules: list[str], family: str | None, r: int,
               activation: str = "relu") -> nn.Module:
    """Adapter^P (Pfeiffer): one adapter after the MLP output, before the residual."""
    return apply_adapters(model, r, ("mlp_out",), activation=activation, family=family,
                          trainable_modules=head_modules)


@register_method("adapter_d")
def _adapter_d(model: nn.Module, head_modules: list[str], family: str | None, r: int,
               drop: int | float = 0, activation: str = "relu") -> nn.Module:
    """Adapter^D (AdapterDrop): Pfeiffer adapters, none in the lowest `drop` layers (a count,
    or a fraction of the layers when strictly between 0 and 1)."""
    _, blocks = find_blocks(model, family_of(model, family))
    k = dropped_layers(len(blocks), drop)
    return apply_adapters(model, r, ("mlp_out",), activation=activation,
                          layers=range(k, len(blocks)), family=family,
                          trainable_modules=head_modules)


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """What every method does before deployment: LoRA merged into W (no extra latency) and a
    prefix-layer's reparameterisation MLP folded into plain activations. Outputs unchanged."""
    from .lora import merge_lora

    merge_lora(model)
    prefix = getattr(model, "prefix_tuning", None)
    if prefix is not None and hasattr(prefix, "fold") and getattr(prefix, "reparam", None) is not None:
        prefix.fold()
    return model
