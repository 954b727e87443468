"""The table builder on stand-ins: the MiniLM tables, cells two tables share (run.same_as), the
stand-in profiles, table notes that cite cells through placeholders and carry no typed result."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from experiments.paper_numbers import (PaperDataError, load_all, load_figure, load_table,
                                       read_table_file)
from experiments.tables import build, scan, to_csv, to_markdown
from experiments.tables.cli import main
from experiments.tables.collect import RunRecord


from .tables_fixtures import row_of


# ---------------------------------------------------------------------------- MiniLM stand-in
def _minilm_record(root, method, task, seed, history, *, rerun="", status="complete",
                   trainable=2048, head=1122, metric="dev/accuracy", family="table2_minilm",
                   profile="paper", epochs=3, patience=None, min_evaluations=None):
    rows = {"ft": "MiniLM FT", "bitfit": "MiniLM BitFit", "lora": "MiniLM LoRA"}
    path = root / "runs" / family / f"{method}_{task}" / f"seed{seed}{rerun}" / "record.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({
        "experiment": f"{family}/{method}_{task}", "table": "2_minilm", "row": rows[method],
        "model": "minilm_l6", "model_display": "MiniLM-L6 (all-MiniLM-L6-v2)", "profile": profile,
        "seed": seed, "status": status, "task": task,
        "metrics": {metric: history[-1]},
        "train": {"history": [{"epoch": i + 1, metric: v} for i, v in enumerate(history)]},
        "params": {"trainable_without_head": trainable, "head": head},
        "config": {"data": {"max_train": 600, "sample_seed": 0, "max_valid": None},
                   "train": {"epochs": epochs, "lr": 2e-3, "batch_size": 32, "patience": patience,
                             **({"min_evaluations": min_evaluations} if min_evaluations else {})},
                   "task": {"seq_len": 128}}}))


def test_minilm_table_medians_means_and_missing_cells(tmp_path):
    from experiments.tables.minilm import collect

    metric = {"sst2": "dev/accuracy", "mrpc": "dev/accuracy", "cola": "dev/matthews_correlation",
              "rte": "dev/accuracy", "stsb": "dev/pearson"}
    # LoRA SST-2: three seeds, best epochs 0.80, 0.90, 0.86 (the last epochs are lower)
    for seed, hist in ((1, [0.70, 0.80, 0.75]), (2, [0.90, 0.85, 0.84]), (3, [0.80, 0.86, 0.82])):
        _minilm_record(tmp_path, "lora", "sst2", seed, hist)
    for task in ("mrpc", "cola", "rte", "stsb"):
        _minilm_record(tmp_path, "lora", task, 1, [0.60], metric=metric[task])
    # FT: one seed per task, 0.70 everywhere; its SST-2 seed 1 rerun (seed1-2) replaces seed 1
    for task in metric:
        _minilm_record(tmp_path, "ft", task, 1, [0.50 if task == "sst2" else 0.70],
                       metric=metric[task], trainable=22_000_000, head=148_225)
    _minilm_record(tmp_path, "ft", "sst2", 1, [0.70], rerun="-2", trainable=22_000_000)
    _minilm_record(tmp_path, "bitfit", "sst2", 1, [0.65])                 # only one task
    _minilm_record(tmp_path, "bitfit", "rte", 1, [0.5], status="running")  # not complete

    rows, skipped = collect(tmp_path, "table2_minilm")
    by = {r.label: r for r in rows}
    assert [r.label for r in rows] == ["FT", "BitFit", "LoRA"]
    sst2 = by["LoRA"].cells["SST-2"]
    assert sst2.values == pytest.approx([80.0, 90.0, 86.0]) and sst2.epochs == [2, 1, 2]
    assert sst2.median == pytest.approx(86.0) and sst2.mean == pytest.approx(256 / 3)
    assert sst2.std == pytest.approx(5.0332, abs=1e-4)
    assert by["LoRA"].avg == pytest.approx((86 + 4 * 60) / 5)
    assert by["FT"].cells["SST-2"].values == [70.0] and by["FT"].avg == pytest.approx(70.0)
    assert by["BitFit"].cells["MRPC"] is None and by["BitFit"].avg is None
    reasons = {s.path.split("/")[-2] + "/" + s.path.split("/")[-3]: s.reason for s in skipped}
    assert "superseded" in reasons["seed1/ft_sst2"] and "running" in reasons["seed1/bitfit_rte"]


    main(["table=2_minilm", "--results", str(tmp_path), "--out", str(tmp_path), "--no-wandb"])
    text = (tmp_path / "tables" / "table2_minilm_short.md").read_text()
    assert "| LoRA | 2.0K | 1.1K | 86.0 (n=3) | 60.0 (n=1) |" in text
    assert "| BitFit | 2.0K | 1.1K | 65.0 (n=1) | – (n=0) |" in text
    assert "LoRA − FT on the average: −4.8 points (65.2 vs 70.0)." in text
    assert "0.01% of FT's 22,000,000" in text
    assert "LoRA − FT per task (medians): SST-2 +16.0, MRPC −10.0," in text
    assert "85.3±5.0 (n=3)" in text                      # mean ± std in the second table
    assert "paper: RoB-base LoRA" in text and "not RoBERTa" in text
    assert "sst2 600" in text and "data.sample_seed 0" in text and "3 epochs" in text
    data = json.loads((tmp_path / "tables" / "table2_minilm_short.json").read_text())
    lora = next(r for r in data["rows"] if r["label"] == "LoRA")
    assert lora["cells"]["SST-2"]["median"] == pytest.approx(86.0)
    assert lora["cells"]["SST-2"]["seeds"] == [1, 2, 3]
    # the converged budget (glue_minilm) has no runs here: its table says so, nothing mixed in
    main_table = (tmp_path / "tables" / "table2_minilm.md").read_text()
    assert "(no complete run yet)" in main_table and "table2_minilm_short.md" in main_table


def test_minilm_budgets_build_apart(tmp_path):
    from experiments.tables.minilm import collect, to_markdown

    _minilm_record(tmp_path, "lora", "sst2", 1, [0.70, 0.80, 0.75], family="glue_minilm")
    _minilm_record(tmp_path, "lora", "sst2", 1, [0.60], family="table2_minilm")
    _minilm_record(tmp_path, "lora", "mrpc", 1, [0.60], family="other_minilm")
    rows, skipped = collect(tmp_path, "glue_minilm")
    assert rows[0].cells["SST-2"].values == [80.0]  # the glue_minilm run only
    assert any("'other_minilm' is none of" in s.reason for s in skipped)
    short, _ = collect(tmp_path, "table2_minilm")
    assert short[0].cells["SST-2"].values == [60.0]
    assert "Runs: `conf/experiment/glue_minilm/`" in to_markdown(rows, skipped)
    # the per-seed file named is the table's own, whatever paper rows are printed above it
    assert "Per-seed values and epochs: `table2_minilm.json`." in to_markdown(rows, skipped)


def test_minilm_budget_names_each_methods_epoch_cap(tmp_path):
    """glue_minilm gives the parameter-efficient methods a longer epoch cap than FT, as the paper
    does: the budget says which cap is whose rather than one line per cap."""
    from experiments.tables.minilm import collect, to_markdown

    _minilm_record(tmp_path, "ft", "sst2", 1, [0.70], family="glue_minilm", epochs=10)
    _minilm_record(tmp_path, "lora", "sst2", 1, [0.80], family="glue_minilm", epochs=30)
    text = to_markdown(*collect(tmp_path, "glue_minilm"))
    assert "the epoch cap of its method (below)" in text
    assert "Epoch cap per method: FT 10; LoRA 30." in text
    one = tmp_path / "one"
    _minilm_record(one, "lora", "sst2", 1, [0.80], family="glue_minilm", epochs=30)
    text = to_markdown(*collect(one, "glue_minilm"))
    assert "3 epochs" not in text and "30 epochs" in text and "Epoch cap per method" not in text


def test_minilm_budget_names_each_tasks_patience(tmp_path):
    """RTE's small train split waits more epochs for a new best (converge.plateau_patience)."""
    from experiments.tables.minilm import collect, to_markdown

    _minilm_record(tmp_path, "lora", "sst2", 1, [0.80], family="glue_minilm", patience=2)
    _minilm_record(tmp_path, "lora", "rte", 1, [0.60], family="glue_minilm", patience=3)
    text = to_markdown(*collect(tmp_path, "glue_minilm"))
    assert "did not improve for its task's patience (below)" in text
    assert "Patience (epochs without a new best before a run stops) per task: rte 3; sst2 2." in text
    one = tmp_path / "one"
    _minilm_record(one, "lora", "rte", 1, [0.60], family="glue_minilm", patience=3)
    assert "did not improve for 3 epochs (after at least 4)" in to_markdown(*collect(one, "glue_minilm"))


