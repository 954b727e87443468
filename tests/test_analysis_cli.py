"""`python -m experiments.analysis` on fake LoRA runs of a tiny random-init Llama: the numbers it
writes equal the library's and a hand computation, and missing inputs are named with a fix."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from experiments import records
from experiments.analysis.__main__ import main
from experiments.models import load_model
from lora_core import LoRAConfig, apply_lora, lora_layers, save_adapter
from lora_core.analysis import subspace_similarity_grid

PREFIX, TASK = "table6_smollm2", "sst2_gen"
N_LAYERS, HIDDEN, MIDDLE = 4, 128, 1  # middle = layer 2 of 4 (0-based block 1), as 48 of 96
ALPHA = 16
MODEL = {"name": "tiny_llama", "display_name": "Tiny Llama", "family": "llama", "head": "causal_lm",
         "arch": {"model_type": "llama", "vocab_size": 97, "hidden_size": HIDDEN,
                  "num_hidden_layers": N_LAYERS, "num_attention_heads": 4, "num_key_value_heads": 2,
                  "intermediate_size": 256, "max_position_embeddings": 64},
         "init": "random"}
RUNS = [("qv_r4", 4, 1), ("qv_r8", 8, 1), ("qv_r64", 64, 1), ("qv_r64", 64, 2)]


def _model(seed: int):
    """The base model as the pipeline builds it for this record: random init seeded with the
    run seed, classification head (RTE)."""
    spec = {k: v for k, v in MODEL.items() if k != "init"}
    return load_model(spec, init="random", head="sequence_classification", num_labels=2,
                      seed=seed, with_tokenizer=False).model


def _write_run(results, name: str, r: int, seed: int):
    """A complete run record + adapter, the adapter's A and B random (as if trained)."""
    model = _model(seed)
    config = LoRAConfig(targets={"q": r, "v": r}, alpha=ALPHA, family="llama")
    apply_lora(model, config)
    g = torch.Generator().manual_seed(1000 * r + seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g))
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.01)
    experiment = f"{PREFIX}/{TASK}/{name}"
    run_dir = records.run_directory(results, experiment, seed)
    save_adapter(model, config, run_dir / "adapter")
    adapter = run_dir / "adapter" / "lora_adapter.safetensors"
    records.write_record(run_dir, {
        "experiment": experiment, "table": 6, "row": f"Wq,Wv r={r}", "model": "tiny_llama",
        "model_display": "Tiny Llama", "model_source": "random", "method": "lora", "task": TASK,
        "profile": "tiny", "seed": seed, "status": "complete",
        "config": {"model": MODEL, "method": {"name": "lora", "targets": {"q": r, "v": r},
                                              "alpha": ALPHA, "dropout": 0.0, "bias": "none"},
                   "task": {"name": TASK, "kind": "generation"}, "seed": seed},
        "weights": {str(adapter.relative_to(results)): records.sha256_file(adapter)}})
    return model


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small SVDs run ~30x slower on two threads when the cores are busy (e.g. beside training)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def results(one_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    models = {(name, seed): _write_run(root, name, r, seed) for name, r, seed in RUNS}
    return root, models


def _q(model, layer=MIDDLE, t="q"):
    return getattr(model.model.layers[layer].self_attn, f"{t}_proj")


def _run_cli(*args) -> int:
    return main(list(args))


def test_figure3_grid_equals_library(results, tmp_path):
    root, models = results
    assert _run_cli("figure3", "--results", str(root), "--out", str(tmp_path)) == 0
    data = json.loads((tmp_path / "figure3.json").read_text())
    assert (tmp_path / "figure3.png").stat().st_size > 1000
    assert data["model"] == "tiny_llama" and data["n_layers"] == N_LAYERS
    (layer,) = data["layers"]
    assert layer["layer_index"] == MIDDLE
    for t, label in (("q", "ΔWq"), ("v", "ΔWv")):
        want = subspace_similarity_grid(_q(models["qv_r8", 1], t=t).lora_A.detach(),
                                        _q(models["qv_r64", 1], t=t).lora_A.detach())
        got = torch.tensor(layer["panels"][label]["phi"], dtype=torch.float64)
        assert got.shape == (8, 64)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert [r["experiment"] for r in data["runs"]] == [f"{PREFIX}/{TASK}/qv_r8", f"{PREFIX}/{TASK}/qv_r64"]
    assert "> 0.5" in data["paper"]["finding"]


def test_figure6_layers_at_relative_depths(results, tmp_path):
    root, _ = results
    assert _run_cli("figure6", "--results", str(root), "--out", str(tmp_path)) == 0
    data = json.loads((tmp_path / "figure6.json").read_text())
    # 4 layers: first 1, 1/3 -> round(4/3) = 1 (same block, shown once), 2/3 -> 3, last 4
    assert [l["layer"] for l in data["layers"]] == [1, 3, 4]


def test_figure4_random_panel_near_expectation(results, tmp_path):
    root, models = results
    assert _run_cli("figure4", "--results", str(root), "--out", str(tmp_path)) == 0
    data = json.loads((tmp_path / "figure4.json").read_text())
    panels = data["layers"][0]["panels"]
    rand = torch.tensor(panels["Random Gaussian"]["phi"], dtype=torch.float64)
    assert rand.shape == (64, 64)
    # E φ(i, j) = max(i, j) / k for independent random subspaces of R^k (k = 128 inputs)
    i = torch.arange(1, 65, dtype=torch.float64)[:, None]
    j = torch.arange(1, 65, dtype=torch.float64)[None, :]
    expected = torch.maximum(i, j) / HIDDEN
    assert rand.mean().item() == pytest.approx(expected.mean().item(), rel=0.05)
    assert rand[31, 31].item() == pytest.approx(32 / HIDDEN, rel=0.2)
    want_q = subspace_similarity_grid(_q(models["qv_r64", 1]).lora_A.detach(),
                                      _q(models["qv_r64", 2]).lora_A.detach())
    torch.testing.assert_close(torch.tensor(panels["ΔWq"]["phi"], dtype=torch.float64), want_q,
                               rtol=0, atol=1e-12)


def _hand_table7(W, dW, r, random):
    def proj(M):
        U, _, Vh = torch.linalg.svd(M, full_matrices=False)
        return torch.linalg.matrix_norm(U[:, :r].T @ W @ Vh[:r].T).item()
    return {"projection_delta": proj(dW), "projection_w": proj(W), "projection_random": proj(random),
            "norm_W": torch.linalg.matrix_norm(W).item(), "norm_dW": torch.linalg.matrix_norm(dW).item(),
            "amplification": torch.linalg.matrix_norm(dW).item() / proj(dW)}


def test_table7_equals_hand_computation(results, tmp_path):
    root, models = results
    assert _run_cli("table7", "--results", str(root), "--out", str(tmp_path)) == 0
    data = json.loads((tmp_path / "table7.json").read_text())
    assert data["layer_index"] == MIDDLE
    for name, r in (("qv_r4", 4), ("qv_r64", 64)):
        layer = _q(models[name, 1])
        W = layer.base_layer.weight.detach().double()
        dW = (ALPHA / r) * layer.lora_B.detach().double() @ layer.lora_A.detach().double()
        torch.testing.assert_close(dW.float(), layer.delta_weight().detach())  # the layer's own ΔW
        random = torch.randn(W.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        want = _hand_table7(W, dW, r, random)
        got = data["ours"][str(r)]
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-9), (r, key)
    md = (tmp_path / "table7.md").read_text()
    assert "| paper: GPT-3 175B, layer 48 of 96 | 0.32 | 21.67 | 0.02 | 1.90 | 37.71 | 0.33 |" in md
    assert "ours: Tiny Llama, layer 2 of 4" in md


def test_figure8_grid(results, tmp_path):
    root, models = results
    assert _run_cli("figure8", "--results", str(root), "--out", str(tmp_path)) == 0
    data = json.loads((tmp_path / "figure8.json").read_text())
    layer = _q(models["qv_r8", 1])
    dW = (ALPHA / 8) * layer.lora_B.detach().double() @ layer.lora_A.detach().double()
    want = subspace_similarity_grid(layer.base_layer.weight.detach(), dW)
    got = torch.tensor(data["panels"]["r=8"]["phi"], dtype=torch.float64)
    assert got.shape == (13, 8)  # i <= ceil(128 / 10): the top 10% of Wq's directions
    torch.testing.assert_close(got, want[:13, :8], rtol=0, atol=1e-9)


def test_missing_run_names_experiment_and_command(tmp_path, capsys):
    assert _run_cli("figure3", "--results", str(tmp_path), "--out", str(tmp_path / "a")) == 1
    err = capsys.readouterr().err
    assert f"{PREFIX}/{TASK}/qv_r8 seed 1" in err
    assert f"python -m experiments.run experiment={PREFIX}/{TASK}/qv_r64 seed=1" in err


def test_missing_adapter_names_paths_and_hash(results, tmp_path, capsys):
    root, _ = results
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    run_dir = copy / "runs" / PREFIX / TASK / "qv_r8" / "seed1"
    moved = tmp_path / "weights" / PREFIX / TASK / "qv_r8" / "seed1"
    moved.parent.mkdir(parents=True)
    shutil.move(str(run_dir / "adapter"), str(moved))  # weights/<experiment>/seed1/lora_adapter.*
    assert _run_cli("figure3", "--results", str(copy), "--out", str(tmp_path / "a")) == 1
    err = capsys.readouterr().err
    sha = records.sha256_file(moved / "lora_adapter.safetensors")
    assert str(run_dir / "adapter" / "lora_adapter.safetensors") in err and sha in err
    # the override finds it (folder layout <root>/<experiment>/seed<k>/)
    assert _run_cli("figure3", "--results", str(copy), "--out", str(tmp_path / "b"),
                    "--adapters-root", str(tmp_path / "weights")) == 0
    assert (tmp_path / "b" / "figure3.json").exists()


def test_all_builds_what_it_can_and_lists_the_rest(results, tmp_path, capsys):
    root, _ = results
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    shutil.rmtree(copy / "runs" / PREFIX / TASK / "qv_r64" / "seed2")
    assert _run_cli("all", "--results", str(copy)) == 0
    out = capsys.readouterr().out
    built = sorted(p.name for p in (copy / "analysis").iterdir())
    assert built == sorted([*(f"{n}.{ext}" for n in ("figure3", "figure6", "figure8")
                              for ext in ("json", "png")), "table7.json", "table7.md"])
    assert "2 of 6 not built" in out
    assert "figure4:" in out and "figure7:" in out
    assert f"experiment={PREFIX}/{TASK}/qv_r64 seed=2" in out
    assert _run_cli("all", "--results", str(copy), "--strict") == 1


def test_rank_other_than_the_name_is_refused(results, tmp_path, capsys):
    root, _ = results
    copy = tmp_path / "results"
    shutil.copytree(root, copy)
    runs = copy / "runs" / PREFIX / TASK
    shutil.rmtree(runs / "qv_r8" / "seed1")
    shutil.copytree(runs / "qv_r4" / "seed1", runs / "qv_r8" / "seed1")
    assert _run_cli("figure3", "--results", str(copy), "--out", str(tmp_path / "a")) == 1
    assert "has ranks {'q': 4, 'v': 4}, its name says r=8" in capsys.readouterr().err
