"""A digest of each experiment's composed config, recorded in tests/fixtures/experiment_configs.json
so that a refactor of conf/ (the stand-in profiles, the list form of LoRA's targets) is shown to
leave every run's settings as they were (tests/test_spine.py checks each file against it).

The digest leaves out what such a refactor renames or adds without changing a setting:
`profile.name`, the form of LoRA's targets (a dict of ranks and a list with r give the same
digest) and `run.same_as` (a link to the file owning the configuration, experiments/same_as.py) and an unset
`train.run_epochs` (added after these were recorded). A deliberate change to an
experiment's recipe changes its digest: record the new ones with
    python -m tests.config_digests          # rewrites tests/fixtures/experiment_configs.json
and say in the commit which experiments changed and why.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lora_core import target_ranks

DIGESTS = Path(__file__).resolve().parent / "fixtures" / "experiment_configs.json"


def digest(config: dict) -> str:
    """sha256 (16 hex digits) of `config` (a composed config as a plain, unresolved dict)."""
    config = json.loads(json.dumps(config))
    method = config.get("method") or {}
    if "targets" in method:
        method["targets"] = target_ranks(method["targets"], method.pop("r", None))
    (config.get("profile") or {}).pop("name", None)
    (config.get("run") or {}).pop("same_as", None)
    train = config.get("train") or {}
    if train.get("run_epochs") is None:  # a key added unset (every epoch): no setting changed
        train.pop("run_epochs", None)
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def recorded() -> dict[str, str]:
    return json.loads(DIGESTS.read_text(encoding="utf-8"))


def main() -> None:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.paths import CONF_DIR

    root = CONF_DIR / "experiment"
    names = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        out = {n: digest(OmegaConf.to_container(compose(config_name="config",
                                                          overrides=[f"experiment={n}"])))
               for n in names}
    DIGESTS.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"recorded {len(out)} digests in {DIGESTS}")


if __name__ == "__main__":
    main()
