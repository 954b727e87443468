"""The committed experiment files and stand-in profiles are exactly what their generator scripts
write (`make configs`): a hand edit of a generated file, or a generator edit without
regenerating, fails here."""
import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf" / "experiment"
PROFILES = REPO / "conf" / "profile"
# script -> the experiment folders it owns (make_gpt3_configs: the GPT-3 tables and stand-ins)
GENERATORS = {
    "make_glue_configs.py": ["table2", "table2_minilm", "glue_minilm", "s7_minilm"],
    "make_gpt3_configs.py": [f"table{n}{s}" for n in (4, 5, 6, 8, 15, 16) for s in ("", "_smollm2")]
                            + ["gpt3_smollm2", "s7_smollm2", "scaling_smollm2", "lowdata_smollm2"],
    "make_beyond_configs.py": ["beyond_smollm2"],
    "make_gpt2_configs.py": ["gpt2_smollm2"],
}
# script -> the stand-in profiles it writes (conf/profile/<name>.yaml)
GENERATED_PROFILES = {
    "make_glue_configs.py": ["standin_minilm", "standin_minilm_plateau"],
    "make_gpt3_configs.py": ["standin_smollm2", "standin_smollm2_plateau"],
    "make_beyond_configs.py": ["standin_smollm2_beyond"],
    "make_gpt2_configs.py": ["standin_smollm2_e2e_plateau"],
}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.yaml")}


@pytest.mark.parametrize("script", sorted(GENERATORS))
def test_regenerating_gives_no_diff(script, tmp_path):
    env = {**os.environ, "LORA_REPRO_CONF_OUT": str(tmp_path)}
    subprocess.run([sys.executable, str(REPO / "scripts" / script)], check=True, env=env,
                   cwd=REPO, capture_output=True)
    written = {p.stem for p in (tmp_path / "profile").glob("*.yaml")}
    assert written == set(GENERATED_PROFILES[script])
    for name in written:
        assert filecmp.cmp(PROFILES / f"{name}.yaml", tmp_path / "profile" / f"{name}.yaml",
                           shallow=False), f"conf/profile/{name}.yaml differs; run make configs"
    for folder in GENERATORS[script]:
        ours, theirs = CONF / folder, tmp_path / "experiment" / folder
        assert _files(ours) == _files(theirs), f"{folder}: files differ; run make configs"
        changed = [f for f in sorted(_files(ours))
                   if not filecmp.cmp(ours / f, theirs / f, shallow=False)]
        assert not changed, f"{folder}: {changed[:5]} differ from scripts/{script}; run make configs"


def test_ledger_judges_convergence_by_the_runs_own_patience():
    """A run the engine stopped on its plateau is one the ledger calls converged, and back."""
    from experiments.claims.spec import LEDGER_DIR, load_rules
    from experiments.converge import PLATEAU_PATIENCE
    assert load_rules(LEDGER_DIR).convergence.patience == PLATEAU_PATIENCE
    # SmolLM2's converging stand-in holds its patience in its profile, every file selects it
    assert yaml.safe_load((PROFILES / "standin_smollm2_plateau.yaml").read_text())["train"][
        "patience"] == PLATEAU_PATIENCE
    for path in [p for f in ("gpt3_smollm2", "s7_smollm2", "scaling_smollm2", "lowdata_smollm2")
                 for p in (CONF / f).rglob("*.yaml")]:
        assert "override /experiment_profile: standin_smollm2_plateau\n" in path.read_text(), path
    # MiniLM's files each hold theirs: the ledger's patience, more on the small train splits
    patience = {p.stem: yaml.safe_load(p.read_text())["train"]["patience"]
                for p in (CONF / "glue_minilm").glob("*.yaml")}
    assert {k: v for k, v in patience.items() if v != PLATEAU_PATIENCE} == {
        f"{m}_rte": 3 for m in ("ft", "lora", "bitfit", "adapter_h")}


