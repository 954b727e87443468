"""Task data from the hub when the files are absent: which repository, config, split and
revision is asked for, how its rows become examples, and the errors when the hub cannot help.
`datasets.load_dataset` is replaced by a recorder: this machine has no hub."""
from __future__ import annotations

import pytest

from experiments.tasks import DataMissingError
from experiments.tasks.glue import load_glue
from experiments.tasks.glue_gen import load_glue_generation
from experiments.tasks.samsum import load_samsum


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The hub allowed, no local data anywhere, and a fake `load_dataset` serving `rows`."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path / "shared"))
    state = {"calls": [], "rows": [], "error": None}

    def load_dataset(repo, config=None, split=None, revision=None):
        state["calls"].append((repo, config, split, revision))
        if state["error"]:
            raise state["error"]
        return state["rows"]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return state


def test_glue_falls_back_to_the_hubs_copy_with_its_split_and_columns(hub, tmp_path):
    hub["rows"] = [{"sentence1": "A man sleeps.", "sentence2": "A man is awake.", "label": 1, "idx": 0},
                   {"sentence1": "It rains.", "sentence2": "It is wet.", "label": 0, "idx": 1}]
    examples = load_glue("rte", "dev", roots=[tmp_path])
    assert hub["calls"] == [("nyu-mll/glue", "rte", "validation", None)]
    assert [(e.text_a, e.text_b, e.label) for e in examples] == [
        ("A man sleeps.", "A man is awake.", 1), ("It rains.", "It is wet.", 0)]
    assert examples[0].source == "hub:nyu-mll/glue/rte/validation"
    hub["rows"] = [{"premise": "p", "hypothesis": "h", "label": 2, "idx": 0}]
    [mnli] = load_glue("mnli", "dev_matched", roots=[tmp_path])
    assert hub["calls"][-1] == ("nyu-mll/glue", "mnli", "validation_matched", None)
    assert (mnli.text_a, mnli.text_b, mnli.label) == ("p", "h", 2)
    # generation tasks read through load_glue and keep where the rows came from
    hub["rows"] = [{"sentence": "great film", "label": 1, "idx": 0}]
    [gen] = load_glue_generation("sst2", "dev")
    assert gen.completion == "positive" and gen.meta["source"] == "hub:nyu-mll/glue/sst2/validation"


def test_a_hub_split_without_labels_is_refused(hub, tmp_path):
    hub["rows"] = [{"sentence1": "a", "sentence2": "b", "label": -1, "idx": 0}]
    with pytest.raises(ValueError, match="carry no labels"):
        load_glue("rte", "dev", roots=[tmp_path])


def test_offline_never_asks_the_hub_and_names_the_missing_file(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataMissingError, match=r"RTE/dev\.tsv"):
        load_glue("rte", "dev", roots=[tmp_path])
    assert hub["calls"] == []


def test_a_failing_hub_is_reported_beside_the_missing_files(hub, tmp_path):
    hub["error"] = ConnectionError("huggingface.co unreachable")
    with pytest.raises(DataMissingError) as err:
        load_glue("rte", "dev", roots=[tmp_path])
    assert "RTE/dev.tsv" in str(err.value) and "hub:nyu-mll/glue/rte/validation failed" in str(err.value)
    assert "huggingface.co unreachable" in str(err.value)


def test_fixture_runs_never_ask_the_hub(hub):
    examples = load_glue_generation("mnli", "train", fixture=True)
    assert examples and hub["calls"] == [] and examples[0].meta["source"] == "fixture"


def test_samsum_reads_the_hubs_parquet_conversion(hub):
    hub["rows"] = [{"id": "13818513", "dialogue": "Amanda: I baked cookies.\r\nJerry: Sure!",
                    "summary": "Amanda baked cookies. "}]
    [ex] = load_samsum("train")
    assert hub["calls"] == [("Samsung/samsum", "samsum", "train", "refs/convert/parquet")]
    assert ex.context == "Amanda: I baked cookies.\nJerry: Sure!\n\n"
    assert ex.completion == "Amanda baked cookies." and ex.group == "13818513"
    assert ex.meta["source"] == "hub:Samsung/samsum/samsum/train"


def test_wikisql_from_the_hub_matches_the_official_layout(hub):
    """The fixture's questions in the hub's row shape give the same examples as its files."""
    import json

    from experiments.tasks.base import FIXTURE_ROOT
    from experiments.tasks.wikisql import load_wikisql

    folder = FIXTURE_ROOT / "wikisql"
    tables = {t["id"]: t for t in map(json.loads, (folder / "dev.tables.jsonl").read_text().splitlines())}
    questions = [json.loads(line) for line in (folder / "dev.jsonl").read_text().splitlines() if line]
    hub["rows"] = [{"phase": q["phase"], "question": q["question"], "table": tables[q["table_id"]],
                    "sql": {"human_readable": "", "sel": q["sql"]["sel"], "agg": q["sql"]["agg"],
                            "conds": {"column_index": [c[0] for c in q["sql"]["conds"]],
                                      "operator_index": [c[1] for c in q["sql"]["conds"]],
                                      "condition": [str(c[2]) for c in q["sql"]["conds"]]}}}
                   for q in questions]
    from_hub = load_wikisql("dev")
    assert hub["calls"] == [("Salesforce/wikisql", "default", "validation", "refs/convert/parquet")]
    from_files = load_wikisql("dev", fixture=True)
    assert len(from_hub) == len(from_files) == len(questions)
    for h, f in zip(from_hub, from_files):
        assert (h.context, h.meta["header"], h.meta["table_id"]) == (f.context, f.meta["header"], f.meta["table_id"])
        # the hub keeps condition values as strings; the rendered query is the same
        assert h.completion == f.completion
    assert from_hub[0].meta["source"] == "hub:Salesforce/wikisql/default/validation"
