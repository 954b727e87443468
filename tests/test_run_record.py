"""The typed, versioned run record (issue #24): every committed record reads through the
migrations to the current schema without its file changing, and round-trips through `Record`;
the one writer refuses a record of the wrong shape, naming the field."""
from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments import records
from experiments.paths import CONF_DIR, REPO_ROOT
from experiments.record_migrations import SCHEMA_VERSION, RecordVersionError, migrate
from experiments.run_record import Record, RecordError, read
from lora_core import target_ranks

def _committed_records() -> list:
    """The records git tracks (a run in progress beside them is neither committed nor done)."""
    import subprocess

    try:
        out = subprocess.run(["git", "ls-files", "results"], cwd=REPO_ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
        return sorted(REPO_ROOT / p for p in out if p.endswith("/record.json") and "/runs/" in p)
    except (OSError, subprocess.CalledProcessError):  # no git: every record in the tree
        return sorted((REPO_ROOT / "results").glob("**/runs/**/record.json"))


COMMITTED = _committed_records()
# Records written before the schema had a version (version 0): what the migrations were for.
UNVERSIONED = [p for p in COMMITTED if "schema_version" not in json.loads(p.read_bytes())]


def declared_task(name: str):
    task = OmegaConf.load(CONF_DIR / "task" / f"{name}.yaml")
    return task.get("task", task)


def test_committed_records_read_at_the_current_version_without_being_rewritten():
    assert len(UNVERSIONED) > 100
    for path in COMMITTED:
        raw = path.read_bytes()
        record = read(path)
        assert path.read_bytes() == raw
        assert record.schema_version == SCHEMA_VERSION
        assert json.loads(raw).get("schema_version", 0) <= SCHEMA_VERSION


def test_every_committed_record_is_of_a_finished_run():
    """A record is committed once its run is complete: one caught mid-run (status "running")
    would enter the tables and the ledger as a run that never ended."""
    unfinished = [str(p.relative_to(REPO_ROOT)) for p in COMMITTED
                  if json.loads(p.read_bytes()).get("status") != "complete"]
    assert not unfinished, f"records committed before their run finished: {unfinished}"


def test_every_committed_record_of_a_swept_family_trained_at_its_files_lr():
    """A record whose lr is not its experiment file's any more (the sweep picked another) is
    a run of a recipe that no longer exists: `python -m experiments.stale --move-to DIR`
    moves it out of results/ (git keeps it) so the grid runs the recipe the file states."""
    from experiments.stale import stale_records

    stale = [f"{p.relative_to(REPO_ROOT)}: {diff}" for p, diff in stale_records(COMMITTED)]
    assert not stale, f"records trained at settings their experiment file no longer states: {stale}"


def test_migration_adds_only_what_older_records_lacked():
    """Each record gains its task's job and scorer as its task config now declares them,
    init_from (null) where it lacked one, and params.deployed where it lacked one (equal to
    the trainable count without heads: no committed record is a pre_layer run without it),
    and LoRA's targets as a list with r where they were a dict of ranks."""
    added = {"deployed": 0, "init_from": 0, "targets": 0}
    for path in UNVERSIONED:
        old = json.loads(path.read_bytes())
        new = migrate(old, str(path))
        assert new["schema_version"] == SCHEMA_VERSION
        task = new["config"]["task"]
        declared = declared_task(task["name"])
        assert (task.pop("evaluate"), task.pop("scorer")) == (declared.evaluate, declared.scorer)
        if "init_from" not in old:
            assert new["init_from"] is None
            added["init_from"] += 1
            del new["init_from"]
        if "deployed" not in old["params"] and "deployed" in new["params"]:
            assert old["config"]["method"]["name"] != "pre_layer"
            assert new["params"].pop("deployed") == old["params"]["trainable_without_head"]
            added["deployed"] += 1
        method, old_method = new["config"]["method"], old["config"]["method"]
        if isinstance(old_method.get("targets"), dict):
            # LoRA's targets as a list with one r, the same weight types and ranks
            keys = list(old_method)
            keys.insert(keys.index("targets") + 1, "r")
            assert isinstance(method["targets"], list) and list(method) == keys
            assert target_ranks(method.pop("targets"), method.pop("r")) == target_ranks(
                old_method["targets"])
            method["targets"] = old_method["targets"]
            new["config"]["method"] = {k: method[k] for k in old_method}
            added["targets"] += 1
        del new["schema_version"]
        assert new == old, path
    assert added["deployed"] > 100 and added["init_from"] == 2 and added["targets"] > 50


def test_committed_records_round_trip_through_the_type():
    for path in COMMITTED:
        migrated = migrate(json.loads(path.read_bytes()))
        record = Record.from_dict(migrated, str(path))
        assert record.to_dict() == migrated
        assert list(record.to_dict())[0] == "schema_version"
        assert isinstance(record.seed, int) and record.status == "complete"
        assert record.metrics and record.extra == {}


def test_pre_layer_record_without_deployed_is_recounted(tmp_path):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=gpt2_tiny", "method=pre_layer"])
    config = OmegaConf.to_container(cfg, resolve=True)
    old = {"experiment": "adhoc/pre_layer", "status": "complete", "config": config,
           "params": {"trainable": 1, "total": 2, "head": 0, "trainable_without_head": 1}}
    new = migrate(old)
    n_layer, d = cfg.model.arch.n_layer, cfg.model.arch.n_embd
    # once folded: L x d x (l_p + l_i), the paper's |Θ| (conf/method/pre_layer.yaml)
    assert new["params"]["deployed"] == n_layer * d * (8 + 8)
    assert new["params"]["deployed_backfilled"] is True and "deployed" not in old["params"]


def test_newer_or_malformed_versions_are_refused():
    current = {"schema_version": SCHEMA_VERSION, "experiment": "x", "status": "running"}
    assert migrate(current) == current
    with pytest.raises(RecordVersionError, match="newer than this suite reads"):
        migrate({"schema_version": SCHEMA_VERSION + 1}, "r.json")
    with pytest.raises(RecordVersionError, match="r.json: schema_version='2'"):
        migrate({"schema_version": "2"}, "r.json")


def test_the_writer_refuses_a_record_of_the_wrong_shape(tmp_path):
    with pytest.raises(RecordError, match=r"`status` is 'done', must be one of running, decoded, "
                                          r"complete; `seed` is '1', must be an integer"):
        records.write_record(tmp_path, {"experiment": "x", "seed": "1", "status": "done"})
    assert not (tmp_path / records.RECORD).exists()
    path = records.write_record(tmp_path, Record("adhoc/x", seed=1, extra={"note": "kept"}))
    written = json.loads(path.read_text())
    assert list(written)[:3] == ["schema_version", "experiment", "table"]
    assert written["note"] == "kept" and "metrics" not in written and written["init_from"] is None
    assert records.read_record(tmp_path) == Record("adhoc/x", seed=1, extra={"note": "kept"})
    with pytest.raises(RecordError, match=r"`best_epoch` is 2.0, must be an integer"):
        records.write_record(tmp_path, Record("adhoc/x", best_epoch=2.0))  # set by code, checked
    assert json.loads(path.read_text()) == written
    path.write_text(json.dumps({**written, "params": [1, 2]}))
    with pytest.raises(records.RunExistsError, match=r"record.json: `params` is \[1, 2\], must be "
                                                     "an object"):
        records.read_record(tmp_path)


def test_stale_records_are_listed_and_moved_out_never_over_an_earlier_move(tmp_path, capsys):
    from experiments.stale import main as stale_main

    def make(experiment, lr, seed, method=None):
        folder = tmp_path / "results" / "runs" / experiment / f"seed{seed}"
        folder.mkdir(parents=True)
        method = method or compose_config(experiment)["method"]
        (folder / "record.json").write_text(json.dumps(
            {"experiment": experiment, "config": {"train": {"lr": lr}, "method": method}}))
        return folder

    current = compose_config("glue_minilm/ft_cola")["train"]["lr"]
    old = make("glue_minilm/ft_cola", current * 4, 1)
    kept = make("glue_minilm/ft_cola", current, 2)
    assert stale_main(["--results", str(tmp_path / "results")]) == 0
    assert "glue_minilm/ft_cola/seed1: trained with train.lr" in capsys.readouterr().out and old.exists()
    assert stale_main(["--results", str(tmp_path / "results"), "--check"]) == 1  # converge.sh
    assert stale_main(["--results", str(tmp_path / "results"), "--move-to",
                       str(tmp_path / "moved")]) == 0
    assert not old.exists() and kept.exists()
    assert (tmp_path / "moved" / "glue_minilm/ft_cola/seed1/record.json").exists()
    make("glue_minilm/ft_cola", current * 4, 1)  # stale again: the earlier move is not overwritten
    with pytest.raises(SystemExit):
        stale_main(["--results", str(tmp_path / "results"), "--move-to", str(tmp_path / "moved")])
    assert "exists" in capsys.readouterr().err


def test_a_record_made_with_method_settings_its_file_no_longer_states_is_stale(tmp_path):
    """PreLayer's `init` came with a new default: a record without it ran the old init."""
    from experiments.stale import stale_records

    experiment = "gpt3_smollm2/sst2_gen/pre_layer"
    config = compose_config(experiment)
    old = {k: v for k, v in config["method"].items() if k != "init"}
    paths = []
    for seed, method in ((1, old), (2, config["method"])):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        paths.append(folder / "record.json")
        paths[-1].write_text(json.dumps({"experiment": experiment, "config": {
            "train": {"lr": config["train"]["lr"]}, "method": method}}))
    assert stale_records(paths) == [(paths[0], {"method.init": (None, "real_tokens")})]


def compose_config(experiment: str) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return OmegaConf.to_container(
            compose(config_name="config", overrides=[f"experiment={experiment}"]), resolve=True)
