"""The converging SmolLM2 stand-ins of Table 4 and of Tables 5 and 6 (tables/smollm2.py): cells at
each seed's best epoch, skipped records, the budget from the records, run.same_as links, the empty
table."""
from __future__ import annotations

import json

import pytest
import yaml

from experiments.paper_numbers import load_table
from experiments.tables import build, scan
from experiments.tables.cli import main
from experiments.tables.smollm2 import TABLE4, VIEWS, collect, paper_row_order, to_json, to_markdown

ROWS = {"ft": "GPT-3 FT", "lora_qv_r8": "GPT-3 LoRA (37.7M)", "pre_layer": "GPT-3 PreLayer"}
BUDGET = {"sst2_gen": (2000, {"dev": 400}, 96, 16, 8), "rte_gen": (2490, {"dev": 277}, 192, 16, 8),
          "samsum": (1000, {"test": 100}, 512, 8, 6)}
LR = {"ft": 5e-5, "lora_qv_r8": 1e-3, "pre_layer": 5e-4}


def _entry(task: str, value) -> dict:
    """A history entry: a label-word task's accuracy, or SAMSum's (R1, R2, RL)."""
    if task == "samsum":
        return dict(zip(("test/ROUGE-1", "test/ROUGE-2", "test/ROUGE-L"), value))
    return {"dev/accuracy": value}


def _record(root, cell, task, seed, history, *, rerun="", status="complete", converged=None,
            folder="gpt3_smollm2", table="gpt3_smollm2", trainable=921_600, deployed=None,
            row=None):
    """A record.json as the pipeline writes it for conf/experiment/<folder>/<task>/<cell>.yaml."""
    experiment = f"{folder}/{task}/{cell}"
    path = root / "runs" / experiment / f"seed{seed}{rerun}" / "record.json"
    path.parent.mkdir(parents=True)
    entries = [{"epoch": i + 1, "step": 10 * (i + 1), **_entry(task, v)}
               for i, v in enumerate(history)]
    max_train, evals, seq, batch, epochs = BUDGET[task]
    split = "validation" if task == "samsum" else "train"
    train = {"history": entries, **({} if converged is None else
                                    {"converged": converged, "stopped_early": converged})}
    params = {"trainable": trainable, "trainable_without_head": trainable, "head": 0,
              **({} if deployed is None else {"deployed": deployed})}
    path.write_text(json.dumps({
        "experiment": experiment, "table": table, "row": row or ROWS[cell], "model": "smollm2_135m",
        "model_display": "SmolLM2-135M-Instruct", "profile": "standin_smollm2_plateau",
        "seed": seed, "status": status, "task": task, "method": cell.split("_q")[0],
        "metrics": entries[-1] if entries else {}, "train": train, "params": params,
        "data": {"train_examples": max_train, "eval_examples": evals},
        "config": {"data": {"max_train": max_train, "sample_seed": 0},
                   "train": {"lr": LR.get(cell, LR["lora_qv_r8"]), "batch_size": batch, "epochs": epochs,
                             "patience": 2, "autocast": "bf16"},
                   "task": {"seq_len": seq, "splits": {"train": split,
                                                       "eval": next(iter(evals))}},
                   "decode": {"num_beams": 1}}}))
    return path.relative_to(root).as_posix()


