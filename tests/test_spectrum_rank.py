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
