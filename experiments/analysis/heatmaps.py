"""Heat-maps of φ grids as PNG files: one row of panels per layer, i down the side and j
across, both 1-based as in the paper's Figures 3, 4 and 6-8; colour scale fixed to [0, 1].
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class HeatPanel:
    title: str
    grid: np.ndarray  # [i-1, j-1] = φ(i, j)
    ylabel: str = "i"
    xlabel: str = "j"


def _ticks(n: int) -> list[int]:
    """About eight 1-based tick positions over 1..n (1 and n included)."""
    step = max(1, int(np.ceil(n / 8)))
    ticks = list(range(1, n + 1, step))
    if ticks[-1] != n:
        ticks.append(n)
    return ticks


def plot_heatmaps(path: Path, title: str, rows: list[list[HeatPanel]], notes: list[str] = ()) -> Path:
    """Write `rows` of panels to `path`; returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a build machine
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    lines = [line for note in notes for line in textwrap.wrap(note, 40 * n_cols)]
    height = 3.4 * n_rows + 0.8 + 0.18 * len(lines)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(4.2 * n_cols, height), squeeze=False,
                             layout="constrained")
    bottom = (0.18 * len(lines) + 0.1) / height if lines else 0.0
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    image = None
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            if c >= len(row):
                ax.axis("off")
                continue
            panel = row[c]
            grid = np.asarray(panel.grid, dtype=float)
            n_i, n_j = grid.shape
            # extent centres cell (i, j) on integer coordinates; i = 1 at the top, as the paper
            image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto",
                              interpolation="nearest", extent=(0.5, n_j + 0.5, n_i + 0.5, 0.5))
            ax.set_xticks(_ticks(n_j))
            ax.set_yticks(_ticks(n_i))
            ax.set_xlabel(panel.xlabel)
            ax.set_ylabel(panel.ylabel)
            ax.set_title(panel.title, fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="φ (normalised subspace similarity)")
    fig.suptitle(title, fontsize=10)
    if lines:
        fig.text(0.01, 0.01, "\n".join(lines), ha="left", va="bottom", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