def test_cells_are_medians_of_each_seeds_best_epoch(tmp_path):
    # LoRA SST-2: best epochs 0.82 (epoch 2), 0.90 (1), 0.86 (3); the last epochs are lower
    for seed, hist in ((1, [0.70, 0.82, 0.80]), (2, [0.90, 0.85, 0.84]), (3, [0.80, 0.84, 0.86])):
        _record(tmp_path, "lora_qv_r8", "sst2_gen", seed, hist, trainable=921_600)
    _record(tmp_path, "lora_qv_r8", "rte_gen", 1, [0.50, 0.60, 0.55, 0.58])
    # SAMSum: ROUGE-L picks the epoch, and R1/R2 are read there, not at their own best (epoch 1)
    _record(tmp_path, "lora_qv_r8", "samsum", 1, [(40.0, 15.0, 30.0), (38.0, 14.0, 33.0)])
    _record(tmp_path, "ft", "sst2_gen", 1, [0.88], trainable=134_515_008)
    _record(tmp_path, "pre_layer", "sst2_gen", 1, [0.60], trainable=9_162_368, deployed=69_120)

    built = collect(tmp_path)
    assert [r.label for r in built.rows] == ["GPT-3 FT", "GPT-3 PreLayer", "GPT-3 LoRA (37.7M)"]
    lora = built.rows[2]
    sst2 = lora.cells["SST-2 (gen)"]
    assert sst2.values == pytest.approx([82.0, 90.0, 86.0]) and sst2.epochs == [2, 1, 3]
    assert sst2.seeds == [1, 2, 3] and sst2.median == pytest.approx(86.0)
    assert lora.cells["RTE (gen)"].values == pytest.approx([60.0])
    assert lora.cells["RTE (gen)"].epochs == [2]
    for label, value in (("SAMSum R1", 38.0), ("SAMSum R2", 14.0), ("SAMSum RL", 33.0)):
        assert lora.cells[label].values == pytest.approx([value]) and lora.cells[label].epochs == [2]
    assert built.rows[0].cells["RTE (gen)"] is None
    assert built.rows[1].trainable == [69_120]          # PreLayer folded, as the paper counts
    # conf/experiment/gpt3_smollm2/ has a file for every Table 4 row but BitFit
    assert built.unrun_rows == ["GPT-3 BitFit"] and not built.skipped

    text = to_markdown(built)
    assert ("| GPT-3 LoRA (37.7M) | lora_qv_r8 | 921.6K | 86.0 (n=3) | 60.0 (n=1) | 38.0 (n=1) "
            "| 14.0 (n=1) | 33.0 (n=1) |") in text
    assert "| GPT-3 FT | ft | 134.52M | 88.0 (n=1) | – (n=0) |" in text
    assert "| paper: GPT-3 LoRA (37.7M) | 37.7M | 74.0 | 91.6 | 53.4 | 29.2 | 45.1 |" in text
    assert "86.0±4.0 (n=3)" in text                      # mean ± std in the second table
    assert "SmolLM2-135M-Instruct (not GPT-3)" in text and "stand in for MNLI-m" in text
    cell = next(r for r in to_json(built)["rows"] if r["label"] == "GPT-3 LoRA (37.7M)")
    assert cell["cells"]["SST-2 (gen)"]["values"] == pytest.approx([82.0, 90.0, 86.0])
    assert cell["cells"]["SAMSum R1"]["epochs"] == [2] and len(cell["records"]) == 5


def test_the_budget_is_read_from_the_records_with_the_converged_count(tmp_path):
    _record(tmp_path, "ft", "sst2_gen", 1, [0.8, 0.9, 0.9, 0.9], converged=True)
    _record(tmp_path, "ft", "rte_gen", 1, [0.5] * 8, converged=True)
    _record(tmp_path, "lora_qv_r8", "sst2_gen", 1, [0.6, 0.7, 0.8], converged=False)
    text = to_markdown(collect(tmp_path))
    assert ("SST-2: 2000 training examples of its train split, up to 8 epochs, batch 16, "
            "sequences cut at 96 tokens; scored on 400 dev items after every epoch.") in text
    assert "RTE: 2490 training examples" in text and "SAMSum: 1000" not in text
    assert ("each run up to its task's epoch cap, stopped once the dev metric did not improve "
            "for 2 epochs (after at least 3); bf16 autocast") in text
    assert "convergence rule): 2 of 3." in text
    assert "Per row: GPT-3 FT 2 of 2; GPT-3 LoRA (37.7M) 0 of 1." in text
    assert "Epochs trained per run: GPT-3 FT 4–8; GPT-3 LoRA (37.7M) 3–3." in text
    assert "Learning rate per row: GPT-3 FT 5e-05; GPT-3 LoRA (37.7M) 0.001." in text


def test_incomplete_superseded_and_foreign_records_are_skipped_with_their_reason(tmp_path):
    old = _record(tmp_path, "ft", "sst2_gen", 1, [0.70])
    _record(tmp_path, "ft", "sst2_gen", 1, [0.75], rerun="-2")
    running = _record(tmp_path, "ft", "rte_gen", 1, [0.5], status="running")
    foreign = _record(tmp_path, "ft", "samsum", 1, [(1, 1, 1)], folder="other_smollm2")
    broken = tmp_path / "runs" / "gpt3_smollm2" / "samsum" / "ft" / "seed2" / "record.json"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json")
    built = collect(tmp_path)
    assert built.rows[0].cells["SST-2 (gen)"].values == pytest.approx([75.0])
    reasons = {s.path: s.reason for s in built.skipped}
    assert reasons[old].startswith("superseded by the rerun runs/gpt3_smollm2/sst2_gen/ft/seed1-2")
    assert reasons[running] == "status 'running', not complete"
    assert "not in conf/experiment/gpt3_smollm2/" in reasons[foreign]
    assert "not valid JSON" in reasons["runs/gpt3_smollm2/samsum/ft/seed2/record.json"]
    assert f"- `{running}`: status 'running', not complete" in to_markdown(built)


def test_the_main_aggregate_builder_leaves_these_records_alone(tmp_path):
    _record(tmp_path, "lora_qv_r8", "sst2_gen", 1, [0.8])
    records, skipped = scan(tmp_path)
    assert [r.table for r in records] == ["gpt3_smollm2"] and not skipped
    assert not build(load_table(4), records, skipped).used_records


