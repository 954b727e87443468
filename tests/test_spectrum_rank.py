"""The energy rank of a ΔW (rank needed for 90% of Σσ²) on matrices of known spectrum."""
import pytest
import torch

from lora_core.analysis import (energy_rank, energy_rank_from_singular_values, lora_delta,
                                singular_values)


def matrix_with_spectrum(sigma, d=40, k=30, seed=0):
    """U diag(σ) Vᵀ with random orthonormal U (d x n), V (k x n): its singular values are σ."""
    g = torch.Generator().manual_seed(seed)
    n = len(sigma)
    U, _ = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(k, n, generator=g, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(sigma, dtype=torch.float64)) @ V.T


def test_equal_singular_values_need_ninety_percent_of_them():
    M = matrix_with_spectrum([1.0] * 10)
    assert energy_rank(M, 0.9) == 9      # 9 of 10 equal σ hold exactly 90%
    assert energy_rank(M, 0.91) == 10
    assert energy_rank(M, 0.5) == 5


def test_decaying_spectrum():
    # energies 16, 4, 1, 0.25 (total 21.25): cumulative shares .753, .941, .988, 1.0
    sigma = [4.0, 2.0, 1.0, 0.5]
    M = matrix_with_spectrum(sigma)
    assert torch.allclose(singular_values(M)[:4], torch.tensor(sigma, dtype=torch.float64))
    assert energy_rank(M, 0.75) == 1
    assert energy_rank(M, 0.9) == 2
    assert energy_rank(M, 0.95) == 3
    assert energy_rank(M, 1.0) == 4


def test_one_dominant_direction_and_the_zero_matrix():
    assert energy_rank(matrix_with_spectrum([10.0, 0.1, 0.1, 0.1])) == 1
    assert energy_rank(torch.zeros(5, 7)) == 0
    assert energy_rank_from_singular_values(torch.tensor([3.0, 4.0]), 0.6) == 2   # 9/25 < .6


def test_lora_update_has_energy_rank_at_most_r():
    g = torch.Generator().manual_seed(1)
    B, A = torch.randn(64, 4, generator=g), torch.randn(4, 48, generator=g)
    delta = lora_delta(B, A, scaling=2.0)
    assert torch.allclose(delta, 2.0 * B.double() @ A.double())
    assert 1 <= energy_rank(delta, 0.9) <= 4
    assert energy_rank(delta, 1.0) == 4


def test_full_rank_noise_needs_most_directions():
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(200, 200, generator=g, dtype=torch.float64)
    # a square Gaussian matrix's σ² follow the quarter-circle law: 90% of the energy needs
    # well over half of the directions
    assert energy_rank(noise, 0.9) > 100


def test_fraction_is_checked():
    with pytest.raises(ValueError, match="fraction"):
        energy_rank(torch.eye(3), 0.0)


def test_ft_and_lora_spectra_per_weight_type():
    from experiments.analysis.spectrum import (compare_to_r, lora_deltas, module_deltas,
                                               spectrum_by_type)

    g = torch.Generator().manual_seed(3)
    base, tuned = {}, {}
    for layer in range(3):
        for t, shape, sigma in (("q_proj", (40, 30), [1.0] * 20),         # 90%: 18 directions
                                ("down_proj", (30, 50), [3.0, 1.0, 1.0])):  # 9/11 < .9 < 10/11: 2
            name = f"model.layers.{layer}.{'self_attn' if t == 'q_proj' else 'mlp'}.{t}.weight"
            base[name] = torch.randn(shape, generator=g, dtype=torch.float64)
            tuned[name] = base[name] + matrix_with_spectrum(sigma, *shape, seed=layer)
        norm = f"model.layers.{layer}.input_layernorm.weight"
        base[norm] = torch.ones(30)
        tuned[norm] = torch.ones(30) * 2   # a norm's change is not a ΔW of a weight type
    base["model.embed_tokens.weight"] = tuned["model.embed_tokens.weight"] = torch.zeros(9, 30)
    deltas = module_deltas(base, tuned, "layers")
    assert set(deltas) == {(t, b) for t in ("q_proj", "down_proj") for b in range(3)}
    spec = spectrum_by_type(deltas)
    assert spec["q_proj"]["energy_rank_by_block"] == [18, 18, 18]
    assert spec["down_proj"]["median"] == 2 and spec["down_proj"]["max_rank"] == 30
    summary = compare_to_r(spec, r=2)
    assert summary["ratio_to_lora_r"] == {"q_proj": 9.0, "down_proj": 1.0}
    assert summary["min_ratio_to_lora_r"] == 1.0

    B, A = torch.randn(40, 4, generator=g), torch.randn(4, 30, generator=g)
    adapter = {"base_model.model.layers.0.self_attn.q_proj.lora_A": A,
               "base_model.model.layers.0.self_attn.q_proj.lora_B": B}
    lora = lora_deltas(adapter, alpha=8.0, blocks="layers")
    assert torch.allclose(lora[("q_proj", 0)], 2.0 * B.double() @ A.double())
    assert spectrum_by_type(lora)["q_proj"]["max"] <= 4


def test_tuned_weights_of_another_model_are_named():
    from experiments.analysis.spectrum import module_deltas

    w = torch.zeros(4, 4)
    with pytest.raises(ValueError, match="q_proj.weight: tuned"):
        module_deltas({"layers.0.q_proj.weight": torch.zeros(4, 3)},
                      {"layers.0.q_proj.weight": w}, "layers")
    with pytest.raises(KeyError, match="not in the pretrained"):
        module_deltas({}, {"layers.0.q_proj.weight": w}, "layers")


