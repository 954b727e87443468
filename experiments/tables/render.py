"""Writing a built table as `tableN.md`, `.csv` and `.tex`: each cell is ours, the paper's
printed value and the difference, e.g. `68.2±0.3 (paper 70.4±.1, −2.2)`."""
from __future__ import annotations

# The markdown and LaTeX show what a reader compares; the CSV keeps every number behind a
# cell (per-seed values, epochs taken, mean, std, median) for anyone who recomputes it.

import csv
import io
import re

from ..paper_numbers import Column, PaperCell, PaperTable, ParamCount
from .aggregate import BuiltRow, BuiltTable, CellStats

MISSING = "—"
MINUS = "−"
COMMAND = "python -m experiments.tables table={n}"


# ---------------------------------------------------------------------------------- numbers
def fmt(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def signed(value: float, decimals: int) -> str:
    text = fmt(abs(value), decimals)
    if float(text) == 0:
        return text
    return ("+" if value > 0 else MINUS) + text


def difference(ours_text: str, paper: float, decimals: int) -> str:
    """Ours as shown minus the paper's value, so the three numbers of a cell agree."""
    return signed(float(ours_text) - paper, decimals)


_UNITS = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}


def fmt_count(count: float, unit: str, decimals: int) -> str:
    value = count / _UNITS[unit]
    if value and abs(value) < 10 ** (1 - decimals):
        # too small for the paper's precision in its unit (a 135M model against "175B")
        return f"{value:.3g}{unit}"
    return f"{value:,.{decimals}f}{unit}"


def params_text(ours: list[float], paper: ParamCount | None) -> str:
    """Our trainable count in the paper's unit and precision (e.g. 0.39M against 0.35M)."""
    if not ours:
        return f"{MISSING} (paper {paper.printed})" if paper else MISSING
    unit, decimals = (paper.unit, paper.decimals) if paper else ("M", 2)
    low, high = min(ours), max(ours)
    text = fmt_count(low, unit, decimals)
    if high != low:  # records of one row disagree: show the range, never a made-up mean
        text += "–" + fmt_count(high, unit, decimals)
        return f"{text} (paper {paper.printed})" if paper else text
    if not paper:
        return text
    diff = signed((low - paper.value) / _UNITS[unit], decimals)
    return f"{text} (paper {paper.printed}, {diff}{unit})"


def ours_text(cell: CellStats, decimals: int) -> str:
    text = fmt(cell.value, decimals)
    return text if cell.std is None else f"{text}±{fmt(cell.std, decimals)}"


def cell_text(cell: CellStats | None, paper: PaperCell | None, column: Column,
              row_seeds: int) -> str:
    if cell is None:
        return f"{MISSING} (paper {paper.printed})" if paper else MISSING
    text = ours_text(cell, column.decimals)
    if not cell.derived and cell.n != row_seeds:
        text += f" [n={cell.n}]"
    if paper is None:
        return text
    diff = difference(fmt(cell.value, column.decimals), paper.value, column.decimals)
    return f"{text} (paper {paper.printed}, {diff})"


def row_cells(table: PaperTable, row: BuiltRow) -> list[str]:
    """The displayed cells of one row, in column order, after the row's own columns."""
    out = []
    for column in table.columns:
        if column.kind == "params":
            out.append(params_text(row.params, row.paper_row.params if row.paper_row else None))
        else:
            paper = row.paper_row.cells.get(column.key) if row.paper_row else None
            out.append(cell_text(row.cells.get(column.key), paper, column, len(row.seeds)))
    return out


HEAD = ["Row", "Profile", "Model", "Seeds"]


def row_head(row: BuiltRow) -> list[str]:
    return [row.row, row.profile or MISSING, row.model_display or MISSING, str(len(row.seeds))]


def header(table: PaperTable) -> list[str]:
    labels = []
    for c in table.columns:
        labels.append(c.label + (f" (|Θ| {c.params})" if c.params else ""))
    return HEAD + labels


