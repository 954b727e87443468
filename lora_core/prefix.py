"""How the prefix baselines (prefix_methods.py: PreEmbed, PreLayer) enter a model, for decoders
and encoders: the slots, the wrapped forward, and installing a prefix module on a model.

Both insert l_p + l_i extra positions ("slots") into the sequence by wrapping the model's
forward: the model runs on `inputs_embeds` with the slots in place, an attention mask that
attends to them and positions that count them; outputs come back at the caller's positions.
"""
from __future__ import annotations

import inspect
import types
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from .families import Family
from .lora import set_trainable_modules

ATTRIBUTE = "prefix_tuning"  # where the prefix module lives on the model


@dataclass
class SlotLayout:
    """Where things sit in the extended sequence of length `length` = T + l_p + l_i.

    token_index (B, T): the extended position of each of the caller's tokens; slot_index
    (B, l_p + l_i): the extended positions of the prefix slots, then the infix slots.
    """

    token_index: torch.Tensor
    slot_index: torch.Tensor
    length: int

    def insert(self, values: torch.Tensor, fill) -> torch.Tensor:
        """A (B, T, ...) tensor spread to (B, length, ...); the slots get `fill`, a scalar or
        a (B, l_p + l_i, ...) tensor (gradients flow to both)."""
        extra = values.shape[2:]

        def spread(index: torch.Tensor) -> torch.Tensor:
            return index.view(*index.shape, *[1] * len(extra)).expand(*index.shape, *extra)

        shape = (values.shape[0], self.length, *extra)
        if torch.is_tensor(fill):
            out = values.new_zeros(shape).scatter(1, spread(self.slot_index), fill.to(values.dtype))
        else:
            out = values.new_full(shape, fill)
        return out.scatter(1, spread(self.token_index), values)


def slot_layout(batch: int, length: int, n_prefix: int, n_infix: int, prefix_at: int,
                infix_at: torch.Tensor) -> SlotLayout:
    """Prefix slots go before token `prefix_at`, infix slots before token `infix_at[b]`."""
    device = infix_at.device
    t = torch.arange(length, device=device).expand(batch, length)
    token_index = t + n_prefix * (t >= prefix_at) + n_infix * (t >= infix_at[:, None])
    prefix = (prefix_at + torch.arange(n_prefix, device=device)).expand(batch, n_prefix)
    infix = infix_at[:, None] + n_prefix + torch.arange(n_infix, device=device)
    return SlotLayout(token_index, torch.cat([prefix, infix], dim=1),
                      length + n_prefix + n_infix)


