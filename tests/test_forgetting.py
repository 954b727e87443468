"""The forgetting measures (completion NLL, general-text NLL, zero-shot choice accuracy) on a
tiny random Llama and a rigged model, and the forgetting/learning arithmetic."""
import json

import pytest
import torch
from torch import nn

from experiments.analysis import forgetting as fg
from experiments.batching import encode_example
from experiments.paths import shared_dir
from experiments.tasks.base import Example

VOCAB = shared_dir() / "data" / "gpt2_vocab" / "tokenizer.json"
needs_vocab = pytest.mark.skipif(not VOCAB.is_file(), reason=f"needs {VOCAB}")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(VOCAB))
    tok.eos_token = "<|endoftext|>"
    return tok


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=50257, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    return LlamaForCausalLM(cfg).eval()


@needs_vocab
def test_completion_nll_is_the_models_own_loss(tokenizer, tiny_llama):
    texts = ["The Rhine flows into the North Sea.", "Paris is a city in France, on the Seine."]
    items = [encode_example(tokenizer, Example("Context:", t), 64) for t in texts]
    batched = fg.completion_nll(tiny_llama, items, batch_size=2)
    for item, (nll, n) in zip(items, batched):
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            loss = tiny_llama(input_ids=ids, labels=torch.tensor([item.labels])).loss
        assert n == sum(label != -100 for label in item.labels)
        assert nll / n == pytest.approx(float(loss), rel=1e-4)    # padding changes nothing
    mean = fg.general_text_nll(tiny_llama, tokenizer, texts)
    singles = [fg.completion_nll(tiny_llama, [encode_example(tokenizer, Example("", t), 256)])[0]
               for t in texts]
    assert mean == pytest.approx(sum(s for s, _ in singles) / sum(k for _, k in singles), rel=1e-4)


@needs_vocab
def test_completion_nll_answers_in_the_order_asked(tokenizer, tiny_llama):
    """Items are batched by length; the answers still come back in the caller's order."""
    texts = ["A much longer sentence about rivers, cities, seas and the weather in spring.",
             "Short.", "A sentence of middling length here.", "Tiny one."]
    items = [encode_example(tokenizer, Example("Q:", t), 64) for t in texts]
    singles = [fg.completion_nll(tiny_llama, [it])[0] for it in items]
    batched = fg.completion_nll(tiny_llama, items, batch_size=3)
    assert [n for _, n in batched] == [n for _, n in singles]
    assert [s for s, _ in batched] == pytest.approx([s for s, _ in singles], rel=1e-4)


def test_cached_scores_score_each_model_once(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(fg, "scores", lambda model, tok, texts, tasks, seps: calls.append(model)
                        or {"general_nll": float(len(calls))})
    record = {"experiment": "beyond_smollm2/forgetting/ft", "seed": 1,
              "config": {"model": {"name": "m"}, "method": {"name": "none"}},
              "weights": {"runs/x/weights.safetensors": "aa"}}
    tasks = {"sst2_gen": [Example("Review: good", "positive")]}
    seps = {"sst2_gen": "\nSentiment:"}
    load = lambda: ("model", "tokenizer")    # noqa: E731
    first = fg.cached_scores(tmp_path, record, load, ["text"], tasks, seps)
    assert fg.cached_scores(tmp_path, record, load, ["text"], tasks, seps) == first
    assert len(calls) == 1                     # the second call read the cache
    retrained = {**record, "weights": {"runs/x/weights.safetensors": "bb"}}
    assert fg.cached_scores(tmp_path, retrained, load, ["text"], tasks, seps) != first
    assert fg.cached_scores(tmp_path, record, load, ["other text"], tasks, seps) != first
    assert fg.cached_scores(tmp_path, record, load, ["text"], tasks, {"sst2_gen": None}) != first
    assert len(calls) == 4                     # new weights, items or prompt: scored again


class AlwaysSays(nn.Module):
    """A model whose next token is always `token`: log-likelihood scoring must pick the choice
    that starts with it."""

    def __init__(self, token: int, vocab: int = 50257):
        super().__init__()
        self.token, self.vocab = token, vocab

    def forward(self, input_ids, attention_mask=None):
        logits = torch.zeros(*input_ids.shape, self.vocab)
        logits[..., self.token] = 10.0
        return type("Out", (), {"logits": logits})()


@needs_vocab
def test_choice_accuracy_picks_the_likeliest_label(tokenizer):
    examples = [Example("Sentence: great film", "positive"), Example("Sentence: dull", "negative"),
                Example("Sentence: fine", "positive"), Example("Sentence: awful", "positive")]
    positive = tokenizer.encode(" positive", add_special_tokens=False)[0]
    negative = tokenizer.encode(" negative", add_special_tokens=False)[0]
    choices = ("negative", "positive")
    assert fg.choice_accuracy(AlwaysSays(positive), tokenizer, examples, choices) == 75.0
    assert fg.choice_accuracy(AlwaysSays(negative), tokenizer, examples, choices) == 25.0


def test_forgetting_and_learning_arithmetic():
    before = {"general_nll": 2.50, "sst2_gen": 80.0, "rte_gen": 55.0}
    ft = fg.forgetting_of(before, {"general_nll": 2.90, "sst2_gen": 70.0, "rte_gen": 56.0})
    assert ft == pytest.approx({"general_nll_increase": 0.40, "sst2_gen_drop": 10.0,
                                "rte_gen_drop": -1.0})
    runs = [{"label": "ft", "seed": 1, "forgetting": ft, "learning": 6.0},
            {"label": "ft", "seed": 2, "forgetting": {"general_nll_increase": 0.2}, "learning": 4.0},
            {"label": "lora_r16", "seed": 1, "forgetting": {"general_nll_increase": 0.05},
             "learning": None}]
    s = fg.summarise(before, runs)["by_method"]
    assert s["ft"]["general_nll_increase"] == pytest.approx([0.4, 0.2])
    assert s["ft"]["mean"]["learning"] == pytest.approx(5.0)
    assert s["ft"]["seeds"] == [1, 2]
    assert "learning" not in s["lora_r16"]         # no learning value: not averaged as zero


def test_general_text_is_qnli_wikipedia_sentences():
    try:
        texts, source = fg.general_texts(50)
    except FileNotFoundError as err:
        pytest.skip(str(err))
    assert len(texts) == 50 == len(set(texts)) and "QNLI" in source
    assert all(len(t.split()) >= 3 for t in texts)


def test_minilm_sts_measure():
    from experiments.analysis.forgetting_minilm import mean_pool, sts_spearman

    hidden = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])                     # the padded third token is ignored
    assert mean_pool(hidden, mask).tolist() == [[2.0, 1.0]]
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])   # cosines 1, .71, 0
    assert sts_spearman(a, b, [5.0, 3.0, 0.5]) == pytest.approx(100.0)
    assert sts_spearman(a, b, [0.5, 3.0, 5.0]) == pytest.approx(-100.0)