def grid(built: BuiltTable) -> list[list[str]]:
    """Header and rows as displayed, shared by markdown, LaTeX and the W&B table."""
    return [header(built.paper)] + [row_head(r) + row_cells(built.paper, r) for r in built.rows]


# ---------------------------------------------------------------------------------- prose
def _method_sentence(table: PaperTable) -> str:
    if table.best_epoch is True:
        epoch = ("each seed at its best epoch by the column's metric where its record keeps "
                 "that metric per epoch")
    elif table.best_epoch:
        epoch = (f"each seed at its best epoch by {table.best_epoch} where its record keeps "
                 "that per epoch")
    else:
        epoch = "each seed at its last epoch"
    return (f"Ours: {table.statistic} over seeds ± sample standard deviation (the paper's "
            f"statistic: {table.statistic}), {epoch}; metrics computed once after training come "
            "from the record's final metrics.")


def intro(built: BuiltTable) -> list[str]:
    t = built.paper
    return [
        f"Our runs beside the paper's numbers ({t.source}; data: "
        f"experiments/paper/table{t.number}.yaml). Each cell: ours (paper as printed, ours − "
        f"paper). {MISSING} = no complete run of ours; [n=k] = a cell from fewer seeds than its row.",
        _method_sentence(t),
        "Profile: paper = the paper's budget; stand-in = the paper's recipe on another model "
        "at the smaller budget the notes below state; tiny and smoke = pipeline checks on shrunk "
        "random-init models, not comparable with the paper. Stand-in rows run another model "
        "than the paper's and are never averaged with its rows.",
    ]


def facing(built: BuiltTable) -> list[str]:
    return [f"{r.row} ({r.profile}, {r.model_display}) → {r.paper_row.label}"
            for r in built.rows if r.extra and r.paper_row is not None]


# ---------------------------------------------------------------------------------- notes
# A note about our runs never carries a typed result: `{ours:ROW|COLUMN}` in a table's
# our_notes (experiments/paper/tableN.yaml) becomes our cell of that row and column as the
# table shows it (value, ±std over seeds), or — where no run fills it.
_OURS = re.compile(r"\{ours:([^|{}]+)\|([^{}]+)\}")


def render_note(note: str, built: BuiltTable) -> str:
    t = built.paper

    def ours(match: re.Match) -> str:
        row_name, column_name = match.group(1).strip(), match.group(2).strip()
        column = next((c for c in t.columns if column_name in (c.key, c.label)), None)
        rows = [r for r in built.rows if r.row == row_name]
        if column is None or not rows:
            what = (f"no column {column_name!r} (columns: {[c.label for c in t.columns]})"
                    if column is None else f"no row {row_name!r}")
            raise ValueError(f"experiments/paper/table{t.number}.yaml our_notes: "
                             f"{match.group(0)} names {what}")
        cell = next((r.cells[column.key] for r in rows if r.cells.get(column.key)), None)
        return MISSING if cell is None else ours_text(cell, column.decimals)

    return _OURS.sub(ours, note)


# ---------------------------------------------------------------------------------- markdown
def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(built: BuiltTable) -> str:
    t = built.paper
    rows = grid(built)
    lines = [f"# Table {t.number}: {t.title}", ""]
    lines += [" ".join(intro(built)), ""]
    lines.append("| " + " | ".join(_md_escape(c) for c in rows[0]) + " |")
    lines.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(rows[0]) - 3)) + "|")
    for r in rows[1:]:
        lines.append("| " + " | ".join(_md_escape(c) for c in r) + " |")
    lines.append("")
    faces = facing(built)
    if faces:
        lines += ["Rows the paper does not print, and the paper row each is compared with:"]
        lines += [f"- {f}" for f in faces] + [""]
    if t.notes:
        lines += ["From the paper:"] + [f"- {n}" for n in t.notes] + [""]
    if t.our_notes:
        lines += ["About our runs:"] + [f"- {render_note(n, built)}" for n in t.our_notes] + [""]
    if built.skipped:
        lines += ["Skipped records (not averaged):"]
        lines += [f"- `{s.path}`: {s.reason}" for s in built.skipped] + [""]
    lines.append(f"Rebuild: `{COMMAND.format(n=t.number)}`")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- csv