def test_plateau_patience_spans_enough_training_examples():
    from experiments.converge import PLATEAU_MIN_EXAMPLES, PLATEAU_PATIENCE, plateau_patience
    assert plateau_patience(10000) == PLATEAU_PATIENCE          # SST-2's subset: 2 epochs do
    assert plateau_patience(PLATEAU_MIN_EXAMPLES // 2) == 2     # exactly enough
    assert plateau_patience(PLATEAU_MIN_EXAMPLES // 2 - 1) == 3  # one short: a third epoch
    assert plateau_patience(2490) == 3 and plateau_patience(1000) == 5


def test_no_minilm_run_stops_before_it_has_seen_enough_examples():
    """glue_minilm's plateau rule waits for PLATEAU_MIN_SEEN examples (never past the cap): 11
    epochs of RTE for the 30-epoch methods, FT's whole 10 there, 7 of MRPC, 5 of STS-B."""
    from experiments.converge import PLATEAU_MIN_SEEN, plateau_min_evaluations
    assert plateau_min_evaluations(10000, 30) == 3                 # the engine's floor
    assert plateau_min_evaluations(PLATEAU_MIN_SEEN // 5, 30) == 5  # exactly enough
    assert plateau_min_evaluations(PLATEAU_MIN_SEEN // 5 - 1, 30) == 6
    assert plateau_min_evaluations(2490, 10) == 10                 # capped
    files = {p.stem: yaml.safe_load(p.read_text())["train"]["min_evaluations"]
             for p in (CONF / "glue_minilm").glob("*.yaml")}
    assert files["lora_rte"] == 11 and files["ft_rte"] == 10
    assert files["lora_mrpc"] == 7 and files["ft_stsb"] == 5 and files["lora_sst2"] == 3
    # Section 7's adapters keep the engine's default (their records predate the rule)
    assert all("min_evaluations" not in p.read_text() for p in (CONF / "s7_minilm").rglob("*.yaml"))


def test_each_standin_lr_has_one_home():
    """The short stand-ins' lrs and the converging ones' sweep tops are experiments/converge's:
    SmolLM2's is Table 12's lr x 5 (FT x 10), and the sweep's cells are Table 4's stand-in rows."""
    sys.path.insert(0, str(REPO / "scripts"))
    import make_glue_configs as glue
    import make_gpt3_configs as gpt3
    from experiments.converge import FAMILIES, GPT3_SMOLLM2_CELLS, MINILM_LR, SMOLLM2_LR

    assert SMOLLM2_LR == {m: float(f"{lr * (10 if m == 'ft' else 5):.3g}")
                          for m, lr in gpt3.PAPER_LR.items()}
    assert gpt3.STANDIN_LR is SMOLLM2_LR
    assert GPT3_SMOLLM2_CELLS == {cell: spec["method"] for cell, spec in gpt3.TABLE4.items()
                                  if cell not in gpt3.STANDIN_SKIP}
    assert FAMILIES["gpt3_smollm2"].base_lr == {c: SMOLLM2_LR[m] for c, m in GPT3_SMOLLM2_CELLS.items()}
    assert FAMILIES["glue_minilm"].base_lr == MINILM_LR and set(MINILM_LR) == set(glue.MINILM_METHODS)


def test_table16_at_n100_trains_each_method_at_its_swept_lr_scaled_as_table17_scales_it(tmp_path):
    """lowdata_smollm2: FT and LoRA at their gpt3_smollm2 picks, PrefixEmbed at 0.4x and
    PrefixLayer at 0.5x theirs (Table 17's MNLI-100 over MNLI-392K lr), 100 examples, Table 17's
    batch and epoch cap; a finished sweep's pick moves the scaled lr with it."""
    sys.path.insert(0, str(REPO / "scripts"))
    import make_gpt3_configs as gpt3
    from experiments.converge import FAMILIES, chosen_lr, sweep_grid
    family = FAMILIES["gpt3_smollm2"]
    ratios = {"ft": 1.0, "lora": 1.0, "pre_embed": 0.4, "pre_layer": 0.5}
    for method, ratio in ratios.items():
        base, _ = chosen_lr(family, gpt3.SWEPT_CELL[method])
        for task in gpt3.LOWDATA_TASKS:
            cfg = yaml.safe_load((CONF / "lowdata_smollm2" / task / f"{method}_n100.yaml").read_text())
            assert float(cfg["train"]["lr"]) == pytest.approx(base * ratio)  # "5e-05": a str to PyYAML
            assert (cfg["train"]["batch_size"], cfg["train"]["epochs"], cfg["data"]["max_train"]) \
                == (20, 40, 100)
            assert cfg["decode"]["every_epochs"] == gpt3.LOWDATA_DECODE_EVERY
    # a finished sweep (its whole grid run, the best inside it) replaces the base lr
    lrs = sweep_grid(family, "pre_embed", tmp_path)
    doc = {"lower_is_better": False, "tie_tolerance": 0.0, "methods": {"pre_embed": {
        "mean_by_lr": {f"{lr:g}": 0.9 - abs(i - 1) * 0.05 for i, lr in enumerate(lrs)}}}}
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / f"{family.analysis}.json").write_text(json.dumps(doc))
    lr, source = gpt3.lowdata_lr("pre_embed", tmp_path)
    assert lr == pytest.approx(float(f"{lrs[1] * 0.4:.3g}")) and lr != pytest.approx(lrs[2] * 0.4)
    assert "x 0.4" in source and family.analysis in source