def test_minilm_budget_names_each_tasks_fewest_epochs(tmp_path):
    """glue_minilm's RTE runs may not stop before 11 epochs (converge.plateau_min_evaluations);
    a record without the key ran under the engine's 3 (and one more than its patience)."""
    from experiments.tables.minilm import collect, to_markdown

    _minilm_record(tmp_path, "lora", "sst2", 1, [0.80], family="glue_minilm", patience=2)
    _minilm_record(tmp_path, "lora", "rte", 1, [0.60], family="glue_minilm", patience=3,
                   min_evaluations=11)
    text = to_markdown(*collect(tmp_path, "glue_minilm"))
    assert "(after at least its task's fewest epochs (below))" in text
    assert "Fewest epochs before the plateau rule may stop a run, per task: rte 11; sst2 3." in text


def test_minilm_standin_profile_records_join_the_paper_profile_ones(tmp_path):
    """A record of the stand-in profile (conf/profile/standin_minilm.yaml) and a committed one
    of the same cell, written before it under `paper`, are seeds of one row."""
    from experiments.tables.minilm import collect

    _minilm_record(tmp_path, "lora", "sst2", 1, [0.80])
    _minilm_record(tmp_path, "lora", "sst2", 2, [0.90], profile="standin_minilm")
    rows, skipped = collect(tmp_path, "table2_minilm")
    assert [(r.label, r.profile) for r in rows] == [("LoRA", "paper")] and not skipped
    assert rows[0].cells["SST-2"].values == pytest.approx([80.0, 90.0])