def test_a_probe_counts_only_where_the_base_model_beats_the_commonest_answer():
    labels = ["positive"] * 101 + ["negative"] * 99       # commonest answer: 50.5
    at_chance = fg.probe_skill(46.5, labels)
    assert at_chance["majority_share"] == pytest.approx(50.5)
    assert at_chance["p_above_majority"] > 0.5
    assert at_chance["caveat"].startswith("the base model scores 46.5 on these 200 items, "
                                          "not above the 50.5")
    skilled = fg.probe_skill(62.0, labels)                 # 124 of 200 right
    assert skilled["p_above_majority"] < 0.01 and skilled["caveat"] is None
    # a model that always answers the commonest label scores its share: no skill either
    always = fg.probe_skill(54.0, ["a"] * 108 + ["b"] * 92)
    assert always["majority_share"] == pytest.approx(54.0) and always["caveat"]


def test_probes_use_the_separators_prompt_choice_chose(tmp_path):
    from experiments.analysis.inputs import MissingInputError

    with pytest.raises(MissingInputError, match="experiments.bench.prompt_choice"):
        fg.probe_separators(tmp_path, "smollm2_135m")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "prompt_choice.json").write_text(json.dumps(
        {"model": "smollm2_135m", "tasks": {"sst2_gen": {"chosen": "\nSentiment:"},
                                             "samsum": {"chosen": "\nSummary:"}}}))
    assert fg.probe_separators(tmp_path, "smollm2_135m") == {"sst2_gen": "\nSentiment:",
                                                             "rte_gen": None}
    with pytest.raises(MissingInputError, match="chose separators for 'smollm2_135m'"):
        fg.probe_separators(tmp_path, "gpt2_m")


@needs_vocab
def test_choice_accuracy_scores_each_label_after_the_separator(tokenizer, monkeypatch):
    seen = []
    monkeypatch.setattr(fg, "completion_nll", lambda model, items, **kw: seen.extend(items)
                        or [(float(i), 1) for i in range(len(items))])
    fg.choice_accuracy(None, tokenizer, [Example("Sentence: great film", "positive")],
                       ("negative", "positive"), separator="\nSentiment:")
    sep = tokenizer.encode("Sentence: great film\nSentiment:", add_special_tokens=False)
    for item, label in zip(seen, ("negative", "positive")):
        answer = tokenizer.encode(" " + label, add_special_tokens=False) + [tokenizer.eos_token_id]
        assert item.input_ids == sep + answer                  # no eos before the answer
        assert [t for t in item.labels if t != -100] == answer
