"""The prefix baselines of the paper's §5.1: PreEmbed (trainable embeddings of l_p prefix and
l_i infix tokens) and PreLayer (trainable activations of those tokens at every layer).

Both start from real tokens: PreEmbed from the embeddings of random vocabulary tokens, PreLayer
(by default) from the activations the frozen model computes for such tokens at every block's
input, so at step 0 the model sees a prefix of real tokens, in the range it was trained on.
"""
from __future__ import annotations

import functools
from typing import Iterable

import torch
from torch import nn

from .families import Family, family_of, find_blocks
from .prefix import PrefixTuning, SlotLayout, d_model_of, install_prefix


class PrefixEmbedding(PrefixTuning):
    """PreEmbed: l_p + l_i trainable token embeddings, the model frozen. |Θ| = d·(l_p + l_i).

    Initialised as copies of the embeddings of random vocabulary tokens (drawn from torch's
    global RNG), which keeps them in the range the model was trained on.
    """

    def __init__(self, n_prefix: int, n_infix: int, d_model: int, family: Family,
                 word_embeddings: nn.Embedding, infix_after_token: int | None = None):
        super().__init__(n_prefix, n_infix, d_model, family, infix_after_token)
        weight = word_embeddings.weight
        self.embeddings = nn.Parameter(torch.empty(self.n_slots, d_model, device=weight.device,
                                                   dtype=weight.dtype))
        if not weight.is_meta:
            with torch.no_grad():
                rows = torch.randint(0, weight.shape[0], (self.n_slots,), device=weight.device)
                self.embeddings.copy_(weight[rows])

    def slot_embeddings(self) -> torch.Tensor:
        return self.embeddings


