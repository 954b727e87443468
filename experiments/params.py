"""The trainable-parameter table: every parameter-count row of the paper, computed on `meta`.

`python -m experiments.params` prints it and writes results/tables/params.{md,csv}: our
count from the shipped model configs, the paper's figure, the difference, and why they differ;
rows the paper cited from earlier work (* in its tables) are flagged, and settings the paper
does not state carry how we derived them.
"""
from __future__ import annotations

import argparse
import csv
import re
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from lora_core import FAMILIES, apply_method, count_parameters

from .models import load_model, model_spec
from .paths import results_dir

ROWS_FILE = Path(__file__).with_name("paper") / "params.yaml"


@dataclass
class ParamRow:
    table: str
    row: str
    model: str
    ours: int
    head: int
    total: int
    paper: str | None
    note: str = ""
    cited: bool = False  # the paper copied this row from earlier work (* in its tables)
    derived: str = ""  # how a setting the paper does not state was chosen

    @property
    def paper_value(self) -> float | None:
        return parse_count(self.paper) if self.paper else None

    @property
    def difference(self) -> float | None:
        return None if self.paper_value is None else self.ours - self.paper_value

    @property
    def matches(self) -> bool | None:
        """Equal at the paper's printed precision (0.35M covers 345,000..355,000)."""
        if self.paper is None:
            return None
        return abs(self.difference) <= printed_half_unit(self.paper)


def parse_count(text: str) -> float:
    m = re.fullmatch(r"\s*([\d,.]+)\s*([KMB]?)\s*", text)
    if not m:
        raise ValueError(f"cannot read parameter count {text!r} (expected e.g. '0.35M')")
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[m.group(2)]
    return float(m.group(1).replace(",", "")) * scale


def printed_half_unit(text: str) -> float:
    number = re.match(r"\s*([\d,.]+)", text).group(1).replace(",", "")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return 0.5 * 10 ** -decimals * parse_count(text) / float(number)


def compute_row(entry: dict) -> ParamRow:
    method = dict(entry["method"])
    spec = model_spec(entry["model"])
    built = load_model(spec, init="meta", with_tokenizer=False)
    heads = FAMILIES[spec.family].heads if spec.head == "sequence_classification" else ()
    present = [h for h in heads if any(n == h or n.endswith("." + h)
                                       for n, _ in built.model.named_modules())]
    apply_method(built.model, method.pop("name"), head_modules=present, **method)
    count = count_parameters(built.model, head_modules=present)
    return ParamRow(table=str(entry["table"]), row=entry["row"], model=entry["model"],
                    ours=count.trainable_without_head, head=count.head, total=count.total,
                    paper=entry.get("paper"), note=entry.get("note", ""),
                    cited=bool(entry.get("cited", False)), derived=entry.get("derived", ""))


def compute_rows(rows_file: Path = ROWS_FILE) -> list[ParamRow]:
    entries = OmegaConf.to_container(OmegaConf.load(rows_file))["rows"]
    return [compute_row(e) for e in entries]


def _fmt_diff(row: ParamRow) -> str:
    if row.paper is None:
        return ""
    sign = "+" if row.difference >= 0 else "-"
    return f"{sign}{abs(row.difference):,.0f}"


def _verdict(row: ParamRow) -> str:
    if row.matches is None:
        return "stand-in (no paper figure)" if row.table == "stand-in" else "no paper figure"
    return "matches at printed precision" if row.matches else "DIFFERS"


def _note(row: ParamRow) -> str:
    parts = [row.note] if row.note else []
    if row.derived:
        parts.append(f"derived: {row.derived}")
    return "; ".join(parts)


def to_markdown(rows: list[ParamRow]) -> str:
    lines = ["# Trainable parameters: computed from the shipped configs vs the paper", "",
             "Counted on the `meta` device (no weights). Task heads train but are not counted by "
             "the paper (issue #16); they are shown apart. Cited = the paper copied the row from "
             "earlier work (* in its tables). Prefix-layer rows count the folded activations.", "",
             "| Table | Row | Model | Cited | Ours | Paper | Ours − paper | Verdict | Head (not counted) | Note |",
             "|---|---|---|---|---:|---:|---:|---|---:|---|"]
    for r in rows:
        lines.append(f"| {r.table} | {r.row} | {r.model} | {'yes' if r.cited else ''} | "
                     f"{r.ours:,} | {r.paper or '–'} | {_fmt_diff(r)} | {_verdict(r)} | "
                     f"{r.head:,} | {_note(r)} |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[ParamRow], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["table", "row", "model", "cited", "ours", "paper", "paper_value",
                    "difference", "matches", "head_not_counted", "total", "note", "derived"])
        for r in rows:
            w.writerow([r.table, r.row, r.model, r.cited, r.ours, r.paper or "",
                        r.paper_value or "", "" if r.difference is None else int(r.difference),
                        "" if r.matches is None else r.matches, r.head, r.total, r.note,
                        r.derived])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: <results>/tables)")
    args = parser.parse_args(argv)
    out = args.out or results_dir() / "tables"
    out.mkdir(parents=True, exist_ok=True)
    rows = compute_rows()
    text = to_markdown(rows)
    (out / "params.md").write_text(text)
    write_csv(rows, out / "params.csv")
    print(text)
    print(f"wrote {out / 'params.md'} and {out / 'params.csv'}")


if __name__ == "__main__":
    main()