def _experiment_file(root, name, run):
    path = root / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"run": run}))


def test_a_linked_cell_reads_its_owners_runs_and_yields_to_its_own(tmp_path):
    conf = tmp_path / "conf"
    _experiment_file(conf, "table4_smollm2/rte_gen/lora_qv_r8", {"table": 4, "row": ROWS["lora_qv_r8"]})
    _experiment_file(conf, "gpt3_smollm2/rte_gen/lora_qv_r8",
                     {"table": "gpt3_smollm2", "row": ROWS["lora_qv_r8"],
                      "same_as": "table4_smollm2/rte_gen/lora_qv_r8"})
    owner = [_record(tmp_path, "lora_qv_r8", "rte_gen", seed, [acc], folder="table4_smollm2", table=4)
             for seed, acc in ((1, 0.60), (2, 0.70))]
    built = collect(tmp_path, conf)
    [row] = built.rows
    assert row.cells["RTE (gen)"].values == pytest.approx([60.0, 70.0])
    assert [r.path for r in row.records] == owner and row.cell_names == ["lora_qv_r8"]
    text = to_markdown(built)
    assert "gpt3_smollm2/rte_gen/lora_qv_r8 reads table4_smollm2/rte_gen/lora_qv_r8" in text
    assert to_json(built)["same_as"] == {"gpt3_smollm2/rte_gen/lora_qv_r8":
                                         "table4_smollm2/rte_gen/lora_qv_r8"}
    own = _record(tmp_path, "lora_qv_r8", "rte_gen", 1, [0.80])
    built = collect(tmp_path, conf)
    assert built.rows[0].cells["RTE (gen)"].values == pytest.approx([80.0, 70.0])
    assert [s.reason for s in built.skipped] == [
        f"a run shared from another table, where this table's own run {own} is read"]
    # the short stand-in's Table 4 still reads its own run, unchanged by the link
    records, skipped = scan(tmp_path)
    t4 = build(load_table(4), records, skipped)
    assert t4.used_records == 2


def test_with_no_records_the_table_says_so_and_names_the_command(tmp_path):
    main(["table=4_smollm2", "--results", str(tmp_path), "--out", str(tmp_path), "--no-wandb"])
    text = (tmp_path / "tables" / "table4_smollm2.md").read_text()
    assert "| (no complete run yet) | | | – | – | – | – | – |" in text
    assert "No complete run yet" in text and f"`{TABLE4.run_command}` makes them" in text
    assert "`python -m experiments.tables table=4_smollm2` (`make table4_smollm2`)" in text
    data = json.loads((tmp_path / "tables" / "table4_smollm2.json").read_text())
    assert data["rows"] == [] and data["table"] == "gpt3_smollm2"
    index = (tmp_path / "README.md").read_text()
    assert "`tables/table4_smollm2.md`, `tables/table4_smollm2.json`: Table 4 on" in index


def test_the_section7_view_orders_table6s_rows_then_table5s_and_has_a_file_for_each(tmp_path):
    view = VIEWS["s7_smollm2"]
    order = paper_row_order(view)
    assert order[:15] == [p.row for p in load_table(6).rows]
    assert order[15:] == ["Wk r=8", "Wv r=8", "Wo r=8", "Wq,Wk r=4"]   # Table 5's others
    assert collect(tmp_path, view=view).unrun_rows == []


def test_the_section7_view_reads_its_cells_and_table4s_lora_runs_for_wq_wv_r8(tmp_path):
    """s7_smollm2/<task>/qv_r8 links to gpt3_smollm2's lora_qv_r8 (the committed files): the
    Table 4 stand-in's LoRA runs fill the Wq,Wv r=8 row; the table prints Tables 6 and 5."""
    view = VIEWS["s7_smollm2"]
    _record(tmp_path, "qv_r1", "sst2_gen", 1, [0.80, 0.84], folder="s7_smollm2",
            table="s7_smollm2", row="Wq,Wv r=1", trainable=115_200)
    _record(tmp_path, "qv_r1", "samsum", 1, [(40.0, 15.0, 30.0)], folder="s7_smollm2",
            table="s7_smollm2", row="Wq,Wv r=1", trainable=115_200)
    owner = _record(tmp_path, "lora_qv_r8", "sst2_gen", 1, [0.86])
    built = collect(tmp_path, view=view)
    assert [r.label for r in built.rows] == ["Wq,Wv r=1", "Wq,Wv r=8"]
    assert [r.path for r in built.rows[1].records] == [owner]
    assert built.rows[0].cells["SAMSum R1"].values == pytest.approx([40.0])
    text = to_markdown(built)
    assert text.startswith("# Tables 5 and 6 stand-in: LoRA's weight types and ranks, SST-2 and SAMSum on")
    assert "| Wq,Wv r=1 | qv_r1 | 115.2K | 84.0 (n=1) | 40.0 (n=1) | 15.0 (n=1) | 30.0 (n=1) |" in text
    assert "| Wq,Wv r=8 | qv_r8 | 921.6K | 86.0 (n=1) | – (n=0) |" in text
    assert "| paper: Wq,Wv r=1 |" in text and "| paper: Wq,Wv (r=4) |" in text
    assert "best epoch: SST-2 by dev accuracy, SAMSum by ROUGE-L" in text
    assert "s7_smollm2/sst2_gen/qv_r8 reads gpt3_smollm2/sst2_gen/lora_qv_r8" in text
    # Table 4's own view is unchanged by the link
    assert [r.label for r in collect(tmp_path).rows] == ["GPT-3 LoRA (37.7M)"]


