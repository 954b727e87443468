"""The table and figure builder: run records -> `results/tables/tableN.{md,csv,tex}`,
`results/figures/*.png`, a W&B summary run per table and `results/README.md`; never trains."""
from .aggregate import BuiltRow, BuiltTable, CellStats, build
from .collect import RunRecord, Skipped, scan
from .render import to_csv, to_latex, to_markdown

__all__ = ["BuiltRow", "BuiltTable", "CellStats", "RunRecord", "Skipped", "build", "scan",
           "to_csv", "to_latex", "to_markdown"]
