"""Forgetting (LoRA Learns Less and Forgets Less (b)): the tuned stand-in scored on what it was
not tuned on, before (the pretrained model) and after tuning, for FT and LoRA. Writes
`analysis/forgetting.json`. Owns `completion_nll`, `choice_accuracy`, `general_text_nll` and
`probe_skill` (can the base model do a probe at all).
"""
from __future__ import annotations

# The runs are beyond_smollm2/forgetting/* (SmolLM2 tuned on SAMSum). Two measures, each the
# way lm-evaluation-harness scores a base model (the later work used it), so that a tuned model
# that now answers in another format is not counted as having forgotten the task:
#   general text  the mean per-token NLL of held-out general text: Wikipedia sentences, the
#                 `sentence` column of GLUE QNLI's dev split (no stand-in here is tuned on QNLI);
#                 forgetting = NLL(after) − NLL(before), in nats per token
#   other tasks   zero-shot multiple choice by log-likelihood: each label word is scored as the
#                 completion of the task's own prompt (sum of its tokens' NLL, eos included) and
#                 the likeliest is the answer; SST-2 and RTE dev. forgetting = acc(before) −
#                 acc(after), in points. The prompt ends in the separator the stand-in runs use
#                 for that task (results/bench/prompt_choice.json): after the official eos an
#                 instruct model expects a new turn, not an answer, and scores at chance.
# Learning is the target task's metric from the run's record minus the untrained model's
# (beyond_smollm2/forgetting/base).

import csv
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ..batching import IGNORE, collate_causal, encode_example
from ..paths import shared_dir, data_dir
from ..tasks.base import Example
from .beyond_records import PREFIX, final_value, records_under

FOLDER = f"{PREFIX}/forgetting"
BASE_RUN = f"{FOLDER}/base"
TASKS = {"sst2_gen": ("negative", "positive"), "rte_gen": ("entailment", "not_entailment")}
N_GENERAL, N_TASK, SEQ_LEN = 300, 200, 256
LEARNING_METRIC = "test/ROUGE-1"
ALPHA = 0.05      # the ledger's 95% level: a probe counts when the base model beats chance at it
# per-model scores, so a stopped build resumes (results/.cache is not committed)
CACHE = Path(".cache") / "forgetting"
PAPER = {"work": "Biderman et al. (2024), LoRA Learns Less and Forgets Less",
         "finding": "LoRA forgets less of the base model's abilities outside the target domain "
                    "than full fine-tuning (and learns less of the target domain)."}


@torch.no_grad()
def completion_nll(model, items, batch_size: int = 16, device: str = "cpu") -> list[tuple[float, int]]:
    """(summed NLL, token count) of each item's completion tokens (labels ≠ IGNORE), in the
    order of `items`."""
    model.eval()
    # batches of similar length: RTE's premises run from 10 to 250 tokens, and padding to the
    # longest in a random batch is most of the work
    order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
    out: list[tuple[float, int]] = [(0.0, 0)] * len(items)
    for start in range(0, len(items), batch_size):
        chunk = order[start:start + batch_size]
        batch = collate_causal([items[i] for i in chunk])
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits[:, :-1]
        labels = batch["labels"].to(device)[:, 1:]
        mask = labels != IGNORE
        # only the scored positions go through log-softmax: a label word is 2-3 of ~100
        # positions, and a full (batch, length, vocabulary) log-softmax is most of the cost
        scored = logits[mask].float()
        token_nll = torch.logsumexp(scored, -1) - scored.gather(-1, labels[mask].unsqueeze(-1)).squeeze(-1)
        row = torch.arange(labels.shape[0], device=labels.device)[:, None].expand_as(labels)[mask]
        nll = torch.zeros(labels.shape[0], dtype=token_nll.dtype, device=token_nll.device)
        nll.index_add_(0, row, token_nll)
        for i, n, m in zip(chunk, nll, mask.sum(1)):
            out[i] = (float(n), int(m))
    return out


def general_text_nll(model, tokenizer, texts: list[str], device: str = "cpu") -> float:
    """Mean NLL per token (nats) of `texts`, each read from the start (eos as its first token)."""
    items = [encode_example(tokenizer, Example("", t.strip()), SEQ_LEN) for t in texts]
    scored = completion_nll(model, items, device=device)
    return sum(n for n, _ in scored) / sum(k for _, k in scored)


def choice_accuracy(model, tokenizer, examples: list[Example], choices: tuple[str, ...],
                    device: str = "cpu", separator: str | None = None) -> float:
    """Accuracy (points) of picking the likeliest of `choices` as each example's completion,
    after the context and `separator` (None: the official eos)."""
    if not examples:
        raise ValueError("no examples to score")
    items = [encode_example(tokenizer, Example(ex.context, c), SEQ_LEN, "context_start", separator)
             for ex in examples for c in choices]
    nll = [n for n, _ in completion_nll(model, items, device=device)]
    k = len(choices)
    right = sum(min(range(k), key=lambda j: nll[i * k + j]) == choices.index(ex.completion)
                for i, ex in enumerate(examples))
    return 100.0 * right / len(examples)