def test_each_view_writes_its_own_files_and_the_index_lists_them(tmp_path):
    main(["table=5_6_smollm2", "--results", str(tmp_path), "--out", str(tmp_path), "--no-wandb"])
    assert not (tmp_path / "tables" / "table4_smollm2.md").exists()
    text = (tmp_path / "tables" / "table5_6_smollm2.md").read_text()
    assert f"`{VIEWS['s7_smollm2'].run_command}` makes them" in text
    assert json.loads((tmp_path / "tables" / "table5_6_smollm2.json").read_text())["table"] == "s7_smollm2"
    index = (tmp_path / "README.md").read_text()
    assert "`tables/table5_6_smollm2.md`, `tables/table5_6_smollm2.json`: Tables 5 and 6 on" in index


def test_the_table16_view_reads_sst2_and_rte_at_n100_in_table16s_row_order(tmp_path):
    """lowdata_smollm2: Table 16's four rows in its order, SST-2 and RTE columns only, and no word
    of SAMSum in how a cell is read."""
    view = VIEWS["lowdata_smollm2"]
    kw = dict(folder="lowdata_smollm2", table="lowdata_smollm2")
    _record(tmp_path, "lora_n100", "sst2_gen", 1, [0.70, 0.80, 0.78], row="GPT-3 LoRA", **kw)
    _record(tmp_path, "lora_n100", "rte_gen", 1, [0.50, 0.56, 0.55], row="GPT-3 LoRA", **kw)
    _record(tmp_path, "ft_n100", "sst2_gen", 1, [0.75, 0.74, 0.73], row="GPT-3 Fine-Tune",
            trainable=134_515_008, **kw)
    built = collect(tmp_path, view=view)
    assert [r.label for r in built.rows] == ["GPT-3 Fine-Tune", "GPT-3 LoRA"]
    assert built.rows[1].cells["RTE (gen)"].values == pytest.approx([56.0])
    assert built.rows[0].cells["SST-2 (gen)"].epochs == [1]
    text = to_markdown(built)
    assert text.startswith("# Table 16 stand-in: 100 training examples, SST-2 and RTE on")
    assert "| GPT-3 LoRA | lora_n100 | 921.6K | 80.0 (n=1) | 56.0 (n=1) |" in text
    assert "| paper: GPT-3 LoRA | – | 63.8 | 85.6 | 89.2 | 91.7 |" in text
    assert "SST-2 and RTE by dev accuracy" in text and "SAMSum" not in text
    assert collect(tmp_path, view=view).unrun_rows == []


def test_the_table15_view_reads_its_cells_and_the_runs_of_the_cells_it_links_to(tmp_path):
    """scaling_smollm2's LoRA r_q=r_v=8 cell is gpt3_smollm2's (run.same_as): its runs fill the row,
    beside the cells scaling_smollm2 runs itself, in Table 15's row order."""
    view = VIEWS["scaling_smollm2"]
    _record(tmp_path, "lora_pe_qv_r8", "sst2_gen", 1, [0.85, 0.88], folder="scaling_smollm2",
            table="scaling_smollm2", row="LoRA+PE r_q=r_v=8, l_p=8, l_i=4")
    owner = _record(tmp_path, "lora_qv_r8", "sst2_gen", 1, [0.86, 0.87])
    built = collect(tmp_path, view=view)
    assert [r.label for r in built.rows] == ["LoRA r_q=r_v=8", "LoRA+PE r_q=r_v=8, l_p=8, l_i=4"]
    assert [r.path for r in built.rows[0].records] == [owner]
    text = to_markdown(built)
    assert "| LoRA+PE r_q=r_v=8, l_p=8, l_i=4 | lora_pe_qv_r8 | 921.6K | 88.0 (n=1) |" in text
    assert "scaling_smollm2/sst2_gen/lora_qv_r8 reads gpt3_smollm2/sst2_gen/lora_qv_r8" in text