def _checkpointing(model: nn.Module) -> bool:
    # transformers 5 renamed is_gradient_checkpointing (deprecated) to is_activation_checkpointing
    for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(model), name):
            return bool(getattr(model, name))
    return False


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counted along the attended positions, as `generate` computes them, so a
    left-padded prompt and a right-padded training row give a token the same position."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class PrefixTuning(nn.Module):
    """Common machinery of PreEmbed and PreLayer: slots, masks, positions and output gathering.

    Args:
        n_prefix, n_infix: l_p and l_i.
        d_model: hidden size.
        family: the model's Family (decides where the prefix goes and how outputs map back).
        infix_after_token: token id after whose first attended occurrence the infix goes in
            each row (e.g. 50256, the separator after the context in the official GPT-2 data
            format, so the infix sits between context and completion). Without it, and
            without an `infix_position` argument to forward, the infix goes right after the
            prefix, i.e. the two act as one prefix of l_p + l_i.

    Decoders: the prefix opens the sequence; for each token the model returns the output of
    the last position before the next real token, which is the last infix slot for the token
    just before the infix, so the logits line up with `input_ids` as without a prefix.
    Encoders: the prefix follows the first token ([CLS] / <s>, which heads read) and each
    token's own output is returned. Other outputs (hidden states, attentions, the cache) stay
    in extended positions. Position ids are counted along the extended attention mask for
    decoders (caller-given ones are replaced); encoders number the extended sequence
    themselves, so inputs plus slots must fit their position table.
    """

    supports_checkpointing = True

    def __init__(self, n_prefix: int, n_infix: int, d_model: int, family: Family,
                 infix_after_token: int | None = None):
        super().__init__()
        if n_prefix < 0 or n_infix < 0 or n_prefix + n_infix == 0:
            raise ValueError(f"prefix_length={n_prefix}, infix_length={n_infix}: need l_p, l_i "
                             ">= 0 and at least one slot")
        self.n_prefix, self.n_infix, self.d_model = n_prefix, n_infix, d_model
        self.n_slots = n_prefix + n_infix
        self.causal, self.prefix_at = family.causal, family.prefix_after
        self.family_name = family.name
        self.infix_after_token = infix_after_token
        self._generation_infix: torch.Tensor | None = None  # infix places of the prompt being decoded

    # ------------------------------------------------------------------ subclass hooks
    def slot_embeddings(self) -> torch.Tensor:
        """(l_p + l_i, d) vectors placed in the slots of `inputs_embeds`."""
        raise NotImplementedError

    def begin(self, layout: SlotLayout, batch: int) -> None:
        """Called before the model runs on an extended sequence (PreLayer arms its hooks)."""

    def end(self) -> None:
        """Called after the model ran, also on error."""

    # ------------------------------------------------------------------ forward
    def _infix_at(self, input_ids, mask, infix_position, batch: int, length: int, device):
        if infix_position is not None:
            at = torch.as_tensor(infix_position, device=device).long().expand(batch).clone()
        elif self.n_infix and self.infix_after_token is not None:
            if input_ids is None:
                raise ValueError("infix_after_token needs input_ids; with inputs_embeds pass "
                                 "infix_position=... instead")
            hit = (input_ids == self.infix_after_token) & mask.bool()
            missing = (~hit.any(1)).nonzero().flatten().tolist()
            if missing:
                raise ValueError(f"rows {missing} have no token {self.infix_after_token} to put "
                                 "the infix after: pass infix_position=... for them")
            at = hit.int().argmax(1) + 1
        else:
            at = torch.full((batch,), self.prefix_at, device=device, dtype=torch.long)
        if bool(((at < self.prefix_at) | (at > length)).any()):
            raise ValueError(f"infix positions {at.tolist()} must lie in {self.prefix_at}..{length}")
        return at

    def _check_length(self, model: nn.Module, length: int) -> None:
        config = getattr(model, "config", None)
        limit = getattr(config, "max_position_embeddings", None)
        if limit is None or self.family_name in ("llama", "qwen2"):  # rotary: no table to overflow
            return
        if self.family_name == "roberta":  # positions start after padding_idx
            limit -= (getattr(config, "pad_token_id", 1) or 0) + 1
        if self.family_name == "deberta-v2" and not getattr(config, "position_biased_input", True):
            return
        if length > limit:
            raise ValueError(f"{length - self.n_slots} tokens + {self.n_slots} prefix/infix slots "
                             f"= {length} positions, more than this model's {limit}: truncate "
                             f"inputs to {limit - self.n_slots} tokens")

    def run(self, model: nn.Module, input_ids=None, attention_mask=None, position_ids=None,
            past_key_values=None, inputs_embeds=None, labels=None, token_type_ids=None,
            infix_position=None, **kwargs):
        base_forward = type(model).forward
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None:
            raise ValueError("pass input_ids or inputs_embeds")
        batch, length = reference.shape[:2]
        cached = past_key_values.get_seq_length() if past_key_values is not None else 0
        if cached:
            return self._continue(model, base_forward, input_ids, attention_mask, position_ids,
                                  past_key_values, inputs_embeds, labels, token_type_ids,
                                  cached, **kwargs)
        device = reference.device
        mask = attention_mask if attention_mask is not None else torch.ones(
            batch, length, dtype=torch.long, device=device)
        infix_at = self._infix_at(input_ids, mask, infix_position, batch, length, device)
        layout = slot_layout(batch, length, self.n_prefix, self.n_infix, self.prefix_at, infix_at)
        self._check_length(model, layout.length)
        if inputs_embeds is None:
            inputs_embeds = model.get_input_embeddings()(input_ids)
        slots = self.slot_embeddings().to(inputs_embeds.dtype).expand(batch, -1, -1)
        call = dict(inputs_embeds=layout.insert(inputs_embeds, slots),
                    attention_mask=layout.insert(mask, 1), **_cache_kwarg(model, past_key_values))
        if token_type_ids is not None:
            call["token_type_ids"] = layout.insert(token_type_ids, 0)
        if self.causal:
            call["position_ids"] = positions_from_mask(call["attention_mask"])
            self._generation_infix = infix_at
        elif position_ids is not None:
            raise ValueError("position_ids cannot be given to an encoder with a prefix: the "
                             "model counts positions over the extended sequence itself")
        # A decoder's per-token labels are scored on the gathered logits below; any other
        # labels (sequence classification) pass through to the model's own head.
        token_labels = (self.causal and labels is not None and labels.dim() >= 2
                        and labels.shape[1] == length)
        if labels is not None and not token_labels:
            call["labels"] = labels
        if not self.supports_checkpointing and model.training and _checkpointing(model):
            raise ValueError(f"{type(self).__name__} writes its activations with block hooks, "
                             "which activation checkpointing's recomputation would miss: call "
                             "model.activation_checkpointing_disable() (transformers < 5.x: "
                             "gradient_checkpointing_disable())")
        self.begin(layout, batch)
        try:
            out = base_forward(model, **call, **kwargs)
        finally:
            self.end()
        keep = layout.token_index
        if self.causal:  # the position just before each next real token
            last = torch.full_like(keep[:, :1], layout.length)
            keep = torch.cat([keep[:, 1:], last], dim=1) - 1
        for key in ("logits", "last_hidden_state"):
            value = out.get(key) if hasattr(out, "get") else None
            if torch.is_tensor(value) and value.dim() == 3 and value.shape[1] == layout.length:
                out[key] = value.gather(1, keep[..., None].expand(-1, -1, value.shape[-1]))
        if token_labels:
            out["loss"] = model.loss_function(out["logits"], labels,
                                              vocab_size=model.config.vocab_size)
        return out

    def _continue(self, model, base_forward, input_ids, attention_mask, position_ids,
                  past_key_values, inputs_embeds, labels, token_type_ids, cached, **kwargs):
        """A decoding step after the prompt: the cache already holds the slots, so only the
        mask and the positions must count them."""
        if not self.causal or self._generation_infix is None:
            raise ValueError("a cache that did not start with this prefix: run the prompt "
                             "through the prefixed model first")
        new = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        if attention_mask is None:
            attention_mask = torch.ones(batch, cached - self.n_slots + new, dtype=torch.long,
                                        device=past_key_values.layers[0].keys.device)
        infix_at = self._generation_infix
        if infix_at.shape[0] != batch:
            raise ValueError(f"decoding {batch} rows but the prompt had {infix_at.shape[0]}")
        layout = slot_layout(batch, attention_mask.shape[1], self.n_prefix, self.n_infix,
                             self.prefix_at, infix_at)
        ext_mask = layout.insert(attention_mask, 1)
        return base_forward(model, input_ids=input_ids, inputs_embeds=inputs_embeds,
                            attention_mask=ext_mask, **_cache_kwarg(model, past_key_values),
                            position_ids=positions_from_mask(ext_mask)[:, -new:], labels=labels,
                            **({"token_type_ids": token_type_ids} if token_type_ids is not None
                               else {}), **kwargs)

    def extra_repr(self) -> str:
        return (f"prefix_length={self.n_prefix}, infix_length={self.n_infix}, "
                f"d_model={self.d_model}, causal={self.causal}")


