"""The command line: file layouts, JSON as the last stdout line, and a clear exit-2 message for each bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pathlib import Path

from experiments.metrics.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(capsys, *argv):
    """(exit code, stdout, stderr) of the CLI run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    def write(name, content, mode="w"):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return str(path)
    return write


def test_output_count_differs_from_reference_groups(capsys, files):
    refs = files("refs.txt", "a b\na c\n\nd e\n\nf g\n")
    hyp = files("hyp.txt", "a b\nd e\n")
    code, out, err = _run(capsys, "e2e", "--refs", refs, "--hyp", hyp)
    assert code == 2 and out == ""
    assert "2 outputs in " + hyp in err and "3 reference groups in " + refs in err
    assert "Traceback" not in err


def test_empty_file(capsys, files):
    code, _, err = _run(capsys, "e2e", "--refs", files("refs.txt", "a\n"), "--hyp", files("hyp.txt", ""))
    assert code == 2 and "hyp.txt: file is empty" in err


def test_undecodable_bytes_name_file_and_offset(capsys, files):
    hyp = files("hyp.txt", b"fine line\nbad \xff byte\n")
    code, _, err = _run(capsys, "e2e", "--refs", files("refs.txt", "a\n\nb\n"), "--hyp", hyp)
    assert code == 2 and f"{hyp}: not valid UTF-8" in err and "byte offset 14" in err


def test_missing_java_says_how_to_install(capsys, files, monkeypatch, tmp_path):
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))  # no `java` anywhere on PATH
    refs, hyp = files("refs.txt", "a b\n\nc d\n"), files("hyp.txt", "a b\nc d\n")
    code, out, err = _run(capsys, "e2e", "--refs", refs, "--hyp", hyp)
    assert code == 2 and out == ""
    assert "no `java` was found" in err and "apt-get install openjdk-17-jre-headless" in err
    code, _, err = _run(capsys, "webnlg", "--refs", refs, "--hyp", hyp)
    assert code == 2 and "apt-get install openjdk-17-jre-headless" in err


def test_webnlg_reference_files_like_the_decode_script(capsys, files, tmp_path):
    for k in range(6):  # decode-script layout: reference0..5, one line per example, final newline
        files(f"reference{k}", "a b c d e\np q r s\n")
    hyp = files("hyp.txt", "A b c d e\np q r s\n")
    code, out, _ = _run(capsys, "webnlg", "--refs-prefix", str(tmp_path / "reference"), "--hyp", hyp,
                        "--metrics", "BLEU,TER", "--mode", "faithful")
    result = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and result["BLEU"] == pytest.approx(100.0) and result["TER"] == pytest.approx(1 / 3)
    files("reference5", "a b c d e\n")
    code, _, err = _run(capsys, "webnlg", "--refs-prefix", str(tmp_path / "reference"), "--hyp", hyp)
    assert code == 2 and "2 lines in" in err and "1 lines in" in err


def test_glue_samsum_mnli_wikisql_print_json_last(capsys, files):
    code, out, _ = _run(capsys, "glue", "--task", "cola", "--preds", files("p.txt", "1\n0\n1\n1\n"),
                        "--labels", files("l.txt", "1\n0\n0\n1\n"))
    assert code == 0 and json.loads(out.splitlines()[-1])["matthews_correlation"] == pytest.approx(0.57735, abs=1e-5)
    code, out, _ = _run(capsys, "samsum", "--hyp", files("h.txt", "the cat sat\n"),
                        "--refs", files("r.txt", "the cat sat on the mat\n"))
    assert code == 0 and json.loads(out.splitlines()[-1])["ROUGE-2"] == pytest.approx(400 / 7)
    code, out, _ = _run(capsys, "mnli", "--preds", files("g.txt", "Entailment.\nno idea\n"),
                        "--labels", files("y.txt", "0\nneutral\n"))
    assert code == 0 and json.loads(out.splitlines()[-1]) == {"accuracy": 0.5, "n": 2, "unrecognised": 1}
    gold = files("dev.jsonl", json.dumps({"table_id": "t1", "sql": {"sel": 1, "agg": 3, "conds": [[0, 0, "X"]]}}) + "\n")
    tables = files("dev.tables.jsonl", json.dumps({"id": "t1", "header": ["Team", "Wins"]}) + "\n")
    code, out, _ = _run(capsys, "wikisql", "--pred", files("sql.txt", "SELECT COUNT(Wins) FROM table WHERE Team = x\n"),
                        "--gold", gold, "--tables", tables)
    assert code == 0 and json.loads(out.splitlines()[-1])["lf_accuracy"] == 1.0


def test_module_entry_point_and_exit_status():
    run = subprocess.run([sys.executable, "-m", "experiments.metrics", "glue", "--task", "rte",
                          "--preds", "/nonexistent/p.txt", "--labels", "/nonexistent/l.txt"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert run.returncode == 2 and "no such file" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-m", "experiments.metrics", "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "e2e" in run.stdout and "wikisql" in run.stdout