def test_an_encoders_three_dense_weights_are_three_types():
    """BERT names three weights `dense` (attention output, intermediate, output): each is its
    own weight type under its path in the block; unique names stay short (query, value)."""
    from experiments.analysis.spectrum import lora_deltas, module_deltas

    base, tuned = {}, {}
    for path, shape in (("attention.self.query", (6, 6)), ("attention.output.dense", (6, 6)),
                        ("intermediate.dense", (12, 6)), ("output.dense", (6, 12))):
        for layer in range(2):
            name = f"bert.encoder.layer.{layer}.{path}.weight"
            base[name], tuned[name] = torch.zeros(shape), torch.ones(shape) * (layer + 1)
    deltas = module_deltas(base, tuned, "encoder.layer")
    assert {t for t, _ in deltas} == {"query", "attention.output.dense", "intermediate.dense",
                                      "output.dense"}
    assert torch.equal(deltas[("output.dense", 1)], torch.full((6, 12), 2.0, dtype=torch.float64))
    A, B = torch.ones(2, 6), torch.ones(6, 2)
    lora = lora_deltas({"base_model.model.bert.encoder.layer.0.attention.self.value.lora_A": A,
                        "base_model.model.bert.encoder.layer.0.attention.self.value.lora_B": B},
                       alpha=4.0, blocks="encoder.layer")
    assert set(lora) == {("value", 0)}


def test_a_spectrum_built_elsewhere_stays_while_its_runs_are_recorded(tmp_path):
    """FT's weights are git-ignored: on a fresh clone the analysis cannot be rebuilt, and the
    committed JSON stays as long as every run it lists has a record; not once one is gone."""
    import json

    from experiments.analysis.beyond_records import kept_from_records
    from .beyond_fixtures import write_run

    doc = tmp_path / "analysis" / "spectrum_minilm.json"
    doc.parent.mkdir()
    doc.write_text(json.dumps({"runs": [{"experiment": "glue_minilm/ft_mrpc", "seed": 1},
                                        {"experiment": "glue_minilm/ft_mrpc", "seed": 2}]}))
    write_run(tmp_path, "glue_minilm/ft_mrpc", 1, method="ft")
    assert not kept_from_records(doc, tmp_path)
    write_run(tmp_path, "glue_minilm/ft_mrpc", 2, method="ft")
    assert kept_from_records(doc, tmp_path)
    assert not kept_from_records(tmp_path / "absent.json", tmp_path)


def test_spectrum_minilm_reads_converged_ft_runs_and_their_weights(tmp_path):
    """End to end on a shrunk random-init MiniLM: FT's ΔW of known rank per weight type gives
    that energy rank, over LoRA's r from the LoRA record; a run that hit its cap still
    improving is left out and named."""
    import json

    import yaml
    from safetensors.torch import save_file

    from experiments import records
    from experiments.analysis import spectrum_minilm
    from experiments.analysis.spectrum import _pretrained
    from experiments.paths import CONF_DIR
    from .beyond_fixtures import write_run

    model = dict(yaml.safe_load((CONF_DIR / "model" / "minilm_l6.yaml").read_text()),
                 init="random", shrink={"layers": 2, "hidden": 32, "heads": 2})
    history = [{"epoch": e, "dev/accuracy": a} for e, a in enumerate((0.6, 0.8, 0.7, 0.7), 1)]
    for seed, converged in ((1, True), (2, False)):
        rel = f"weights/glue_minilm/ft_mrpc/seed{seed}/trainable.safetensors"
        path = write_run(tmp_path, "glue_minilm/ft_mrpc", seed, method="ft",
                         config={"model": model})
        data = json.loads(path.read_text())
        base = _pretrained(data)
        tuned = {}
        for name, w in base.items():
            if ".encoder.layer." in name and w.ndim == 2:   # ΔW of rank 3 in every weight
                tuned[name] = (w + matrix_with_spectrum([1.0, 1.0, 1.0], *w.shape, seed=1)
                               .to(w.dtype)).contiguous()
        (tmp_path / rel).parent.mkdir(parents=True)
        save_file(tuned, str(tmp_path / rel))
        data["weights"] = {rel: records.sha256_file(tmp_path / rel)}
        data["train"].update(history=history, converged=converged)
        path.write_text(json.dumps(data))
    write_run(tmp_path, "glue_minilm/lora_mrpc", 1, config={"model": model,
              "method": {"name": "lora", "r": 2, "targets": ["q", "v"], "alpha": 4}})

    class Store:
        results, adapters_root = tmp_path, None

    out = tmp_path / "analysis"
    written = spectrum_minilm.build(Store, out)
    doc = json.loads(written[0].read_text())
    mrpc = doc["tasks"]["mrpc"]
    assert list(mrpc["seeds"]) == ["1"] and mrpc["lora"]["r"] == 2
    types = mrpc["seeds"]["1"]["types"]
    assert set(types) == {"query", "key", "value", "attention.output.dense",
                          "intermediate.dense", "output.dense"}
    assert all(t["energy_rank_by_block"] == [3, 3] for t in types.values())
    assert mrpc["min_ratio_to_lora_r"] == 1.5 == doc["min_ratio_to_lora_r"]
    assert "glue_minilm/ft_mrpc seed 2 (did not converge)" in doc["not_included"]
    assert mrpc["runs"] == [{"experiment": "glue_minilm/ft_mrpc", "seed": 1}]
    assert (tmp_path / "figures" / "spectrum_minilm.png").is_file()
