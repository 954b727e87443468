"""The committed experiment files are exactly what their generator scripts write (`make configs`):
a hand edit of a generated file, or a generator edit without regenerating, fails here."""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf" / "experiment"
# script -> the experiment folders it owns (make_gpt3_configs: the GPT-3 tables and stand-ins)
GENERATORS = {
    "make_glue_configs.py": ["table2", "table2_minilm", "glue_minilm", "s7_minilm"],
    "make_gpt3_configs.py": [f"table{n}{s}" for n in (4, 5, 6, 8, 15, 16) for s in ("", "_smollm2")]
                            + ["gpt3_smollm2"],
    "make_beyond_configs.py": ["beyond_smollm2"],
}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.yaml")}


@pytest.mark.parametrize("script", sorted(GENERATORS))
def test_regenerating_gives_no_diff(script, tmp_path):
    env = {**os.environ, "LORA_REPRO_CONF_OUT": str(tmp_path)}
    subprocess.run([sys.executable, str(REPO / "scripts" / script)], check=True, env=env,
                   cwd=REPO, capture_output=True)
    for folder in GENERATORS[script]:
        ours, theirs = CONF / folder, tmp_path / folder
        assert _files(ours) == _files(theirs), f"{folder}: files differ; run make configs"
        changed = [f for f in sorted(_files(ours))
                   if not filecmp.cmp(ours / f, theirs / f, shallow=False)]
        assert not changed, f"{folder}: {changed[:5]} differ from scripts/{script}; run make configs"


def test_ledger_judges_convergence_by_the_runs_own_patience():
    """A run the engine stopped on its plateau is one the ledger calls converged, and back."""
    from experiments.claims.spec import LEDGER_DIR, load_rules
    from experiments.converge import PLATEAU_PATIENCE
    assert load_rules(LEDGER_DIR).convergence.patience == PLATEAU_PATIENCE
    for path in (CONF / "glue_minilm").glob("*.yaml"):
        assert f"patience: {PLATEAU_PATIENCE}\n" in path.read_text(), path
