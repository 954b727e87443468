"""Where the config generators write (conf/, or LORA_REPRO_CONF_OUT for
tests/test_config_generators.py), and how they write a stand-in profile: the settings every
experiment file of a stand-in family shares, once (conf/profile/standin_*.yaml)."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

CONF = Path(os.environ.get("LORA_REPRO_CONF_OUT")
            or Path(__file__).resolve().parent.parent / "conf")
EXPERIMENTS = CONF / "experiment"
PROFILES = CONF / "profile"


def select_profile(name: str) -> str:
    """The defaults-list line by which an experiment file picks its profile: conf/config.yaml
    applies the profile after the file, so the file must not set what the profile sets."""
    return f"  - override /experiment_profile: {name}"


def write_profile(name: str, about: str, script: str, settings: dict) -> Path:
    """conf/profile/<name>.yaml: `settings` (nested dicts) for every file that selects it."""
    head = [f"# {line}".rstrip() for line in about.strip().split("\n")]
    head += [f"# Written by scripts/{script}: edit that script, not this file. Its experiment",
             "# files select it (`override /experiment_profile: ...`); it is applied after them,",
             "# so none of them sets these keys (tests/test_standin_profiles.py)."]
    body = {"profile": {"name": name}, "model": {"init": "pretrained"}, **settings}
    path = PROFILES / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# @package _global_\n" + "\n".join(head) + "\n"
                    + yaml.safe_dump(body, sort_keys=False, default_flow_style=False),
                    encoding="utf-8")
    return path