def test_minilm_records_stay_out_of_table2(tmp_path):
    _minilm_record(tmp_path, "lora", "rte", 1, [0.6])
    records, skipped = scan(tmp_path)
    assert [r.table for r in records] == ["2_minilm"] and not skipped
    assert not build(load_table(2), records, skipped).used_records


# ------------------------------------------------------------------------------- shared runs
def _gpt3_record(experiment, table, row, seed, accuracy, rerun=1):
    data = {"experiment": experiment, "row": row, "model": "smollm2_135m", "profile": "paper",
            "seed": seed, "status": "complete", "task": "sst2_gen", "metrics": {},
            "train": {"history": [{"epoch": 1, "dev/accuracy": accuracy}]}}
    return RunRecord(f"runs/{experiment}/seed{seed}/record.json", data, table, rerun)


def test_a_shared_run_fills_the_other_tables_cell_and_yields_to_an_own_run():
    from experiments.tables.aggregate import shared_records

    t5 = load_table(5)
    source = _gpt3_record("table6_smollm2/sst2_gen/qv_r4", 6, "Wq,Wv r=4", 1, 0.768)
    [shared] = shared_records(t5, [source])
    assert shared.table == 5 and shared.row == "Wq,Wv (r=4)"  # the Table 5 file's run.row
    assert shared.data["shared_from"] == source.path and source.row == "Wq,Wv r=4"
    cell = row_of(build(t5, [source], []), "Wq,Wv (r=4)", "stand-in").cells["SST-2-gen"]
    assert cell.values == pytest.approx([76.8])
    own = _gpt3_record("table5_smollm2/sst2_gen/qv_r4", 5, "Wq,Wv (r=4)", 1, 0.70)
    both = build(t5, [source, own], [])
    assert row_of(both, "Wq,Wv (r=4)", "stand-in").cells["SST-2-gen"].values == pytest.approx([70.0])
    assert [s.reason for s in both.skipped if s.path == source.path] == [
        f"a run shared from another table, where this table's own run {own.path} is read"]


