"""experiments.generate: rows of several adapters batched together, each output as if run alone."""
from __future__ import annotations

import json

import pytest
import torch

from experiments.generate import main, read_rows, serving_order
from experiments.models import load_model
from lora_core import LoRAConfig, apply_lora, export_peft, load_adapter, lora_layers, save_adapter

from .conftest import shared_data_or_skip

PROMPTS = ["The weather in Paris is", "Translate to French: cheese", "1, 2, 3,", "Once upon a time",
           "SELECT name FROM", "The cat sat on the"]


def tiny_gpt2():
    return load_model("gpt2_tiny", init="random", seed=0)


def write_adapter(root, name, targets, seed, peft=False):
    model = tiny_gpt2().model
    config = LoRAConfig(targets=targets, alpha=2 * next(iter(targets.values())))
    apply_lora(model, config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_A.normal_(generator=g)
            layer.lora_B.normal_(generator=g).mul_(0.5)
    (export_peft if peft else save_adapter)(model, config, root / name)
    return root / name


def test_rows_of_mixed_adapters_equal_each_row_alone(tmp_path):
    shared_data_or_skip("data", "gpt2_vocab")
    dirs = {"qv": write_adapter(tmp_path, "qv", {"q": 4, "v": 4}, 1),
            "mlp": write_adapter(tmp_path, "mlp", {"mlp": 2}, 2, peft=True)}  # PEFT's format too
    adapters = ["qv", None, "mlp", "qv", "mlp", None]
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": p, "adapter": a, "id": i}) + "\n"
                            for i, (p, a) in enumerate(zip(PROMPTS, adapters))))
    out = tmp_path / "out.jsonl"
    main(["--model", "gpt2_tiny", "--init", "random", "--seed", "0", "--input", str(rows),
          "--output", str(out), "--max-new-tokens", "5", "--batch-size", "4",
          *[f"--adapter={n}={d}" for n, d in dirs.items()]])
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in got] == list(range(6))  # input order kept
    alone = {}
    for name in ("qv", "mlp", None):
        loaded = tiny_gpt2()
        if name == "qv":
            load_adapter(loaded.model, dirs[name])
        elif name == "mlp":
            from lora_core import import_peft
            import_peft(loaded.model, dirs[name])
        alone[name] = loaded
    for r in got:
        loaded = alone[r["adapter"]]
        ids = torch.tensor([loaded.tokenizer.encode(r["prompt"], add_special_tokens=False)])
        with torch.no_grad():
            seq = loaded.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5,
                                        do_sample=False, pad_token_id=loaded.tokenizer.eos_token_id)
        assert r["output"] == loaded.tokenizer.decode(seq[0, ids.shape[1]:], skip_special_tokens=True)
    # the adapters change what is generated, so the equality above is not vacuous
    by_prompt = {}
    for name, loaded in alone.items():
        ids = torch.tensor([loaded.tokenizer.encode(PROMPTS[0])])
        with torch.no_grad():
            by_prompt[name] = loaded.model.generate(ids, attention_mask=torch.ones_like(ids),
                                                    max_new_tokens=5, do_sample=False,
                                                    pad_token_id=0)[0].tolist()
    assert len({tuple(v) for v in by_prompt.values()}) == 3


def test_serving_order_groups_rows_stably():
    assert serving_order(["a", None, "b", "a", None]) == [0, 3, 1, 4, 2]


def test_bad_rows_name_line_and_field(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"prompt": "x", "adapter": "a"}\n{"text": "y"}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2: needs a string field \"prompt\""):
        read_rows(rows, ["a"])
    rows.write_text('{"prompt": "x", "adapter": "b"}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:1: adapter 'b' was not given with --adapter"):
        read_rows(rows, ["a"])
    with pytest.raises(ValueError, match="NAME=DIR"):
        main(["--model", "gpt2_tiny", "--input", str(rows), "--adapter", "nodir"])
