"""Fixture records and helpers shared by the table builder's tests (tests/test_tables*.py)."""
from __future__ import annotations

from pathlib import Path

from experiments.paper_numbers import load_table
from experiments.tables import build

FIXTURES = Path(__file__).parent / "fixtures" / "records"


def built(number, scanned):
    records, skipped = scanned
    return build(load_table(number), records, skipped)


def row_of(table, label, profile="paper"):
    return next(r for r in table.rows if r.row == label and r.profile == profile)
