"""The inputs of the Section 7 analyses: LoRA run records, their adapters (A, B, ΔW per layer
and weight type) and the pretrained weight W the adapter was trained on.

A run is `<results>/runs/<experiment>/seed<k>/record.json` plus its adapter, beside the record
(`adapter/`) or under `--adapters-root`; missing pieces raise `MissingInputError`, which says
what was looked for and the command that produces it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from lora_core.families import FAMILIES
from lora_core.methods import target_ranks
from lora_core.state import ADAPTER_CONFIG, ADAPTER_WEIGHTS

from .. import records

DEFAULT_PREFIX = "table6_smollm2"
# SST-2 as generation: the stand-in task on which SmolLM2 learns within the CPU budget (RTE stays
# near chance; see the Table 6 stand-in)
DEFAULT_TASK = "sst2_gen"


class MissingInputError(RuntimeError):
    """A run, its record or its adapter is absent; the message names it and how to produce it."""


class InputMismatchError(ValueError):
    """Runs that do not fit together (another rank than the name says, another model or W)."""


def experiment_name(types: str, r: int, task: str = DEFAULT_TASK, prefix: str = DEFAULT_PREFIX) -> str:
    """`table6_smollm2/rte/qv_r8`: the run of LoRA on weight types `types` ("qv", "q") at rank r."""
    return f"{prefix}/{task}/{types}_r{r}"


def run_command(experiment: str, seed: int) -> str:
    return f"python -m experiments.run experiment={experiment} seed={seed}"


def layer_positions(n_layers: int) -> dict[str, int]:
    """The paper's layers of a 96-layer GPT-3 (1, 32, 64, 96; middle 48) at the same relative
    depth of an n-layer model, as 0-based block indices: first, 1/3, 2/3, last and middle."""
    one_based = {"first": 1, "third": max(1, round(n_layers / 3)),
                 "two_thirds": max(1, round(2 * n_layers / 3)), "last": n_layers,
                 "middle": max(1, n_layers // 2)}
    return {k: v - 1 for k, v in one_based.items()}


@dataclass
class LoRARun:
    """One finished LoRA run: its record, adapter tensors and the scale alpha / r per module."""

    experiment: str
    seed: int
    run_dir: Path
    record: dict
    adapter_file: Path
    tensors: dict[str, torch.Tensor] = field(repr=False)
    alpha: float
    family: str
    targets: dict  # weight type -> rank, as the adapter config (or the record) says

    @property
    def model_name(self) -> str:
        return self.record.get("model_display") or self.record.get("model") or "?"

    def describe(self) -> dict:
        return {"experiment": self.experiment, "seed": self.seed, "run_dir": str(self.run_dir),
                "adapter": str(self.adapter_file), "model": self.record.get("model"),
                "model_display": self.record.get("model_display"),
                "model_source": self.record.get("model_source"),
                "profile": self.record.get("profile"), "task": self.record.get("task"),
                "targets": self.targets, "alpha": self.alpha}

    def _key(self, weight_type: str, layer: int, matrix: str) -> str:
        fam = FAMILIES[self.family]
        entries = fam.targets.get(weight_type)
        if not entries:
            raise InputMismatchError(f"weight type {weight_type!r} has no mapping in family {fam.name}")
        (path, sl), *rest = entries
        if rest or sl is not None:
            raise InputMismatchError(f"{self.family} {weight_type!r} is a fused or multi-module "
                                     "projection; the analyses read one separate projection per "
                                     "weight type (GPT-2's c_attn slices are not supported)")
        tail = f"{fam.blocks}.{layer}.{path}.lora_{matrix}"
        hits = [k for k in self.tensors if k == tail or k.endswith("." + tail)]
        if len(hits) != 1:
            raise InputMismatchError(f"{self.adapter_file}: {len(hits)} tensors match *{tail} (is "
                                     f"{weight_type!r} adapted in layer {layer}? targets "
                                     f"{self.targets})")
        return hits[0]

    def lora_A(self, weight_type: str, layer: int) -> torch.Tensor:
        """A (r x in) of `weight_type` in block `layer` (0-based)."""
        return self.tensors[self._key(weight_type, layer, "A")].to(torch.float64)

    def lora_B(self, weight_type: str, layer: int) -> torch.Tensor:
        return self.tensors[self._key(weight_type, layer, "B")].to(torch.float64)

    def rank(self, weight_type: str, layer: int) -> int:
        return self.lora_A(weight_type, layer).shape[0]

    def delta_weight(self, weight_type: str, layer: int) -> torch.Tensor:
        """ΔW = (alpha / r) · B·A (out x in), as `LoRALinear.delta_weight` adds to W."""
        A, B = self.lora_A(weight_type, layer), self.lora_B(weight_type, layer)
        return (self.alpha / A.shape[0]) * (B @ A)

    def n_layers(self) -> int:
        """The model's block count, from the record's model config (after any shrink)."""
        model_cfg = self.record.get("config", {}).get("model", {})
        if model_cfg.get("shrink"):
            return int(model_cfg["shrink"]["layers"])
        arch = model_cfg.get("arch", {})
        for key in ("num_hidden_layers", "n_layer"):
            if key in arch:
                return int(arch[key])
        blocks = FAMILIES[self.family].blocks
        found = {int(k.split(f"{blocks}.", 1)[1].split(".")[0]) for k in self.tensors if f"{blocks}." in k}
        return max(found) + 1


def recorded_adapter_sha256(record: dict) -> str | None:
    """The adapter's hash as the run recorded it (`adapter_sha256`, or the `weights` entry)."""
    if record.get("adapter_sha256"):
        return record["adapter_sha256"]
    for path, sha in (record.get("weights") or {}).items():
        if str(path).endswith(ADAPTER_WEIGHTS):
            return sha
    return None


