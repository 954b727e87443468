"""The LoRA-vs-FT cost benchmark (experiments/bench/method_cost.py) on a tiny random GPT-2:
rounds pair FT and LoRA on the same batch, and each method trains what it should."""
import torch
import transformers as T

from experiments.batching import Encoded, collate_causal
from experiments.bench import method_cost
from experiments.bench.train_cases import Case


def tiny_cases():
    torch.manual_seed(0)
    model = T.GPT2LMHeadModel(T.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=97,
                                           n_positions=64))
    items = [Encoded(list(range(1, 9 + i % 4)), [-100] * 4 + list(range(5, 9 + i % 4)))
             for i in range(24)]
    collate = lambda batch: collate_causal(batch, pad_id=0)  # noqa: E731
    lora = {"targets": {"q": 2, "v": 2}, "alpha": 4, "dropout": 0.0}
    return (Case("tiny_ft", model, "ft", {}, items, collate, 4, causal=True),
            Case("tiny_lora", model, "lora", lora, items, collate, 4, causal=True))


def test_rounds_time_both_methods_on_the_same_batches(monkeypatch):
    monkeypatch.setattr(method_cost, "_cases", lambda name: tiny_cases())
    out = method_cost.time_rounds("tiny", rounds=3, autocast="none")
    assert len(out["ft"]["s_per_step"]) == len(out["lora"]["s_per_step"]) == 3
    assert all(t > 0 for m in out.values() for t in m["s_per_step"])


def test_a_stepper_trains_only_its_methods_parameters():
    ft_case, lora_case = tiny_cases()
    batch = list(range(4))
    for case, base_moves in ((ft_case, True), (lora_case, False)):
        stepper = method_cost.Stepper(case, "none")
        names = {n for n, p in stepper.model.named_parameters() if p.requires_grad}
        before = {n: p.detach().clone() for n, p in stepper.model.named_parameters()}
        stepper.step(batch)
        moved = {n for n, p in stepper.model.named_parameters() if not torch.equal(p, before[n])}
        assert moved <= names and moved, case.name
        assert any("c_attn.weight" in n for n in moved) == base_moves, sorted(moved)


def test_markdown_gives_the_ratio_of_medians():
    report = {"started": "t", "threads": 2, "autocast": "bf16", "rounds": 2, "repeats": 1,
              "models": {"m": {"setup": "tiny", "time": {
                  "ft": {"median_s": 2.0}, "lora": {"median_s": 1.5}},
                  "memory": {"ft": {"training_mb": [300.0]}, "lora": {"training_mb": [100.0]}}}}}
    row = method_cost.markdown(report).splitlines()[-1]
    assert row == "| tiny | 2.000 | 1.500 | 0.75 | 300 | 100 |"
