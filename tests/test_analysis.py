"""Section 7 measures on matrices whose answers are known."""
from __future__ import annotations

import math

import pytest
import torch

from lora_core.analysis import (amplification_factor, projection_norm, random_gaussian_like,
                                subspace_similarity, subspace_similarity_grid, top_singular_subspace)


def random_orthonormal(k, r, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(k, r, generator=g, dtype=torch.float64))
    return q


def test_same_span_is_one_even_rotated():
    A = torch.randn(4, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rotation = random_orthonormal(4, 4, seed=2)
    assert subspace_similarity(A, rotation @ A, 4, 4) == pytest.approx(1.0, abs=1e-12)
    # a span contains its own top directions: phi(i=2, j=4) = 1
    assert subspace_similarity(A, rotation @ A, 2, 4) == pytest.approx(1.0, abs=1e-12)


def test_orthogonal_spans_are_zero():
    basis = random_orthonormal(16, 6)
    A1, A2 = basis[:, :3].T, basis[:, 3:].T
    assert subspace_similarity(A1, A2, 3, 3) == pytest.approx(0.0, abs=1e-12)


def test_random_subspaces_near_expectation():
    # E||U1ᵀU2||_F² = i·j/k for independent uniform subspaces of R^k
    k, i, j = 400, 8, 16
    values = [subspace_similarity(random_gaussian_like(torch.empty(i, k), s),
                                  random_gaussian_like(torch.empty(j, k), 100 + s), i, j)
              for s in range(20)]
    assert sum(values) / len(values) == pytest.approx(i * j / k / min(i, j), rel=0.15)


def test_symmetric_and_grid_equals_pointwise():
    g = torch.Generator().manual_seed(3)
    A1, A2 = torch.randn(5, 20, generator=g), torch.randn(7, 20, generator=g)
    grid = subspace_similarity_grid(A1, A2)
    assert grid.shape == (5, 7)
    for i in range(1, 6):
        for j in range(1, 8):
            assert grid[i - 1, j - 1].item() == pytest.approx(subspace_similarity(A1, A2, i, j), abs=1e-12)
            assert subspace_similarity(A1, A2, i, j) == pytest.approx(subspace_similarity(A2, A1, j, i), abs=1e-12)


def test_projection_norm_and_amplification_by_hand():
    W = torch.diag(torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64))
    delta = torch.zeros(3, 3, dtype=torch.float64)
    delta[2, 2] = 4.0  # ΔW amplifies the direction W holds weakest
    U, V = top_singular_subspace(delta, 1)
    assert projection_norm(W, U, V) == pytest.approx(1.0)   # W's weight on e3 is 1
    assert amplification_factor(delta, W, 1) == pytest.approx(4.0)
    U, V = top_singular_subspace(W, 2)
    assert projection_norm(W, U, V) == pytest.approx(math.sqrt(25 + 9))
    with pytest.raises(ValueError, match="exceeds"):
        top_singular_subspace(W, 4)