def general_texts(n: int = N_GENERAL) -> tuple[list[str], str]:
    """The first n distinct Wikipedia sentences of GLUE QNLI's dev split, and their source."""
    for root in (data_dir(), shared_dir() / "data"):
        path = root / "glue" / "QNLI" / "dev.tsv"
        if path.is_file():
            break
    else:
        raise FileNotFoundError("general text: glue/QNLI/dev.tsv is in neither data/ nor "
                                "../shared/data; put GLUE's QNLI dev split there")
    with path.open(encoding="utf-8", newline="") as f:
        sentences = list(dict.fromkeys(row["sentence"] for row in
                                       csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)))
    return sentences[:n], f"glue/QNLI/dev.tsv (GLUE QNLI dev), `sentence` column, first {n} distinct"


def probe_separators(results: Path, model: str | None) -> dict[str, str | None]:
    """task -> the prompt separator the stand-in runs of `model` use for it: the one
    results/bench/prompt_choice.json chose (a task it did not choose for keeps the eos)."""
    from .inputs import MissingInputError

    path = results / "bench" / "prompt_choice.json"
    if not path.is_file():
        raise MissingInputError(f"{path}: the forgetting probes use the prompt separators it "
                                "chose; run: python -m experiments.bench.prompt_choice")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if model is not None and doc.get("model") != model:
        raise MissingInputError(f"{path} chose separators for {doc.get('model')!r}, the "
                                f"forgetting runs tune {model!r}; rerun "
                                f"python -m experiments.bench.prompt_choice for {model}")
    return {t: (doc.get("tasks", {}).get(t) or {}).get("chosen") for t in TASKS}


def scores(model, tokenizer, texts: list[str], tasks: dict[str, list[Example]],
           separators: dict[str, str | None], device: str = "cpu") -> dict[str, float]:
    out = {"general_nll": general_text_nll(model, tokenizer, texts, device)}
    for task, examples in tasks.items():
        out[task] = choice_accuracy(model, tokenizer, examples, TASKS[task], device,
                                    separators.get(task))
    return out


def cached_scores(cache: Path, record: dict, load, texts, tasks,
                  separators: dict[str, str | None]) -> dict[str, float]:
    """`scores` of the model `load()` builds for `record`, kept in `cache` under a hash of what
    decides them (the model config, the trained weights' sha256, the items scored), so that a
    stopped build resumes at the next model and a rebuild rescores only what changed."""
    key = hashlib.sha256(json.dumps(
        {"model": record["config"]["model"], "method": record["config"].get("method"),
         "weights": record.get("weights"), "seed": record.get("seed"), "texts": texts,
         "tasks": {t: [(e.context, e.completion) for e in v] for t, v in tasks.items()},
         "choices": TASKS, "separators": separators, "seq_len": SEQ_LEN},
        sort_keys=True, default=str).encode()).hexdigest()
    path = cache / f"{key[:32]}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["scores"]
    model, tokenizer = load()
    out = scores(model, tokenizer, texts, tasks, separators)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"experiment": record.get("experiment"), "seed": record.get("seed"),
                               "scores": out}) + "\n", encoding="utf-8")
    tmp.replace(path)
    return out


def probe_skill(accuracy: float, completions: list[str], alpha: float = ALPHA) -> dict:
    """Whether the base model can do a zero-shot probe at all: its accuracy against the best
    constant answer's (the commonest label's share of the items), by a one-sided exact binomial
    test. A model that cannot do the probe has nothing there to forget: a drop on it is noise
    around chance, not forgetting, so `caveat` then says why it decides nothing."""
    from scipy.stats import binomtest

    n = len(completions)
    majority = max(completions.count(c) for c in set(completions)) / n
    right = round(accuracy * n / 100.0)
    p = float(binomtest(right, n, majority, alternative="greater").pvalue)
    caveat = None if p < alpha else (
        f"the base model scores {accuracy:.1f} on these {n} items, not above the "
        f"{100 * majority:.1f} of always giving the commonest answer (one-sided binomial "
        f"p = {p:.2g}): it has no skill on this probe to forget")
    return {"base_accuracy": accuracy, "majority_share": 100 * majority,
            "p_above_majority": p, "caveat": caveat}