class PrefixLayer(PrefixTuning):
    """PreLayer: the activations of the l_p + l_i slots are trainable at the input of every
    block (the paper's §5.1: "the activations computed from previous layers are simply
    replaced by trainable ones"). Folded, |Θ| = L·d·(l_p + l_i), the paper's formula.

    Reparameterisation (Li & Liang, 2021): while training, the activations are P = MLP(P')
    with P' (l, d) and MLP = Linear(d, hidden) -> tanh -> Linear(hidden, L·d), which trains
    more stably; `fold()` computes P once, keeps it as the parameter and drops the MLP, with
    the same outputs. Trainable with the MLP: l·d + d·h + h + h·L·d + L·d.

    Init (`init`): "real_tokens" starts P at the block inputs the model computes for random
    vocabulary tokens (`init_activations`; Li & Liang also start from real words'
    activations); "random" keeps Li & Liang's default, P' ~ N(0, 1) through a fresh MLP (N(0, init_std)
    without it), whose small vectors replace the large activations a decoder keeps at its first
    position and wreck a modern one (results/bench/prefix_init.md).

    Each block gets a forward pre-hook that writes the slot activations into its input, so no
    family-specific attention code is touched; the cost is the l extra positions. (Li & Liang
    train past keys and values instead, 2·L·d per slot; the paper's count and §5.1 wording
    are the activations, L·d per slot, which this implements for every family alike.)
    """

    supports_checkpointing = False

    def __init__(self, n_prefix: int, n_infix: int, d_model: int, n_layers: int, family: Family,
                 reparam: bool = True, reparam_hidden: int = 512,
                 infix_after_token: int | None = None, init_std: float = 0.02,
                 device: torch.device | None = None, dtype: torch.dtype | None = None):
        super().__init__(n_prefix, n_infix, d_model, family, infix_after_token)
        self.n_layers = n_layers
        factory = dict(device=device, dtype=dtype)
        if reparam:
            # P' as Li & Liang: an nn.Embedding's N(0, 1) rows; the MLP keeps nn.Linear's init.
            self.reparam_input = nn.Parameter(torch.empty(self.n_slots, d_model, **factory))
            self.reparam = nn.Sequential(nn.Linear(d_model, reparam_hidden, **factory), nn.Tanh(),
                                         nn.Linear(reparam_hidden, n_layers * d_model, **factory))
            self.register_parameter("activations", None)
            if not self.reparam_input.is_meta:
                nn.init.normal_(self.reparam_input)
        else:
            self.register_parameter("reparam_input", None)
            self.reparam = None
            self.activations = nn.Parameter(torch.empty(n_layers, self.n_slots, d_model, **factory))
            if not self.activations.is_meta:
                nn.init.normal_(self.activations, std=init_std)
        self._layout: SlotLayout | None = None
        self._values: torch.Tensor | None = None
        self._index: torch.Tensor | None = None

    @torch.no_grad()
    def init_activations(self, values: torch.Tensor) -> None:
        """Start from P = `values` (L, l_p + l_i, d). Through the MLP, its output layer is solved
        by least squares on the hidden features of P': exact while l_p + l_i <= hidden + 1 (the
        slots' features are then independent), the closest fit beyond."""
        if values.shape != (self.n_layers, self.n_slots, self.d_model):
            raise ValueError(f"initial activations of shape {tuple(values.shape)}; PreLayer "
                             f"needs (L, l_p + l_i, d) = {(self.n_layers, self.n_slots, self.d_model)}")
        if self.reparam is None:
            self.activations.copy_(values)
            return
        first, _, out = self.reparam
        hidden = torch.tanh(first(self.reparam_input)).double()  # (l, h)
        features = torch.cat([hidden, hidden.new_ones(self.n_slots, 1)], dim=1)
        target = values.transpose(0, 1).reshape(self.n_slots, -1).double()  # (l, L·d)
        solution = torch.linalg.pinv(features) @ target  # min-norm: (h + 1, L·d)
        out.weight.copy_(solution[:-1].T)
        out.bias.copy_(solution[-1])

    def layer_activations(self) -> torch.Tensor:
        """P as (L, l_p + l_i, d): row ℓ is written into the input of block ℓ."""
        if self.reparam is None:
            return self.activations
        flat = self.reparam(self.reparam_input)  # (l, L·d)
        return flat.view(self.n_slots, self.n_layers, self.d_model).transpose(0, 1)

    def folded_numel(self) -> int:
        """Parameters left once folded: L x (l_p + l_i) x d."""
        return self.n_layers * self.n_slots * self.d_model

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the reparameterisation by the activations it produces (same outputs)."""
        if self.reparam is None:
            return
        values = self.layer_activations().detach().clone()
        self.reparam = None
        self.reparam_input = None
        self.activations = nn.Parameter(values)

    def slot_embeddings(self) -> torch.Tensor:
        # Overwritten at block 0's input, so the embedding-level value does not matter.
        ref = self.activations if self.reparam is None else self.reparam_input
        return ref.new_zeros(self.n_slots, self.d_model)

    def begin(self, layout: SlotLayout, batch: int) -> None:
        self._layout = layout
        self._values = self.layer_activations()
        self._index = layout.slot_index[..., None].expand(-1, -1, self.d_model)

    def end(self) -> None:
        self._layout = self._values = self._index = None

    def overwrite(self, layer: int, module: nn.Module, args: tuple, kwargs: dict):
        """Forward pre-hook of block `layer`: put the slot activations into its input."""
        if self._layout is None:  # a decoding step: the slots live in the cache already
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        values = self._values[layer].to(hidden.dtype).expand(hidden.shape[0], -1, -1)
        hidden = hidden.scatter(1, self._index, values)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}


def apply_prefix_embedding(model: nn.Module, prefix_length: int, infix_length: int = 0,
                           infix_after_token: int | None = None, family: str | None = None,
                           trainable_modules: Iterable[str] = ()) -> nn.Module:
    """PreEmbed on `model` in place: only the l_p + l_i embeddings (and heads) train."""
    fam = family_of(model, family)
    emb = model.get_input_embeddings()
    module = PrefixEmbedding(prefix_length, infix_length, d_model_of(model), fam, emb,
                             infix_after_token)
    return install_prefix(model, module, fam, trainable_modules)


@torch.no_grad()
def block_inputs(model: nn.Module, blocks: Iterable[nn.Module], input_ids: torch.Tensor) -> torch.Tensor:
    """What each block receives when the model (in eval mode) reads `input_ids` (n,): (L, n, d)."""
    seen: list[torch.Tensor] = []

    def grab(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"])[0])

    handles = [block.register_forward_pre_hook(grab, with_kwargs=True) for block in blocks]
    training = model.training
    try:
        model.eval()
        model(input_ids=input_ids[None])
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return torch.stack(seen)


PRELAYER_INITS = ("real_tokens", "random")


def apply_prefix_layer(model: nn.Module, prefix_length: int, infix_length: int = 0,
                       infix_after_token: int | None = None, reparam: bool = True,
                       reparam_hidden: int = 512, family: str | None = None,
                       trainable_modules: Iterable[str] = (),
                       init: str = "real_tokens") -> nn.Module:
    """PreLayer on `model` in place: only the slot activations (or, before `fold`, their
    reparameterisation) and the heads train. `model.prefix_tuning.fold()` after training.
    `init`: "real_tokens" (the block inputs of l_p + l_i random vocabulary tokens, drawn from
    torch's global RNG, read by the model in one sequence) or "random" (see PrefixLayer)."""
    if init not in PRELAYER_INITS:
        raise ValueError(f"PreLayer init={init!r}: choose one of {PRELAYER_INITS} (the method "
                         "config's `init` field)")
    fam = family_of(model, family)
    _, blocks = find_blocks(model, fam)
    ref = model.get_input_embeddings().weight
    module = PrefixLayer(prefix_length, infix_length, d_model_of(model), len(blocks), fam,
                         reparam=reparam, reparam_hidden=reparam_hidden,
                         infix_after_token=infix_after_token,
                         init_std=getattr(getattr(model, "config", None), "initializer_range", 0.02),
                         device=ref.device, dtype=ref.dtype)
    if init == "real_tokens" and not ref.is_meta:
        tokens = torch.randint(0, ref.shape[0], (module.n_slots,), device=ref.device)
        module.init_activations(block_inputs(model, blocks, tokens))
        module.init_tokens = tokens.tolist()  # prefix's, then infix's: what P started as
    install_prefix(model, module, fam, trainable_modules)
    for i, block in enumerate(blocks):
        # functools.partial of a bound method, so a deepcopy of the model hooks its own copy
        block.register_forward_pre_hook(functools.partial(module.overwrite, i), with_kwargs=True)
    return model