def _adapter_candidates(results: Path, run_dir: Path, experiment: str, seed: int,
                        adapters_root: Path | None) -> list[Path]:
    """Folders that may hold the adapter, in the order tried."""
    rel = Path(experiment) / f"seed{seed}"
    out = []
    if adapters_root is not None:
        out += [adapters_root / rel / "adapter", adapters_root / rel]
    out += [run_dir / "adapter", results / "weights" / rel / "adapter", results / "weights" / rel]
    return out


def load_run(results: Path, experiment: str, seed: int = 1,
             adapters_root: Path | None = None) -> LoRARun:
    """The finished LoRA run `experiment`/seed<k> with its adapter tensors, or an error saying
    what is missing and how to produce it."""
    results = Path(results)
    run_dir = results / "runs" / experiment / f"seed{seed}"
    record = records.read_record(run_dir)
    if record is None:
        raise MissingInputError(f"no run {experiment} seed {seed}: {run_dir / records.RECORD} is "
                                f"absent. Run it: {run_command(experiment, seed)}")
    record = record.to_dict()  # the typed record's JSON view, as the tables read it
    if record.get("status") != "complete":
        raise MissingInputError(f"run {experiment} seed {seed} is not complete (status "
                                f"{record.get('status')!r} in {run_dir / records.RECORD}); finish "
                                f"it: {run_command(experiment, seed)} run.resume=true")
    if record.get("method") != "lora":
        raise MissingInputError(f"{run_dir / records.RECORD} is a {record.get('method')!r} run; "
                                "the analyses need a LoRA run")
    candidates = _adapter_candidates(results, run_dir, experiment, seed, adapters_root)
    found = next((c for c in candidates if (c / ADAPTER_WEIGHTS).exists()), None)
    sha = recorded_adapter_sha256(record)
    if found is None:
        where = "\n  ".join(str(c / ADAPTER_WEIGHTS) for c in candidates)
        ident = (f"the record's adapter_sha256 {sha} identifies the file" if sha
                 else "the record holds no adapter hash")
        raise MissingInputError(
            f"run {experiment} seed {seed} has a record but its adapter is missing; looked for:"
            f"\n  {where}\n{ident}. Put the adapter folder there (or pass --adapters-root DIR "
            f"holding {experiment}/seed{seed}/adapter/), or rerun: "
            f"{run_command(experiment, seed)} run.new_dir=true")
    adapter_file = found / ADAPTER_WEIGHTS
    if sha and records.sha256_file(adapter_file) != sha:
        raise MissingInputError(f"{adapter_file} is not this run's adapter: its sha256 differs "
                                f"from the record's {sha} ({run_dir / records.RECORD})")
    alpha, family, targets = _lora_settings(found, record)
    return LoRARun(experiment, seed, run_dir, record, adapter_file, load_file(str(adapter_file)),
                   alpha, family, targets)


