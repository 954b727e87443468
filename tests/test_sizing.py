"""The dry run (experiments/sizing.py): the activation estimate against what autograd really
keeps, the GPU plan by hand, and Table 4's FT and LoRA rows on Llama-3.1-8B."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import transformers as T
from hydra import compose, initialize_config_dir

from experiments.paths import CONF_DIR, REPO_ROOT
from experiments.sizing import GPU, activation_elements_per_token, plan, size_run


def saved_bytes(model: torch.nn.Module, ids: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward (parameters excluded, shared storage
    counted once), through the loss the engine computes: logits, then log-softmax."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        torch.log_softmax(model(input_ids=ids).logits.float(), -1)
    return sum(kept.values())


ARCHS = {
    "llama": dict(model_type="llama", hidden_size=256, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, intermediate_size=688, vocab_size=1000,
                  max_position_embeddings=512),
    "gpt2": dict(model_type="gpt2", n_embd=256, n_layer=3, n_head=4, vocab_size=1000,
                 n_positions=512, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
}


@pytest.mark.parametrize("family", sorted(ARCHS))
def test_activation_estimate_matches_what_autograd_keeps(family):
    arch = dict(ARCHS[family])
    config = T.AutoConfig.for_model(arch.pop("model_type"), **arch, attn_implementation="sdpa")
    torch.manual_seed(0)
    model = T.AutoModelForCausalLM.from_config(config).train()
    # per token: the slope between two lengths, so fixed buffers (rotary tables) drop out
    short, long = (saved_bytes(model, torch.randint(0, 1000, (2, s))) for s in (128, 256))
    measured = (long - short) / (2 * 128 * 4)
    estimate = activation_elements_per_token(ARCHS[family])
    assert estimate == pytest.approx(measured, rel=0.06), (estimate, measured)


def test_plan_by_hand():
    gpu = GPU(memory_gb=80)  # 72 GB usable
    # 10B parameters, all trainable, fp32: 160 GB of state; 4 MB per sequence; 1B-parameter units
    ft = plan(total=10**10, trainable=10**10, per_token=1000, seq_len=1000, batch_size=8,
              precision="fp32", gpu=gpu, unit=10**9)
    assert (ft["weights_gb"], ft["grads_gb"], ft["optim_gb"]) == (40, 40, 80)
    # gathered (2·4 + 4)·1e9 = 12 GB: N = ceil(160 / (72 - 12 - 0.004)) = 3
    assert ft["gpus"] == 3 and ft["micro_batch"] == 8 and ft["grad_accum"] == 1
    assert ft["memory_per_gpu_gb"] == pytest.approx(160 / 3 + 12 + 8 * 0.004)
    # frozen: 40 GB of weights on one GPU, 32 GB left for activations of 4 GB per sequence
    lora = plan(total=10**10, trainable=0, per_token=10**6, seq_len=1000, batch_size=128,
                precision="fp32", gpu=gpu, unit=10**9)
    assert lora["gpus"] == 1 and lora["micro_batch"] == 8 and lora["grad_accum"] == 16
    # 9 sequences would fit beside 36 GB of weights, 8 divide the batch of 128 evenly
    nine = plan(total=9 * 10**9, trainable=0, per_token=10**6, seq_len=1000, batch_size=128,
                precision="fp32", gpu=gpu, unit=10**9)
    assert (nine["micro_batch"], nine["grad_accum"]) == (8, 16)
    # a sequence larger than the GPU: no plan, said so
    assert plan(10**9, 10**9, 10**8, 1000, 8, "fp32", gpu, 10**8)["gpus"] is None


@pytest.fixture(scope="module")
def table4():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield {row: compose(config_name="config", overrides=[f"experiment=table4/wikisql/{row}"])
               for row in ("ft", "lora_qv_r8")}


def test_table4_llama_ft_needs_sharding_and_lora_one_gpu(table4):
    ft, lora = size_run(table4["ft"]), size_run(table4["lora_qv_r8"])
    # Llama-3.1-8B's model card: 8,030.3M; LoRA r = 8 on Wq, Wv: 32 x 8 x (4096 + 4096 + 4096 + 1024)
    assert ft.total_params == ft.trainable_params == 8_030_261_248
    assert lora.trainable_params == 32 * 8 * (4096 * 3 + 1024) == 3_407_872
    assert ft.optim_gb == pytest.approx(8 * 8.030261248) and lora.optim_gb < 0.03
    assert ft.gpus > 1 and lora.gpus == 1  # 128 GB of fp32 FT state cannot fit 80 GB
    assert max(ft.memory_per_gpu_gb, lora.memory_per_gpu_gb) <= 0.9 * 80
    assert ft.micro_batch * ft.gpus * ft.grad_accum >= 128
    # same tokens; FT does 6P per token, LoRA 4P + 2T
    assert ft.tokens == lora.tokens == 56_355 * 2 * 384
    assert ft.flops / lora.flops == pytest.approx(6 * 8_030_261_248 / (4 * lora.total_params
                                                                     + 2 * lora.trainable_params))


def test_dry_run_prints_and_writes_nothing(tmp_path):
    cmd = [sys.executable, "-m", "experiments.run", "experiment=table4/wikisql/ft", "run.dry=true",
           f"paths.results={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "8,030,261,248 trainable of 8,030,261,248" in done.stdout
    assert "sharded (FSDP)" in done.stdout and "GPU-hours" in done.stdout
    assert not (tmp_path / "runs").exists()


def test_sizing_cli_writes_json_and_markdown(tmp_path):
    cmd = [sys.executable, "-m", "experiments.sizing", "table4/wikisql/lora_qv_r8",
           "--set", "model=qwen2_5_0_5b", "--json", str(tmp_path / "s.json"),
           "--markdown", str(tmp_path / "s.md")]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    plans = json.loads((tmp_path / "s.json").read_text())
    assert [p["precision"] for p in plans] == ["fp32", "bf16-mixed"]
    # Qwen2.5-0.5B's model card total, plus LoRA r = 8 on Wq, Wv: 24 x 8 x (896 + 896 + 896 + 128)
    assert plans[0]["trainable_params"] == 24 * 8 * (896 * 3 + 128)
    assert plans[0]["total_params"] == 494_032_768 + plans[0]["trainable_params"]
    assert "table4/wikisql/lora_qv_r8/qwen2_5_0_5b" in (tmp_path / "s.md").read_text()
