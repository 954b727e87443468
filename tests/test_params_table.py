"""The parameter table: exact counts for every row, and the paper's figures beside them."""
from __future__ import annotations

import pytest

from experiments.params import compute_rows, parse_count, printed_half_unit, to_markdown

EXACT = {
    "RoB-base LoRA": 294_912, "RoB-large LoRA": 786_432, "RoB-large LoRA †": 786_432,
    "DeB-XXL LoRA": 4_718_592, "GPT-2 M LoRA": 393_216, "GPT-2 L LoRA": 737_280,
    "GPT-3 LoRA (r_q=r_v=1)": 4_718_592, "GPT-3 LoRA (r_v=2)": 4_718_592,
    "GPT-3 LoRA (r_q=r_v=8)": 37_748_736, "GPT-3 LoRA (r_q=r_k=r_v=r_o=4)": 37_748_736,
    "MiniLM-L6 LoRA (r=8, Wq,Wv)": 6 * 2 * (8 * 384 + 384 * 8),
    "SmolLM2-135M LoRA (r_q=r_v=8)": 30 * ((8 * 576 + 576 * 8) + (8 * 576 + 192 * 8)),
}


@pytest.fixture(scope="module")
def rows():
    return {r.row: r for r in compute_rows()}


def test_exact_counts(rows):
    for name, count in EXACT.items():
        assert rows[name].ours == count, name


def test_gpt2_rows_differ_from_paper_and_say_why(rows):
    row = rows["GPT-2 M LoRA"]
    assert row.matches is False and row.difference == 393_216 - 350_000
    assert "PreLayer" in row.note
    assert rows["DeB-XXL LoRA"].matches is True


def test_heads_counted_apart(rows):
    # RoBERTa-base head for 2 labels: dense 768x768+768, out_proj 768x2+2 (paper_spec §1.10)
    assert rows["RoB-base LoRA"].head == 592_130


def test_printed_precision():
    assert parse_count("0.35M") == 350_000 and parse_count("175,255.8M") == 175_255_800_000
    assert printed_half_unit("0.35M") == pytest.approx(5_000)
    assert printed_half_unit("4.7M") == pytest.approx(50_000)


def test_markdown_has_every_row(rows):
    text = to_markdown(list(rows.values()))
    assert text.count("\n| ") == len(rows) + 1
