"""Figures as PNG: a generic panel plot (paper series as lines, ours as marked points), and
Figure 2 (GPT-3 accuracy vs trainable parameters) from Table 15's rows, the paper's and ours."""
from __future__ import annotations

# A figure with no point of ours is still written, and says so on the image.

from dataclasses import dataclass, field
from pathlib import Path

from ..paper_numbers import FigureSpec
from .aggregate import BuiltTable

NO_RUNS_NOTE = "No runs of ours yet: the paper's points only"


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    ours: bool = False
    errors: list[float | None] | None = None


@dataclass
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: list[Series] = field(default_factory=list)
    xlog: bool = False


def _joinable(xs: list[float]) -> bool:
    """A line joins a series' points only where each size has one point: several settings at one
    size (LoRA r_v=2 and r_q=r_v=1 are both 4.7M) would make it zigzag, so those are points only."""
    return len(xs) > 1 and len(set(xs)) == len(xs)


def plot_panels(path: Path, title: str, panels: list[Panel], notes: list[str] = ()) -> list[str]:
    """Write `panels` side by side to `path` (PNG). Returns the notes drawn on the image: the
    given ones, plus NO_RUNS_NOTE when no panel holds a series of ours."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on a build machine
    import matplotlib.pyplot as plt

    notes = list(notes)
    if not any(s.ours and s.xs for p in panels for s in p.series):
        notes.insert(0, NO_RUNS_NOTE)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 6.0), squeeze=False)
    colours = {}
    for ax, panel in zip(axes[0], panels):
        for s in panel.series:
            if not s.xs:
                continue
            if s.ours:
                yerr = None
                if s.errors and any(e is not None for e in s.errors):
                    yerr = [e or 0.0 for e in s.errors]
                ax.errorbar(s.xs, s.ys, yerr=yerr, fmt="*--" if _joinable(s.xs) else "*",
                            markersize=12, capsize=3, label=s.label, color=colours.get(s.label))
            else:
                order = sorted(range(len(s.xs)), key=lambda i: s.xs[i])
                style = "o-" if _joinable(s.xs) else "o"
                line = ax.plot([s.xs[i] for i in order], [s.ys[i] for i in order], style,
                               label=s.label, markersize=4)[0]
                colours[s.label] = line.get_color()
        if panel.xlog:
            ax.set_xscale("log")
        ax.set_title(panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            # below the axes: inside, it hides points (Figure 2's FT sits in a corner)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.suptitle(title)
    for i, note in enumerate(notes):
        fig.text(0.5, 0.02 + 0.04 * i, note, ha="center", va="bottom", fontsize=10,
                 color="darkred" if note == NO_RUNS_NOTE else "black")
    fig.tight_layout(rect=(0, 0.05 + 0.04 * len(notes), 1, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
    return notes


def score_vs_params(spec: FigureSpec, built: BuiltTable) -> list[Panel]:
    """One panel per column of the figure spec: the paper's rows grouped by method as lines,
    and each row of ours that has a parameter count as a point (mean count, statistic ± std)."""
    table = built.paper
    panels = []
    for p in spec.panels:
        column = p["column"]
        panel = Panel(title=p.get("title", column), xlabel="Trainable parameters",
                      ylabel=p.get("ylabel", column), xlog=spec.xlog)
        for method in spec.series:
            rows = [r for r in table.rows if getattr(r, spec.series_by) == method
                    and r.params is not None and r.cells.get(column) is not None]
            panel.series.append(Series(f"paper: {method}", [r.params.value for r in rows],
                                       [r.cells[column].value for r in rows]))
        # ours: one line per (method, model, profile), as the paper's, each point a row
        ours: dict[tuple, list] = {}
        for row in built.rows:
            cell = row.cells.get(column)
            if not row.has_runs or cell is None or not row.params:
                continue
            method = getattr(row.paper_row, spec.series_by, None) if row.paper_row else None
            key = (method or row.row, row.model_display, row.profile)
            ours.setdefault(key, []).append((sum(row.params) / len(row.params), cell))
        for (method, model, profile), points in ours.items():
            points.sort(key=lambda point: point[0])
            panel.series.append(Series(f"ours: {method} ({model}, {profile})",
                                       [x for x, _ in points], [c.value for _, c in points],
                                       ours=True, errors=[c.std for _, c in points]))
        panels.append(panel)
    return panels


def figure_notes(built: BuiltTable) -> list[str]:
    missing_x = [r.row for r in built.rows if r.has_runs and not r.params]
    if missing_x:
        return [f"{len(missing_x)} row(s) of ours without a parameter count are not drawn"]
    return []


def write_figure(spec: FigureSpec, built: BuiltTable, out_dir: Path) -> tuple[Path, list[str]]:
    path = Path(out_dir) / f"figure{spec.number}.png"
    notes = plot_panels(path, f"Figure {spec.number}: {spec.title}", score_vs_params(spec, built),
                        figure_notes(built))
    return path, notes