def _num(value) -> str:
    return "" if value is None else repr(float(value))


def to_csv(built: BuiltTable) -> str:
    t = built.paper
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["table", "row", "paper_row", "extra", "profile", "model", "model_display", "seeds",
            "records"]
    for c in t.columns:
        if c.kind == "params":
            head += ["params", "params_paper", "params_paper_value"]
        else:
            head += [c.key, f"{c.key}_mean", f"{c.key}_std", f"{c.key}_median", f"{c.key}_n",
                     f"{c.key}_values", f"{c.key}_epochs", f"{c.key}_paper",
                     f"{c.key}_paper_value", f"{c.key}_paper_pm", f"{c.key}_diff",
                     f"{c.key}_source"]
    w.writerow(head)
    for r in built.rows:
        line = [t.number, r.row, r.paper_row.label if r.paper_row else "", r.extra,
                r.profile or "", r.model or "", r.model_display or "",
                ";".join(map(str, r.seeds)), ";".join(r.records)]
        for c in t.columns:
            if c.kind == "params":
                p = r.paper_row.params if r.paper_row else None
                line += [";".join(str(int(v)) for v in r.params), p.printed if p else "",
                         _num(p.value if p else None)]
                continue
            cell: CellStats | None = r.cells.get(c.key)
            paper: PaperCell | None = r.paper_row.cells.get(c.key) if r.paper_row else None
            diff = (float(fmt(cell.value, c.decimals)) - paper.value
                    if cell is not None and paper is not None else None)
            line += [_num(cell.value if cell else None),
                     _num(cell.mean if cell and not cell.derived else None),
                     _num(cell.std if cell else None),
                     _num(cell.median if cell and not cell.derived else None),
                     cell.n if cell and not cell.derived else "",
                     ";".join(repr(v) for v in cell.values) if cell and not cell.derived else "",
                     ";".join("final" if e is None else str(e) for e in cell.epochs)
                     if cell and not cell.derived else "",
                     paper.printed if paper else "", _num(paper.value if paper else None),
                     _num(paper.pm if paper else None),
                     "" if diff is None else fmt(diff, c.decimals),
                     paper.source if paper else ""]
        w.writerow(line)
    return out.getvalue()


# ---------------------------------------------------------------------------------- latex
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                "^": r"\^{}"}
_TEX_UNICODE = {"±": r"$\pm$", "−": r"$-$", "—": "---", "–": "--", "†": r"\textdagger{}",
                "→": r"$\to$", "‖": r"$\|$", "⊤": r"$^\top$", "Δ": r"$\Delta$",
                "Θ": r"$\Theta$", "×": r"$\times$"}


def tex_escape(text: str) -> str:
    out = []
    for ch in str(text):
        out.append(_TEX_SPECIAL.get(ch) or _TEX_UNICODE.get(ch) or ch)
    return "".join(out)


def to_latex(built: BuiltTable) -> str:
    t = built.paper
    rows = grid(built)
    ncols = len(rows[0])
    lines = [f"% Table {t.number}: {t.title}. Generated by `{COMMAND.format(n=t.number)}`;",
             "% do not edit. Needs \\usepackage{booktabs}.",
             r"\begin{table}[t]", r"\centering", r"\small",
             rf"\caption{{Table {t.number}: {tex_escape(t.title)}. Each cell: ours (paper, ours "
             rf"$-$ paper); {t.statistic} over seeds $\pm$ sample std.}}",
             rf"\label{{tab:repro-table{t.number}}}",
             rf"\begin{{tabular}}{{{'lll' + 'r' * (ncols - 3)}}}", r"\toprule",
             " & ".join(tex_escape(c) for c in rows[0]) + r" \\", r"\midrule"]
    for r in rows[1:]:
        lines.append(" & ".join(tex_escape(c) for c in r) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"