def _cache_kwarg(model: nn.Module, cache) -> dict:
    """The KV cache under the keyword this model's forward takes (`cache` from transformers
    5.24 on, `past_key_values` before); a wrong name would be swallowed by **kwargs."""
    names = inspect.signature(type(model).forward).parameters
    return {"cache": cache} if "cache" in names else {"past_key_values": cache}


def _prefixed_forward(self, input_ids=None, attention_mask=None, position_ids=None,
                      past_key_values=None, inputs_embeds=None, labels=None, token_type_ids=None,
                      infix_position=None, cache=None, **kwargs):
    """The model's forward with its prefix; `infix_position` (int or (B,) tensor) says before
    which token the infix goes in each row. transformers >= 5.24 hands the KV cache over as
    `cache`, earlier versions as `past_key_values`: either is taken."""
    return getattr(self, ATTRIBUTE).run(
        self, input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        past_key_values=cache if cache is not None else past_key_values,
        inputs_embeds=inputs_embeds, labels=labels,
        token_type_ids=token_type_ids, infix_position=infix_position, **kwargs)


def install_prefix(model: nn.Module, module: PrefixTuning, fam: Family,
                   trainable_modules: Iterable[str]) -> nn.Module:
    """Put `module` on `model` (as `model.prefix_tuning`), wrap its forward, freeze everything
    but the prefix and `trainable_modules` (the heads)."""
    if hasattr(model, ATTRIBUTE) or "forward" in vars(model):
        raise ValueError("this model already has a prefix method or a wrapped forward; apply "
                         "prefix methods to a fresh model")
    if fam.causal and type(model).__name__.endswith("ForSequenceClassification"):
        raise ValueError(
            f"prefix methods on a {fam.name} sequence-classification head are not supported: "
            "that head finds the last non-pad token from input_ids, which the slots shift. Use "
            "the causal-LM head (classification as generation, as the paper's GPT-3 MNLI) or an "
            "encoder family (roberta, bert, deberta-v2)")
    for p in model.parameters():
        p.requires_grad_(False)
    model.add_module(ATTRIBUTE, module)
    # An instance attribute shadows the class's forward; MethodType keeps deepcopy correct.
    model.forward = types.MethodType(_prefixed_forward, model)
    set_trainable_modules(model, trainable_modules)
    return model


def d_model_of(model: nn.Module) -> int:
    return model.get_input_embeddings().weight.shape[1]