def test_standin_profile_records_build_the_table_the_paper_profile_ones_built():
    """Records written under a stand-in profile (conf/profile/standin_*.yaml) read as the
    committed records of the same cells, which say `paper`: one row, the same table."""
    t5 = load_table(5)
    old = [_gpt3_record("table5_smollm2/sst2_gen/qv_r4", 5, "Wq,Wv (r=4)", seed, acc)
           for seed, acc in ((1, 0.70), (2, 0.74))]
    new = RunRecord(old[1].path, {**old[1].data, "profile": "standin_smollm2"}, 5, 1)
    mixed = build(t5, [old[0], new], [])
    row = row_of(mixed, "Wq,Wv (r=4)", "stand-in")
    assert row.seeds == [1, 2] and row.cells["SST-2-gen"].values == pytest.approx([70.0, 74.0])
    assert to_markdown(mixed) == to_markdown(build(t5, old, []))
    assert to_csv(mixed) == to_csv(build(t5, old, []))


def test_the_params_column_counts_a_prefix_layer_folded():
    """A PreLayer record's training-time count holds the reparameterisation MLP; the table shows
    the deployed (folded) count the paper prints, and the training-time one where none is kept."""
    t15 = load_table(15)
    run = _gpt3_record("table15_smollm2/sst2_gen/pre_layer_lp2_li2", 15, "PrefixLayer l_p=2, l_i=2",
                       1, 0.49)
    run.data["params"] = {"trainable": 9_162_368, "trainable_without_head": 9_162_368, "head": 0}
    row = lambda: row_of(build(t15, [run], []), "PrefixLayer l_p=2, l_i=2", "stand-in")
    assert row().params == [9_162_368]
    run.data["params"]["deployed"] = 69_120
    assert row().params == [69_120]


def test_runs_on_different_n_are_different_cells_not_reruns():
    """Table 16: the same row and seed at n = 100 and 1k fill two columns; neither supersedes."""
    t16 = load_table(16)
    runs = []
    for n, acc, rerun in ((100, 0.772, 1), (1000, 0.803, 1), (1000, 0.81, 2)):
        r = _gpt3_record(f"table16_smollm2/sst2_gen/lora_n{n}", 16, "GPT-3 LoRA", 1, acc, rerun)
        r.data["data"] = {"train_examples": n}
        runs.append(r)
    built16 = build(t16, runs, [])
    row = row_of(built16, "GPT-3 LoRA", "stand-in")
    assert row.cells["SST2-100"].values == pytest.approx([77.2])
    assert row.cells["SST2-1k"].values == pytest.approx([81.0])   # the rerun, not both
    assert [s.reason for s in built16.skipped] == [f"superseded by the rerun {runs[2].path}"]


