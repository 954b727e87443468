"""Data readers at their boundary: bad bytes, cut-off rows, missing fields and empty files give
an error that names the file and the line (issue #24), never a bare codec or KeyError."""
from __future__ import annotations

import pytest

from experiments.tasks import DataFormatError, load_examples
from experiments.tasks.glue import load_glue


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """An empty data root in place of data/ and the shared data, so only the files a test
    writes are found (and the hub is never tried)."""
    monkeypatch.setenv("LORA_REPRO_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LORA_REPRO_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "data"


def write(root, rel, data: bytes | str):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def glue(root, folder="SST-2"):
    return load_glue({"SST-2": "sst2", "RTE": "rte", "STS-B": "stsb"}[folder], "dev",
                     roots=[root], hub=False)


@pytest.mark.parametrize("folder, body, message", [
    ("SST-2", b"sentence\tlabel\ngood film\t1\nbad \xff film\t0\n", r"dev\.tsv:3: not valid UTF-8 \(byte 0xff"),
    ("SST-2", b"", r"dev\.tsv: the file is empty"),
    ("SST-2", b"sentence\tlabel\n", r"dev\.tsv: a header and no examples"),
    ("SST-2", b"sentence\tlabel\ngood\t1\ncut off here\n", r"dev\.tsv:3: 1 tab-separated field\(s\)"),
    ("SST-2", b"text\tlabel\ngood\t1\n", r"dev\.tsv:1: columns \['sentence'\] missing"),
    ("RTE", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\ta\tb\n",
     r"dev\.tsv:3: 3 tab-separated field\(s\), the task's columns need 4"),
    ("RTE", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", r"dev\.tsv:2: label 'maybe'"),
    ("STS-B", b"sentence1\tsentence2\tscore\na\tb\tfour\n", r"dev\.tsv:2: score 'four' is not a number"),
])
def test_glue_tsv_faults_name_file_and_line(tmp_path, folder, body, message):
    write(tmp_path / "glue", f"{folder}/dev.tsv", body)
    with pytest.raises(DataFormatError, match=message):
        glue(tmp_path, folder)


def test_glue_tsv_still_reads_a_good_file(tmp_path):
    write(tmp_path / "glue", "SST-2/dev.tsv", "\ufeffsentence\tlabel\ngood film\t1\nbad film\t0\n")
    rows = glue(tmp_path)
    assert [(r.text_a, r.label) for r in rows] == [("good film", 1), ("bad film", 0)]


@pytest.mark.parametrize("rel, body, message", [
    ("e2e/valid.txt", b"", r"valid\.txt: the file is empty"),
    ("e2e/valid.txt", b"name : A||A is a pub.\nname : \xc3(||x\n", r"valid\.txt:2: not valid UTF-8"),
    ("e2e/valid.txt", b"name : A||ok\nno separator here\n", r"valid\.txt:2: expected 'context\|\|completion'"),
    ("e2e/devset.csv", b"mr,ref\n\"name[A]\",A is nice.\n\"name[B]\"\n", r"devset\.csv:3: a row without its 'ref'"),
    ("e2e/devset.csv", b"mr,ref\n\"colour[red]\",x\n", r"devset\.csv:2: unknown E2E slot"),
    ("e2e/devset.csv", b"meaning,text\nx,y\n", r"devset\.csv:1: expected columns 'mr' and 'ref'"),
])
def test_e2e_faults_name_file_and_line(data_root, rel, body, message):
    write(data_root, rel, body)
    with pytest.raises(DataFormatError, match=message):
        load_examples("e2e", "valid")


def test_json_and_xml_readers_name_file_and_line(data_root):
    write(data_root, "samsum/val.json", '[{"id": "1", "dialogue": "A: hi",\n "summary": "gre')
    with pytest.raises(DataFormatError, match=r"val\.json:2: not valid JSON"):
        load_examples("samsum", "validation")
    write(data_root, "samsum/val.json", '[{"id": "1", "dialogue": "A: hi"}]')
    with pytest.raises(DataFormatError, match=r"val\.json: record 0 lacks .*summary"):
        load_examples("samsum", "validation")
    write(data_root, "samsum/val.json", "[]")
    with pytest.raises(DataFormatError, match=r"val\.json: expected a non-empty JSON list"):
        load_examples("samsum", "validation")

    write(data_root, "dart/dart-v1.1.1-full-dev.json", '[{"tripleset": [["a", "b", "c"]]}]')
    with pytest.raises(DataFormatError, match=r"full-dev\.json: item 1 is not in the DART layout"):
        load_examples("dart", "dev")

    write(data_root, "webnlg/xml/dev/a.xml",
          "<benchmark><entries><entry category='Food'>\n<modifiedtripleset>\n<mtriple>a | b")
    with pytest.raises(DataFormatError, match=r"a\.xml:3: not well-formed XML"):
        load_examples("webnlg", "dev")


def test_wikisql_faults_name_file_and_line(data_root):
    tables = '{"id": "t1", "header": ["Name", "Age"]}\n'
    question = '{"table_id": "t1", "question": "Who?", "sql": {"sel": 0, "agg": 0, "conds": []}}'
    write(data_root, "wikisql/dev.tables.jsonl", tables)
    write(data_root, "wikisql/dev.jsonl", question + "\n" + question[:30] + "\n")
    with pytest.raises(DataFormatError, match=r"dev\.jsonl:2: not a JSON line"):
        load_examples("wikisql", "dev")
    write(data_root, "wikisql/dev.jsonl", question + '\n{"table_id": "t1", "question": "x"}\n')
    with pytest.raises(DataFormatError, match=r"dev\.jsonl:2: no 'sql' field"):
        load_examples("wikisql", "dev")
    write(data_root, "wikisql/dev.tables.jsonl", '{"id": "t1"}\n')
    with pytest.raises(DataFormatError, match=r"dev\.tables\.jsonl:1: a table needs"):
        load_examples("wikisql", "dev")
    write(data_root, "wikisql/dev.tables.jsonl", "\n")
    with pytest.raises(DataFormatError, match=r"dev\.tables\.jsonl: the file is empty"):
        load_examples("wikisql", "dev")