def forgetting_of(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Positive = forgot: NLL went up, accuracy went down."""
    out = {"general_nll_increase": after["general_nll"] - before["general_nll"]}
    for task in TASKS:
        if task in before and task in after:
            out[f"{task}_drop"] = before[task] - after[task]
    return out


def summarise(base: dict, runs: list[dict]) -> dict:
    """Per method label: the per-seed forgetting and learning lists the ledger reads."""
    by_label: dict[str, dict[str, list]] = {}
    for run in runs:
        entry = by_label.setdefault(run["label"], {"seeds": []})
        entry["seeds"].append(run["seed"])
        for key, value in {**run["forgetting"], "learning": run.get("learning")}.items():
            if value is not None:
                entry.setdefault(key, []).append(value)
    for entry in by_label.values():
        entry["mean"] = {k: statistics.fmean(v) for k, v in entry.items()
                         if k != "seeds" and v}
    return {"base": base, "by_method": by_label}


def pretrained_model(record: dict, with_tokenizer: bool = True, head: str = "causal_lm",
                     num_labels: int | None = None):
    """The model a run started from, built as the pipeline builds it (same init, shrink and
    seed): SmolLM2's real weights for the stand-ins, a seeded random init for smoke runs."""
    from ..models import load_model, spec_from_config

    spec, init = spec_from_config(record["config"]["model"])
    return load_model(spec, init=init, head=head, num_labels=num_labels,
                      seed=int(record.get("seed", 1)), with_tokenizer=with_tokenizer)


def _base_model(record: dict):
    """(model, tokenizer) a run started from, untouched."""
    loaded = pretrained_model(record)
    return loaded.model, loaded.tokenizer


def _tuned_model(record: dict, results: Path):
    """The run's model as it ended training: pretrained + its method + its saved weights."""
    from lora_core import apply_method, load_adapter

    from ..weights import load_trained_weights

    cfg = record["config"]
    loaded = pretrained_model(record)
    method = dict(cfg["method"])
    name = method.pop("name")
    weights = [results / p for p in (record.get("weights") or {})]
    if not weights or not all(p.is_file() for p in weights):
        from .inputs import MissingInputError

        raise MissingInputError(f"{record['experiment']} seed {record['seed']}: trained weights "
                                f"{[str(p) for p in weights]} are not here (they stay on the "
                                "machine that trained them)")
    if name == "lora":
        load_adapter(loaded.model, weights[0].parent)
    elif name != "none":
        apply_method(loaded.model, name, family=cfg["model"].get("family"), **method)
        load_trained_weights(loaded.model, weights[0])
    return loaded.model, loaded.tokenizer


def build(store, out: Path) -> list[Path]:
    from ..tasks import load_examples
    from .inputs import MissingInputError

    results = Path(store.results)
    records = [r for r in records_under(results, FOLDER)]
    tuned = [r for r in records if r.data["experiment"] != BASE_RUN]
    base_rec = next((r for r in records if r.data["experiment"] == BASE_RUN), None)
    if not tuned or base_rec is None:
        raise MissingInputError(f"forgetting needs the runs under runs/{FOLDER}/ (base and the "
                                "tuned ones); run: make beyond-runs-forgetting")
    texts, source = general_texts()
    tasks = {t: load_examples(t, "dev", limit=N_TASK) for t in TASKS}
    cache = results / CACHE
    separators = probe_separators(results, base_rec.data.get("model"))
    total = len(tuned) + 1

    def progress(k: int, r, started: float) -> None:
        print(f"[forgetting] {k}/{total} {r.data['experiment']} seed {r.seed}: "
              f"{time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)

    started = time.monotonic()
    before = cached_scores(cache, base_rec.data, lambda: _base_model(base_rec.data), texts, tasks,
                           separators)
    progress(1, base_rec, started)
    base_learned = final_value(base_rec.data, LEARNING_METRIC)
    runs = []
    for k, r in enumerate(tuned, 2):
        started = time.monotonic()
        after = cached_scores(cache, r.data, lambda r=r: _tuned_model(r.data, results),
                              texts, tasks, separators)
        progress(k, r, started)
        learned = final_value(r.data, LEARNING_METRIC)
        runs.append({"experiment": r.data["experiment"], "seed": r.seed, "record": r.path,
                     "label": r.data["experiment"].rsplit("/", 1)[1], "scores": after,
                     "forgetting": forgetting_of(before, after),
                     "learning": None if learned is None or base_learned is None
                     else learned - base_learned})
    doc = {"analysis": "forgetting", "generated_by": "python -m experiments.analysis forgetting",
           "model": base_rec.data.get("model"), "model_display": base_rec.data.get("model_display"),
           "general_text": {"source": source, "n": len(texts)},
           "tasks": {t: {"split": "dev", "n": len(v), "choices": list(TASKS[t]),
                         "separator": separators[t],
                         **probe_skill(before[t], [e.completion for e in v])}
                     for t, v in tasks.items()},
           "learning_metric": LEARNING_METRIC, "base_learning_value": base_learned,
           "paper": PAPER, **summarise(before, runs), "runs_detail": runs,
           "runs": [{"experiment": r.data["experiment"], "seed": r.seed} for r in records]}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "forgetting.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path]
