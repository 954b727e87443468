"""Forgetting for the MiniLM stand-in (LoRA Learns Less and Forgets Less (b), encoder side):
all-MiniLM-L6-v2 is a sentence-embedding model, so what it "could do" before tuning is STS:
the Spearman correlation of its mean-pooled embeddings' cosine with STS-B's gold scores, with
no head and no training on STS-B. Tuned on SST-2 (glue_minilm/{ft,lora}_sst2), how much of
that does it keep? Writes `analysis/forgetting_minilm.json`. Owns `mean_pool`, `sts_spearman`.
"""
from __future__ import annotations

# forgetting = Spearman(before) − Spearman(after), in points (x100), per seed; the ledger
# compares LoRA's per-seed list with FT's (Welch's t over seeds). The runs are the converging
# Table 2 stand-in's (glue_minilm: trained until dev accuracy stopped improving), not the
# 60-step table2_minilm ones: forgetting after a run that never learned the task says little.

import csv
import json
from pathlib import Path

import torch
from scipy import stats

from ..paths import data_dir, shared_dir
from .beyond_records import records_under
from .inputs import MissingInputError

RUNS = {"ft": "glue_minilm/ft_sst2", "lora": "glue_minilm/lora_sst2"}
N_PAIRS = 500
COMMAND = "scripts/converge.sh glue_minilm ft lora"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token states under the attention mask (sentence-transformers' pooling)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


@torch.no_grad()
def embed(encoder, tokenizer, sentences: list[str], batch_size: int = 64) -> torch.Tensor:
    encoder.eval()
    out = []
    for i in range(0, len(sentences), batch_size):
        enc = tokenizer(sentences[i:i + batch_size], padding=True, truncation=True,
                        max_length=128, return_tensors="pt")
        hidden = encoder(input_ids=enc["input_ids"],
                         attention_mask=enc["attention_mask"]).last_hidden_state
        out.append(mean_pool(hidden, enc["attention_mask"]))
    return torch.cat(out)


def sts_spearman(a: torch.Tensor, b: torch.Tensor, gold: list[float]) -> float:
    """Spearman (x100) between cos(a_i, b_i) and the gold similarity of each pair."""
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    return 100.0 * float(stats.spearmanr(cos.numpy(), gold).statistic)


def stsb_pairs(n: int = N_PAIRS) -> tuple[list[str], list[str], list[float]]:
    for root in (data_dir(), shared_dir() / "data"):
        path = root / "glue" / "STS-B" / "dev.tsv"
        if path.is_file():
            break
    else:
        raise MissingInputError("glue/STS-B/dev.tsv is in neither data/ nor ../shared/data")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], \
        [float(r["score"]) for r in rows]


def _model(record: dict | None, results: Path, template: dict):
    """MiniLM as a run built it (pretrained + method + its saved weights); None: untouched."""
    from lora_core import apply_method, load_adapter

    from ..job import present_heads
    from ..weights import load_trained_weights
    from .forgetting import pretrained_model

    rec = record or template
    family = rec["config"]["model"].get("family", "bert")
    loaded = pretrained_model(rec, head="sequence_classification", num_labels=2)
    if record is not None:
        weights = [results / p for p in (record.get("weights") or {})]
        if not weights or not all(p.is_file() for p in weights):
            raise MissingInputError(f"{record['experiment']} seed {record['seed']}: trained "
                                    f"weights {[str(p) for p in weights]} are not here (they "
                                    "stay on the machine that trained them)")
        method = dict(record["config"]["method"])
        name = method.pop("name")
        if name == "lora":
            load_adapter(loaded.model, weights[0].parent)
        else:
            heads = present_heads(loaded.model, family)
            apply_method(loaded.model, name, head_modules=heads, family=family, **method)
            load_trained_weights(loaded.model, weights[0])
    return loaded.model.base_model, loaded.tokenizer


def build(store, out: Path) -> list[Path]:
    results = Path(store.results)
    runs = {label: [r for r in records_under(results, exp) if r.data["experiment"] == exp]
            for label, exp in RUNS.items()}
    missing = [RUNS[k] for k, v in runs.items() if not v]
    if missing:
        raise MissingInputError(f"no complete runs of {', '.join(missing)}; run: {COMMAND}")
    s1, s2, gold = stsb_pairs()
    template = next(iter(runs.values()))[0].data
    encoder, tok = _model(None, results, template)
    before = sts_spearman(embed(encoder, tok, s1), embed(encoder, tok, s2), gold)
    by_method, detail = {}, []
    for label, recs in runs.items():
        entry = by_method.setdefault(label, {"seeds": [], "stsb_spearman_drop": [],
                                             "sst2_accuracy": []})
        for r in recs:
            encoder, tok = _model(r.data, results, template)
            after = sts_spearman(embed(encoder, tok, s1), embed(encoder, tok, s2), gold)
            entry["seeds"].append(r.seed)
            entry["stsb_spearman_drop"].append(before - after)
            entry["sst2_accuracy"].append(100.0 * float(r.data["metrics"]["dev/accuracy"]))
            detail.append({"experiment": r.data["experiment"], "seed": r.seed, "record": r.path,
                           "stsb_spearman": after})
    doc = {"analysis": "forgetting_minilm",
           "generated_by": "python -m experiments.analysis forgetting_minilm",
           "model": template.get("model"), "model_display": template.get("model_display"),
           "measure": f"Spearman x100 of cos(mean-pooled embeddings) with STS-B gold, first "
                      f"{len(gold)} dev pairs, no STS-B training; drop = before − after",
           "before": before, "by_method": by_method, "runs_detail": detail,
           "runs": [{"experiment": d["experiment"], "seed": d["seed"]} for d in detail]}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "forgetting_minilm.json"
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path]