def test_same_as_names_an_experiment_of_the_same_configuration():
    """Every `run.same_as` link composes to its owner's configuration but for the run's name,
    table and row (and the link itself)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.paths import CONF_DIR
    from experiments.same_as import same_as_links

    links = same_as_links()
    assert len(links) >= 40
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        def config(experiment):
            cfg = OmegaConf.to_container(compose(config_name="config",
                                                 overrides=[f"experiment={experiment}"]))
            for key in ("name", "table", "row", "same_as"):
                cfg["run"].pop(key, None)
            return cfg
        for link in links:
            assert config(link.owner) == config(link.experiment), link


def _experiment_file(root, name, run):
    path = root / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"run": run}))


def test_a_same_as_that_names_no_file_or_links_on_is_refused(tmp_path):
    from experiments.same_as import SameAsError, same_as_links

    _experiment_file(tmp_path, "t6/a", {"table": 6, "row": "A"})
    _experiment_file(tmp_path, "t5/a", {"table": 5, "row": "A", "same_as": "t6/a"})
    [link] = same_as_links(tmp_path)
    assert (link.experiment, link.owner, link.table, link.row) == ("t5/a", "t6/a", 5, "A")
    _experiment_file(tmp_path / "chain", "t6/a", {"table": 6, "row": "A"})
    _experiment_file(tmp_path / "chain", "t5/a", {"table": 5, "row": "A", "same_as": "t6/a"})
    _experiment_file(tmp_path / "chain", "t8/a", {"table": 8, "row": "A", "same_as": "t5/a"})
    with pytest.raises(SameAsError, match=r"t8/a.yaml: run.same_as names 't5/a', which links on"):
        same_as_links(tmp_path / "chain")
    _experiment_file(tmp_path / "missing", "t5/a", {"table": 5, "row": "A", "same_as": "t6/b"})
    with pytest.raises(SameAsError, match=r"run.same_as names 't6/b', but .*t6/b.yaml does not"):
        same_as_links(tmp_path / "missing")


def test_a_paper_file_with_shared_runs_says_where_they_went(tmp_path):
    path = tmp_path / "table5.yaml"
    data = yaml.safe_load(load_table(5).path.read_text())
    data["shared_runs"] = [{"from": "a", "to": "b"}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PaperDataError, match="run.same_as"):
        read_table_file(path)


def test_figure2_draws_our_rows_as_one_line_per_method():
    """Stand-in rows of one method become one series of points sorted by parameter count."""
    from experiments.tables.figures import score_vs_params

    def run(experiment, row, seed, acc, trainable):
        rec = _gpt3_record(experiment, 15, row, seed, acc)
        rec.data["params"] = {"trainable": trainable}
        return rec

    records = [run("table15_smollm2/sst2_gen/lora_qv_r8", "LoRA r_q=r_v=8", 1, 0.70, 921_600),
               run("table15_smollm2/sst2_gen/lora_qv_r1", "LoRA r_q=r_v=1", 1, 0.75, 115_200),
               run("table15_smollm2/sst2_gen/ft", "Fine-Tune", 1, 0.87, 134_515_008)]
    panels = score_vs_params(load_figure(2), build(load_table(15), records, []))
    sst2 = next(p for p in panels if "SST-2" in p.title)
    ours = {s.label: s for s in sst2.series if s.ours}
    lora = ours["ours: LoRA (smollm2_135m, stand-in)"]
    assert lora.xs == [115_200, 921_600] and lora.ys == pytest.approx([75.0, 70.0])
    assert ours["ours: Fine-Tune (smollm2_135m, stand-in)"].ys == pytest.approx([87.0])
    assert not any(s.ours for p in panels if "SST-2" not in p.title for s in p.series)


def test_our_notes_cite_cells_through_placeholders(tmp_path):
    """A note's {ours:ROW|COLUMN} is our cell as the table shows it; a bad name is an error."""
    from dataclasses import replace

    from experiments.paper_numbers import load_table
    from experiments.tables.aggregate import BuiltRow, BuiltTable, CellStats
    from experiments.tables.render import render_note

    table = load_table(16)
    row = BuiltRow("GPT-3 LoRA", None, True, seeds=[1, 2],
                   cells={"RTE-2490": CellStats([55.0, 58.0], [1, 2], [1, 1], "mean")})
    table_built = BuiltTable(replace(table, our_notes=()), [row], [])
    assert render_note("LoRA {ours:GPT-3 LoRA|RTE-2490 (stand-in)}, FT {ours:GPT-3 LoRA|RTE-100}",
                       table_built) == "LoRA 56.5±2.1, FT —"
    with pytest.raises(ValueError, match="table16.yaml our_notes.*no row 'GPT-3 FT'"):
        render_note("{ours:GPT-3 FT|RTE-100}", table_built)
    with pytest.raises(ValueError, match="no column 'RTE-5'"):
        render_note("{ours:GPT-3 LoRA|RTE-5}", table_built)


def test_committed_notes_carry_no_typed_result():
    """Numbers of ours in notes come from placeholders: no note states a decimal of ours."""


    for table in load_all():
        for note in table.our_notes:
            text = re.sub(r"\{ours:[^{}]+\}", "", note)
            # the paper's numbers and dataset facts may be typed; say which in the note
            decimals = re.findall(r"(?<![\w.])\d+\.\d(?![\w.])", text)
            allowed = {"52.7", "47.3", "63.1", "55.9", "88.6", "85.8", "9.2"}  # class shares, paper
            assert set(decimals) <= allowed, (table.number, decimals, note[:80])
