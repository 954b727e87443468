"""Section 7 analyses on LoRA matrices: subspace similarity (App. G), how ΔW relates to W
(Table 7, App. H.4), and the energy rank of a ΔW (the rank holding 90% of Σσ², Biderman et al.
2024). Plain torch, no I/O; float64 throughout so small differences are real.
"""
from __future__ import annotations

import torch


def right_singular_vectors(A: torch.Tensor) -> torch.Tensor:
    """U of the paper's φ: the right-singular vectors of a LoRA A (r x k), as columns (k x r).

    The rows of A are the r input directions the update reads; their span is what φ compares.
    """
    _, _, Vh = torch.linalg.svd(A.detach().to(torch.float64), full_matrices=False)
    return Vh.T


def subspace_similarity_grid(A1: torch.Tensor, A2: torch.Tensor) -> torch.Tensor:
    """φ(A1, A2, i, j) for all 1 <= i <= r1, 1 <= j <= r2, from one SVD per matrix.

    φ = ||U1[:, :i]ᵀ U2[:, :j]||_F² / min(i, j): 1 when one span contains the other, 0 when
    orthogonal. Entry [i-1, j-1] of the result is φ(i, j).
    """
    U1, U2 = right_singular_vectors(A1), right_singular_vectors(A2)
    if U1.shape[0] != U2.shape[0]:
        raise ValueError(f"A matrices read inputs of different sizes: {U1.shape[0]} vs {U2.shape[0]}")
    overlap = (U1.T @ U2) ** 2  # (r1, r2): squared cosines between singular directions
    cumulative = overlap.cumsum(0).cumsum(1)  # [i-1, j-1] = ||U1^iᵀ U2^j||_F²
    i = torch.arange(1, overlap.shape[0] + 1, dtype=torch.float64)[:, None]
    j = torch.arange(1, overlap.shape[1] + 1, dtype=torch.float64)[None, :]
    return cumulative / torch.minimum(i, j)


def subspace_similarity(A1: torch.Tensor, A2: torch.Tensor, i: int, j: int) -> float:
    """φ(A1, A2, i, j) for the top-i directions of A1 and the top-j of A2."""
    r1, r2 = min(A1.shape), min(A2.shape)
    if not (1 <= i <= r1 and 1 <= j <= r2):
        raise ValueError(f"need 1 <= i <= {r1} and 1 <= j <= {r2}, got i={i}, j={j}")
    U1 = right_singular_vectors(A1)[:, :i]
    U2 = right_singular_vectors(A2)[:, :j]
    return float(torch.linalg.matrix_norm(U1.T @ U2) ** 2 / min(i, j))


def random_gaussian_like(A: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The paper's baseline: a Gaussian matrix of A's shape, sharing no directions with it."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(A.shape, generator=g, dtype=torch.float64)


def top_singular_subspace(M: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(U, V) with U the top-r left singular vectors (d x r) and V the top-r right ones as
    rows (r x k), so that Uᵀ W Vᵀ projects W onto that r-dimensional subspace (Table 7)."""
    U, _, Vh = torch.linalg.svd(M.detach().to(torch.float64), full_matrices=False)
    if r > U.shape[1]:
        raise ValueError(f"r={r} exceeds the rank bound {U.shape[1]} of a {tuple(M.shape)} matrix")
    return U[:, :r], Vh[:r]


def projection_norm(W: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> float:
    """||Uᵀ W Vᵀ||_F: how much of W lies in the subspace spanned by U (left) and V (right)."""
    return float(torch.linalg.matrix_norm(U.T @ W.detach().to(torch.float64) @ V.T))


def amplification_factor(delta_W: torch.Tensor, W: torch.Tensor, r: int) -> float:
    """||ΔW||_F / ||Uᵀ W Vᵀ||_F with U, V the top-r singular vectors of ΔW (App. H.4):
    how strongly ΔW amplifies directions that W itself holds only weakly."""
    U, V = top_singular_subspace(delta_W, r)
    return float(torch.linalg.matrix_norm(delta_W.detach().to(torch.float64))) / projection_norm(W, U, V)


# The spectrum of an update ΔW (Biderman et al., 2024, §5): how many singular directions hold a
# given share of its energy ||ΔW||_F² = Σ σ_i². LoRA's B·A has at most r non-zero σ_i, so its
# energy rank is ≤ r; full fine-tuning's ΔW is unconstrained, and the question is how far above
# LoRA's r its energy rank lies.


def singular_values(M: torch.Tensor) -> torch.Tensor:
    """σ_1 ≥ σ_2 ≥ … of M, in float64."""
    return torch.linalg.svdvals(M.detach().to(torch.float64))


def energy_rank_from_singular_values(s: torch.Tensor, fraction: float = 0.9) -> int:
    """The smallest k with Σ_{i≤k} σ_i² ≥ fraction · Σ_i σ_i²; 0 for an all-zero matrix."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    energy = torch.as_tensor(s, dtype=torch.float64) ** 2
    total = float(energy.sum())
    if total == 0.0:
        return 0
    cumulative = torch.cumsum(energy, 0) / total
    # A tiny tolerance so that an exact share (e.g. 9 of 10 equal σ for 0.9) is not lost to
    # rounding in the cumulative sum.
    return int(torch.searchsorted(cumulative, torch.tensor(fraction - 1e-12, dtype=torch.float64))) + 1


def energy_rank(M: torch.Tensor, fraction: float = 0.9) -> int:
    """The rank needed for `fraction` of M's spectral energy (Σ σ_i²), e.g. 0.9 for 90%."""
    return energy_rank_from_singular_values(singular_values(M), fraction)


def lora_delta(B: torch.Tensor, A: torch.Tensor, scaling: float = 1.0) -> torch.Tensor:
    """LoRA's update ΔW = scaling · B·A (scaling = alpha / r), d x k, in float64."""
    return scaling * (B.detach().to(torch.float64) @ A.detach().to(torch.float64))
