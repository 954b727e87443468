"""Task loaders on the real shared data (skipped with a reason when it is absent)."""
from __future__ import annotations

import pytest

from experiments.tasks import DataMissingError, find_data_file, group_references, load_examples
from experiments.tasks.nlg import e2e_context, spacy_tokenize

from .conftest import shared_data_or_skip


def test_e2e_counts_and_format():
    shared_data_or_skip("data", "e2e")
    test = load_examples("e2e", "test")
    keys, refs, _ = group_references(test)
    assert (len(test), len(keys)) == (4693, 630)
    assert test[0].context == "name : Blue Spice | Type : coffee shop | area : city centre"
    assert test[0].completion == "A coffee shop in the city centre area called Blue Spice . "
    assert len(load_examples("e2e", "valid")) == 4672


def test_e2e_csv_conversion_matches_lora_files():
    """Converting the CSV with spaCy's rules reproduces LoRA's own test.txt lines."""
    import csv

    path = shared_data_or_skip("data", "e2e", "csv", "testset_w_refs.csv")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    lora = load_examples("e2e", "test")
    same = sum(e2e_context(r["mr"]) == ex.context and spacy_tokenize(r["ref"]) + " " == ex.completion
               for r, ex in zip(rows, lora))
    assert same >= 4677  # the other 16 differ in digit-letter hyphens ('1-star')
    assert spacy_tokenize("It's £20-25, isn't it?") == "It 's £ 20 - 25 , is n't it ?"


def test_e2e_train_built_from_csv():
    shared_data_or_skip("data", "e2e", "csv", "trainset.csv")
    train = load_examples("e2e", "train", limit=3)
    assert len(train) == 3
    assert train[0].context.startswith("name : The Vaults | Type : pub | price : more than £ 30")
    assert train[0].completion.endswith(" . ")


def test_webnlg_counts_and_seen_flags():
    shared_data_or_skip("data", "webnlg")
    dev = load_examples("webnlg", "dev")
    keys, _, last = group_references(dev)
    assert (len(dev), len(keys)) == (2258, 870)  # good lexicalisations; unique contexts
    assert dev[0].context == "Aarhus : leaderName : Jacob_Bundsgaard"
    test = load_examples("webnlg", "test")
    assert len(test) == 4928
    seen = {ex.meta["category"] for ex in test if ex.meta["seen"]}
    unseen = {ex.meta["category"] for ex in test if not ex.meta["seen"]}
    assert len(seen) == 10 and len(unseen) == 5


def test_webnlg_xml_and_json_agree():
    from experiments.tasks.nlg import _webnlg_from_json, _webnlg_from_xml

    root = shared_data_or_skip("data", "webnlg")
    from_json = _webnlg_from_json(root / "lora_format" / "dev.json")
    from_xml = _webnlg_from_xml(root / "xml" / "dev")
    assert sorted((e.context, e.completion) for e in from_json) == \
        sorted((e.context, e.completion) for e in from_xml)


def test_dart_counts_and_lowercased_relations():
    shared_data_or_skip("data", "dart")
    dev = load_examples("dart", "dev")
    keys, _, _ = group_references(dev)
    assert (len(dev), len(keys)) == (6980, 2721)
    assert dev[0].context.startswith("Mars Hill College : joined : 1973")


def test_missing_data_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path / "s"))
    with pytest.raises(DataMissingError) as err:
        load_examples("dart", "train")
    text = str(err.value)
    assert str(tmp_path / "d" / "dart") in text and "not in the offline data" in text
    with pytest.raises(DataMissingError):
        find_data_file("e2e", ["trainset.csv"])


def test_unknown_task_and_split():
    with pytest.raises(ValueError, match="known tasks"):
        load_examples("squad", "train")
    with pytest.raises(ValueError, match="choose one of"):
        load_examples("e2e", "dev")


@pytest.mark.parametrize("task,split,count,first_label", [
    ("sst2", "dev", 872, 1), ("mrpc", "train", 3668, 1), ("mrpc", "dev", 408, 1),
    ("cola", "dev", 1043, 1), ("rte", "dev", 277, 1), ("stsb", "dev", 1500, 5.0),
    ("qnli", "dev", 5463, 0)])
def test_glue_counts_and_hf_label_ids(task, split, count, first_label):
    from experiments.tasks.glue import load_glue

    shared_data_or_skip("data", "glue")
    examples = load_glue(task, split)
    assert len(examples) == count and examples[0].label == first_label


def test_glue_missing_train_split_says_so(tmp_path, monkeypatch):
    from experiments.tasks.glue import load_glue

    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path))
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path))
    with pytest.raises(DataMissingError, match="not in the offline data"):
        load_glue("mnli", "train")