def _lora_settings(adapter_dir: Path, record: dict) -> tuple[float, str, dict]:
    """alpha, model family and targets: from the adapter's config, else from the record."""
    config = record.get("config", {})
    method = config.get("method", {})
    alpha = method.get("alpha")
    # a record's targets: a list with r (schema 3) or a dict of ranks (older records)
    targets = target_ranks(method["targets"], method.get("r")) if method.get("targets") else {}
    family = config.get("model", {}).get("family")
    if (adapter_dir / ADAPTER_CONFIG).exists():
        saved = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
        alpha, family = saved.get("alpha", alpha), saved.get("family") or family
        targets = saved.get("targets", targets)
    if alpha is None or family is None:
        raise MissingInputError(f"{adapter_dir}: neither {ADAPTER_CONFIG} nor the record says the "
                                "LoRA alpha and model family")
    return float(alpha), family, dict(targets)


class BaseWeights:
    """Pretrained weights W of the runs' models, each model loaded once (through
    `experiments.models.load_model`, as the pipeline builds it: same init, shrink and seed)."""

    def __init__(self):
        self._models: dict[str, torch.nn.Module] = {}

    def weight(self, run: LoRARun, weight_type: str, layer: int) -> torch.Tensor:
        from lora_core.families import find_blocks

        model = self._model(run)
        fam = FAMILIES[run.family]
        _, blocks = find_blocks(model, fam)
        (path, _), = fam.targets[weight_type]
        module = blocks[layer].get_submodule(path)
        return module.weight.detach().to(torch.float64)

    def source(self, run: LoRARun) -> str:
        return getattr(self._model(run), "_lora_repro_source", "?")

    def _model(self, run: LoRARun) -> torch.nn.Module:
        from omegaconf import OmegaConf

        from ..job import job_num_labels
        from ..models import load_model, spec_from_config

        config = run.record["config"]
        model_cfg = dict(config["model"])
        init = model_cfg.pop("init", "pretrained")
        shrink = model_cfg.pop("shrink", None)
        # random-init weights depend on the seed; pretrained ones are shared by every run
        key = json.dumps([model_cfg, init, shrink, run.record.get("seed", run.seed)
                          if init == "random" else None],
                         sort_keys=True, default=str)
        if key not in self._models:
            spec, _ = spec_from_config(config["model"])
            num_labels = job_num_labels(OmegaConf.create(config)) if "task" in config else None
            head = "sequence_classification" if num_labels else "causal_lm"
            seed = int(run.record.get("seed", run.seed))  # the pipeline seeds the init with it
            loaded = load_model(spec, init=init, head=head, num_labels=num_labels,
                                seed=seed, with_tokenizer=False)
            loaded.model._lora_repro_source = loaded.source
            self._models[key] = loaded.model.eval()
        return self._models[key]


class RunStore:
    """Where the analyses read runs from (results root, adapter override, experiment prefix and
    task); each run and each base model is loaded once."""

    def __init__(self, results: Path, adapters_root: Path | None = None, task: str = DEFAULT_TASK,
                 prefix: str = DEFAULT_PREFIX):
        self.results, self.adapters_root = Path(results), adapters_root and Path(adapters_root)
        self.task, self.prefix = task, prefix
        self.base = BaseWeights()
        self._runs: dict[tuple[str, int], LoRARun] = {}

    def run(self, types: str, r: int, seed: int = 1) -> LoRARun:
        experiment = experiment_name(types, r, self.task, self.prefix)
        if (experiment, seed) not in self._runs:
            run = load_run(self.results, experiment, seed, self.adapters_root)
            ranks = {t: run.targets.get(t) for t in types}
            if any(rank != r for rank in ranks.values()):
                raise InputMismatchError(f"{run.adapter_file}: the adapter of {experiment} has ranks "
                                 f"{ranks}, its name says r={r} on {list(types)}; wrong folder?")
            self._runs[experiment, seed] = run
        return self._runs[experiment, seed]

    def runs(self, *wanted: tuple[str, int, int]) -> list[LoRARun]:
        """The runs (types, r, seed) together; one error listing every one that is missing."""
        found, missing = [], []
        for types, r, seed in wanted:
            try:
                found.append(self.run(types, r, seed))
            except MissingInputError as err:
                missing.append(str(err))
        if missing:
            raise MissingInputError("\n".join(missing))
        return found
