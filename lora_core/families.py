"""Where things live in each supported model family (GPT-2, RoBERTa, DeBERTa-v2, BERT, Llama, Qwen2).

Maps the paper's weight-type names (q, k, v, o, mlp) to module paths inside a transformer
block, and names the block list, embeddings and heads, so LoRA and every baseline inject the
same way into every family. Paths are HF transformers 5.x module names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

# The paper's weight types (§4.2, §7.1): attention Wq, Wk, Wv, Wo, and the MLP.
WEIGHT_TYPES = ("q", "k", "v", "o", "mlp")


@dataclass(frozen=True)
class Slice:
    """One equal slice of a fused projection: `index` of `count` (GPT-2 c_attn = q | k | v)."""

    index: int
    count: int


@dataclass(frozen=True)
class Family:
    """Module layout of one architecture family.

    `targets` maps a weight type to (path inside a block, slice or None) pairs; `blocks` is the
    name (suffix) of the ModuleList of transformer blocks; `attn_out` / `mlp_out` are the
    projections after which Houlsby / Pfeiffer adapters sit; `heads` are task heads that
    train alongside a parameter-efficient method but are not counted by the paper.

    For the baselines: `block_out` is the module inside a block whose output is the block's
    output (post-LN encoders end in a LayerNorm; None = the block returns its output itself, as
    pre-LN decoders do), where Lin et al.'s Adapter^L sits; `final_norm` is the norm after the
    last block (None for post-LN encoders), trained by FT^Top2; `causal` says the model is a
    decoder (prefix slots predict the next real token); `prefix_after` is how many leading
    tokens stay before a prefix (1 keeps [CLS]/<s> first, where classification heads read).
    """

    name: str
    model_types: tuple[str, ...]
    blocks: str
    targets: dict[str, tuple[tuple[str, Slice | None], ...]]
    embedding: str
    attn_out: str
    mlp_out: str
    layer_norms: tuple[str, ...]
    heads: tuple[str, ...] = field(default=())
    has_bias: bool = True
    block_out: str | None = None
    final_norm: str | None = None
    causal: bool = False
    prefix_after: int = 0


def _qkvo(q: str, k: str, v: str, o: str, mlp: tuple[str, ...]) -> dict:
    return {"q": ((q, None),), "k": ((k, None),), "v": ((v, None),), "o": ((o, None),),
            "mlp": tuple((m, None) for m in mlp)}


_BERT_LIKE = dict(
    blocks="encoder.layer",
    attn_out="attention.output.dense",
    mlp_out="output.dense",
    layer_norms=("attention.output.LayerNorm", "output.LayerNorm"),
    block_out="output.LayerNorm",  # post-LN: LayerNorm(x + FFN(x)) is the block's output
    prefix_after=1,  # the classification head reads position 0 ([CLS] / <s>)
)

_LLAMA_LIKE = dict(
    blocks="layers",
    targets=_qkvo("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                  "self_attn.o_proj", ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")),
    embedding="embed_tokens", attn_out="self_attn.o_proj", mlp_out="mlp.down_proj",
    layer_norms=("input_layernorm", "post_attention_layernorm"), heads=("score",),
    final_norm="norm", causal=True,
)

FAMILIES: dict[str, Family] = {
    "gpt2": Family(
        name="gpt2", model_types=("gpt2",), blocks="h",
        targets={"q": (("attn.c_attn", Slice(0, 3)),), "k": (("attn.c_attn", Slice(1, 3)),),
                 "v": (("attn.c_attn", Slice(2, 3)),), "o": (("attn.c_proj", None),),
                 "mlp": (("mlp.c_fc", None), ("mlp.c_proj", None))},
        embedding="wte", attn_out="attn.c_proj", mlp_out="mlp.c_proj",
        layer_norms=("ln_1", "ln_2"), heads=(), final_norm="ln_f", causal=True),
    "roberta": Family(
        name="roberta", model_types=("roberta",),
        targets=_qkvo("attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense", ("intermediate.dense", "output.dense")),
        embedding="embeddings.word_embeddings", heads=("classifier",), **_BERT_LIKE),
    "bert": Family(
        name="bert", model_types=("bert",),
        targets=_qkvo("attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense", ("intermediate.dense", "output.dense")),
        # BERT classifies from its pooler, which sentence-transformer checkpoints never trained
        embedding="embeddings.word_embeddings", heads=("pooler", "classifier"), **_BERT_LIKE),
    "deberta-v2": Family(
        name="deberta-v2", model_types=("deberta-v2",),
        targets=_qkvo("attention.self.query_proj", "attention.self.key_proj",
                      "attention.self.value_proj", "attention.output.dense",
                      ("intermediate.dense", "output.dense")),
        embedding="embeddings.word_embeddings", heads=("pooler", "classifier"), **_BERT_LIKE),
    "llama": Family(name="llama", model_types=("llama",), has_bias=False, **_LLAMA_LIKE),
    # Qwen2: Llama's layout, but Wq, Wk and Wv carry biases (so BitFit has something to train)
    "qwen2": Family(name="qwen2", model_types=("qwen2",), has_bias=True, **_LLAMA_LIKE),
}


def family_of(model: nn.Module, family: str | None = None) -> Family:
    """The family named, or the one matching `model.config.model_type`; errors list the known ones."""
    if family is None:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        for fam in FAMILIES.values():
            if model_type in fam.model_types:
                return fam
        raise ValueError(f"unknown model family for model_type={model_type!r}: "
                         f"known families are {sorted(FAMILIES)}; pass family=... explicitly")
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}: known families are {sorted(FAMILIES)}")
    return FAMILIES[family]


def find_blocks(model: nn.Module, fam: Family) -> tuple[str, nn.ModuleList]:
    """The (name, ModuleList) of transformer blocks, e.g. ('transformer.h', ...)."""
    found = [(name, mod) for name, mod in model.named_modules()
             if isinstance(mod, nn.ModuleList) and (name == fam.blocks
                                                    or name.endswith("." + fam.blocks))]
    if len(found) != 1:
        lists = [n for n, m in model.named_modules() if isinstance(m, nn.ModuleList)]
        raise ValueError(f"expected one block list named '*{fam.blocks}' in a {fam.name} model, "
                         f"found {[n for n, _ in found]}; module lists present: {lists}")
    return found[0]


def find_module(model: nn.Module, suffix: str) -> tuple[str, nn.Module]:
    """The single module whose name is `suffix` or ends with '.suffix'."""
    found = [(n, m) for n, m in model.named_modules() if n == suffix or n.endswith("." + suffix)]
    if len(found) != 1:
        raise ValueError(f"expected one module named '*{suffix}', found {[n for n, _ in found]}")
    return found[0]


def get_submodule_or_error(root: nn.Module, path: str, where: str) -> nn.Module:
    """`root.get_submodule(path)` with an error that lists the leaf names that do exist."""
    try:
        return root.get_submodule(path)
    except AttributeError:
        leaves = [n for n, m in root.named_modules() if n and not list(m.children())]
        raise ValueError(f"no module '{path}' in {where}; modules there are: {leaves}") from None
