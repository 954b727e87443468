"""Sizing a run before it is submitted: parameters, memory per GPU, GPUs needed and hours, from
the composed config alone (the model built on `meta`, the method applied, the recipe).

`python -m experiments.run experiment=table4/wikisql/ft run.dry=true` prints it; nothing is
loaded, trained or written. With P total and T trainable parameters (lora_core.count_parameters),
per precision (bytes per element: weights w, gradients g, AdamW state o, activations a):
    fp32, as this suite trains today:        w = 4, g = 4, o = 8  (m, v),            a = 4
    bf16 mixed precision (FSDP's usual):     w = 2, g = 2, o = 12 (fp32 master, m, v), a = 2
  state      = w·P + (g + o)·T                     (a frozen weight keeps no gradient nor state)
  activations per sequence of s tokens (what autograd keeps for the backward pass, no
  recomputation, memory-efficient attention so no s×s scores; frozen linears could keep less,
  so for LoRA it is an upper bound):
      A_seq = a·s·(L·c + 2·V),   c = 6h + 2·kv + MLP (+ h + kv for rotary q, k copies)
      MLP = 4i gated (SwiGLU), 5i for GPT-2's tanh GELU (built of element-wise ops), else 2i
      (h hidden, kv = h·heads_kv/heads, i intermediate, L layers, V vocabulary: logits and
      their log-softmax at every position, again an upper bound: the suite keeps only targets;
      tests/test_sizing.py checks c against the tensors autograd saves on tiny models)
  usable     = 0.9 · GPU memory (the rest: CUDA context, allocator fragmentation)
  gathered   = (2w + g)·U when sharded: FSDP all-gathers the running and the prefetched unit's
               weights and holds one unit's full gradient; U = the largest unit (a block, or
               the V·h embedding)
  GPUs N     = the fewest with state/N + gathered + A_seq ≤ usable (state fully sharded);
               micro-batch b = the most sequences per GPU that then fit (the most that divide
               the batch evenly, where N does), accumulation so that N·b·accumulation ≥ batch
  tokens     = training examples × epochs × s     (every line at the recipe's seq_len: an upper bound)
  FLOPs      = tokens · (4P + 2T)   (forward 2P, backward to activations 2P, to weights 2T;
               6P for full fine-tuning, Kaplan et al. 2020; attention's s² term left out)
  GPU-hours  = FLOPs / (peak · utilisation) / 3600; hours = GPU-hours / N
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from omegaconf import DictConfig, OmegaConf

USABLE_FRACTION = 0.9
GB = 1e9

# bytes per element: weights, gradients, AdamW state per trainable parameter, activations
PRECISIONS = {
    "fp32": {"weight": 4, "grad": 4, "optim": 8, "act": 4,
             "label": "fp32, as this suite trains today"},
    "bf16-mixed": {"weight": 2, "grad": 2, "optim": 12, "act": 2,
                   "label": "bf16 mixed precision (fp32 master weights and AdamW state)"},
}


@dataclass(frozen=True)
class GPU:
    """Peak dense throughput (TFLOP/s) per precision, from the vendor's data sheet."""

    name: str = "H100 SXM 80GB"
    memory_gb: float = 80.0
    # NVIDIA H100 data sheet: FP32 67 TFLOP/s (PyTorch does not use TF32 for matmuls unless
    # asked), BF16 tensor cores 989 TFLOP/s dense
    peak_tflops: tuple = (("fp32", 67.0), ("bf16-mixed", 989.0))
    utilisation: float = 0.4  # model FLOPs utilisation assumed for the hours (stated, not measured)

    def peak(self, precision: str) -> float:
        return dict(self.peak_tflops)[precision] * 1e12


# Training-set sizes, for the token budget without reading the data: WikiSQL and SAMSum as the
# paper gives them (paper_spec App. C), GLUE's train splits (MNLI: the paper's "MNLI-392K"),
# E2E's official trainset.csv. Other tasks: data.max_train=N.
GLUE_TRAIN = {"mnli": 392_702, "sst2": 67_349, "qnli": 104_743, "qqp": 363_846, "cola": 8_551,
              "mrpc": 3_668, "rte": 2_490, "stsb": 5_749}
TRAIN_EXAMPLES = {"wikisql": 56_355, "samsum": 14_732, "e2e": 42_061, **GLUE_TRAIN,
                  **{f"{task}_gen": n for task, n in GLUE_TRAIN.items()}}


@dataclass
class Sizing:
    experiment: str
    model: str
    method: str
    precision: str
    total_params: int
    trainable_params: int
    seq_len: int
    batch_size: int
    weights_gb: float
    grads_gb: float
    optim_gb: float
    activations_per_seq_gb: float
    activations_batch_gb: float  # the recipe's whole batch on one GPU, no accumulation
    gpus: int | None             # None: one sequence does not fit even with the state sharded
    micro_batch: int | None
    grad_accum: int | None
    memory_per_gpu_gb: float | None
    train_examples: int | None
    examples_source: str
    epochs: int
    tokens: float | None
    flops: float | None
    gpu_hours: float | None
    hours: float | None
    gpu: str
    peak_tflops: float
    utilisation: float


def activation_elements_per_token(arch: dict, layers_only: bool = False) -> int:
    """c·L + 2V of the module docstring: tensors autograd keeps per token of a sequence."""
    h = arch.get("hidden_size", arch.get("n_embd"))
    layers = arch.get("num_hidden_layers", arch.get("n_layer"))
    heads = arch.get("num_attention_heads", arch.get("n_head"))
    kv = h * arch.get("num_key_value_heads", heads) // heads
    inter = arch.get("intermediate_size") or arch.get("n_inner") or 4 * h
    gated = arch.get("model_type") in ("llama", "qwen2", "mistral")
    rotary = gated
    # GPT-2's gelu_new is 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): autograd keeps x, x³'s
    # input, the tanh output and two products, where a fused GELU keeps only its input
    mlp = 4 * inter if gated else (5 * inter if arch.get("activation_function") == "gelu_new"
                                   or arch.get("model_type") == "gpt2" else 2 * inter)
    per_layer = 6 * h + 2 * kv + mlp + (h + kv if rotary else 0)
    if layers_only:
        return layers * per_layer
    return layers * per_layer + 2 * arch["vocab_size"]


def largest_shard_unit(arch: dict) -> int:
    """Parameters of the largest unit FSDP gathers at once: one block or the embedding."""
    h = arch.get("hidden_size", arch.get("n_embd"))
    heads = arch.get("num_attention_heads", arch.get("n_head"))
    kv = h * arch.get("num_key_value_heads", heads) // heads
    inter = arch.get("intermediate_size") or arch.get("n_inner") or 4 * h
    gated = arch.get("model_type") in ("llama", "qwen2", "mistral")
    block = 2 * h * h + 2 * h * kv + (3 if gated else 2) * h * inter
    return max(block, arch["vocab_size"] * h)


def _meta_counts(cfg: DictConfig):
    """(spec, trainable, total) with the run's model built on `meta` and its method applied."""
    from lora_core import apply_method, count_parameters

    from .job import job_num_labels, present_heads
    from .models import load_model, spec_from_config

    spec, _ = spec_from_config(OmegaConf.to_container(cfg.model, resolve=True))
    num_labels = job_num_labels(cfg)
    built = load_model(spec, init="meta", head="sequence_classification" if num_labels else "causal_lm",
                       num_labels=num_labels, with_tokenizer=False)
    params = OmegaConf.to_container(cfg.method, resolve=True)
    heads = present_heads(built.model, spec.family) if num_labels else []
    apply_method(built.model, params.pop("name"), head_modules=heads, family=spec.family, **params)
    count = count_parameters(built.model, head_modules=heads)
    return spec, count.trainable, count.total


def plan(total: int, trainable: int, per_token: int, seq_len: int, batch_size: int,
         precision: str, gpu: GPU, unit: int = 0) -> dict:
    """Memory of each part and the fewest GPUs (state sharded) that hold it, as documented."""
    b = PRECISIONS[precision]
    weights, grads, optim = b["weight"] * total, b["grad"] * trainable, b["optim"] * trainable
    state = weights + grads + optim
    per_seq = b["act"] * seq_len * per_token
    usable = USABLE_FRACTION * gpu.memory_gb * GB
    out = {"weights_gb": weights / GB, "grads_gb": grads / GB, "optim_gb": optim / GB,
           "activations_per_seq_gb": per_seq / GB,
           "activations_batch_gb": batch_size * per_seq / GB,
           "gpus": None, "micro_batch": None, "grad_accum": None, "memory_per_gpu_gb": None}
    if state + per_seq <= usable:
        gpus, fixed = 1, state
    else:  # sharded: each GPU also holds the gathered units
        gathered = (2 * b["weight"] + (b["grad"] if trainable else 0)) * unit
        if gathered + per_seq >= usable:
            return out
        gpus = math.ceil(state / (usable - gathered - per_seq))
        fixed = state / gpus + gathered
    fit = max(1, min(batch_size, int((usable - fixed) // per_seq)))
    # the recipe's batch exactly where it can be: micro-batch x GPUs x accumulation = batch
    exact = [b for b in range(fit, 0, -1) if batch_size % (gpus * b) == 0]
    micro = exact[0] if exact else fit
    accum = math.ceil(batch_size / (gpus * micro))
    out.update(gpus=gpus, micro_batch=micro, grad_accum=accum,
               memory_per_gpu_gb=(fixed + micro * per_seq) / GB)
    return out


def size_run(cfg: DictConfig, precision: str = "fp32", gpu: GPU = GPU()) -> Sizing:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {sorted(PRECISIONS)}")
    spec, trainable, total = _meta_counts(cfg)
    seq_len = cfg.task.get("seq_len")
    if not seq_len:
        raise ValueError(f"task {cfg.task.name} sets no task.seq_len: the dry run needs the "
                         "recipe's sequence length (conf/task/{cfg.task.name}.yaml)")
    batch = int(cfg.train.batch_size) * int(cfg.train.get("grad_accum", 1))
    parts = plan(total, trainable, activation_elements_per_token(spec.arch), int(seq_len), batch,
                 precision, gpu, unit=largest_shard_unit(spec.arch))
    examples, source = TRAIN_EXAMPLES.get(cfg.task.name), "train split"
    if cfg.data.get("max_train"):
        examples, source = (min(examples, int(cfg.data.max_train)) if examples
                            else int(cfg.data.max_train)), "data.max_train"
    epochs = int(cfg.train.epochs)
    if examples is None:
        tokens = flops = gpu_hours = hours = None
        source = f"unknown for task {cfg.task.name}: set data.max_train=N"
    else:
        tokens = float(examples) * epochs * int(seq_len)
        if cfg.train.get("max_steps"):
            tokens = min(tokens, float(cfg.train.max_steps) * batch * int(seq_len))
        flops = tokens * (4 * total + 2 * trainable)
        gpu_hours = flops / (gpu.peak(precision) * gpu.utilisation) / 3600
        hours = gpu_hours / parts["gpus"] if parts["gpus"] else None
    return Sizing(experiment=cfg.run.name, model=spec.display_name or spec.name,
                  method=cfg.method.name, precision=precision, total_params=total,
                  trainable_params=trainable, seq_len=int(seq_len), batch_size=batch, **parts,
                  train_examples=examples, examples_source=source, epochs=epochs, tokens=tokens,
                  flops=flops, gpu_hours=gpu_hours, hours=hours, gpu=gpu.name,
                  peak_tflops=gpu.peak(precision) / 1e12, utilisation=gpu.utilisation)


def describe(s: Sizing) -> str:
    lines = [f"  {PRECISIONS[s.precision]['label']}:",
             f"    weights {s.weights_gb:,.1f} GB + gradients {s.grads_gb:,.1f} GB + AdamW "
             f"{s.optim_gb:,.1f} GB; activations {s.activations_per_seq_gb:,.2f} GB per sequence, "
             f"{s.activations_batch_gb:,.1f} GB for the batch of {s.batch_size}"]
    if s.gpus is None:
        lines.append(f"    one sequence of {s.seq_len} tokens does not fit a {s.gpu}: needs "
                     "activation checkpointing or sequence parallelism")
    else:
        how = "one GPU (torchrun data parallelism scales it)" if s.gpus == 1 else \
            f"{s.gpus} GPUs with weights, gradients and AdamW state sharded (FSDP)"
        lines.append(f"    {how}: {s.memory_per_gpu_gb:,.1f} GB per {s.gpu} at micro-batch "
                     f"{s.micro_batch} x {s.grad_accum} accumulation steps")
    if s.gpu_hours is not None:
        when = f", {s.hours:,.1f} h on {s.gpus}" if s.hours is not None else ""
        lines.append(f"    {s.tokens:,.3g} tokens ({s.train_examples:,} examples [{s.examples_source}]"
                     f" x {s.epochs} epochs x {s.seq_len}), {s.flops:,.3g} FLOPs: "
                     f"{s.gpu_hours:,.1f} GPU-hours at {s.utilisation:.0%} of "
                     f"{s.peak_tflops:,.0f} TFLOP/s{when}")
    else:
        lines.append(f"    hours: training-set size {s.examples_source}")
    return "\n".join(lines)


def dry_run(cfg: DictConfig) -> list[Sizing]:
    """What `run.dry=true` prints: the run's counts, then one plan per precision."""
    sizes = [size_run(cfg, p) for p in PRECISIONS]
    s = sizes[0]
    print(f"[dry run] {s.experiment}: {s.model} + {s.method} on {cfg.task.name} "
          f"({cfg.profile.name} profile); nothing is loaded or trained")
    print(f"  parameters: {s.trainable_params:,} trainable of {s.total_params:,} "
          f"({100 * s.trainable_params / s.total_params:.3g}%); recipe: batch {s.batch_size} x "
          f"{s.seq_len} tokens, {s.epochs} epochs, AdamW")
    for size in sizes:
        print(describe(size))
    print("  (formulas: experiments/sizing.py; as JSON or markdown: python -m experiments.sizing "
          "EXPERIMENT... --json FILE --markdown FILE)")
    return sizes


def _gb(x: float | None) -> str:
    return "—" if x is None else f"{x:,.1f}"


def markdown(sizes: list[Sizing]) -> str:
    """One row per experiment and precision; written by `--markdown`, never by hand."""
    head = ("| Experiment | Model | Trainable / total | Precision | Weights + grads + AdamW (GB) "
            "| Activations per sequence (GB) | GPUs (80 GB) | GB per GPU | Micro-batch x accum "
            "| GPU-hours | Hours |\n|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [head]
    for s in sizes:
        state = s.weights_gb + s.grads_gb + s.optim_gb
        plan_ = "—" if s.gpus is None else f"{s.micro_batch} x {s.grad_accum}"
        rows.append(f"| {s.experiment} | {s.model} | {s.trainable_params:,} / {s.total_params:,} "
                    f"| {s.precision} | {_gb(state)} | {s.activations_per_seq_gb:,.2f} "
                    f"| {s.gpus or 'does not fit'} | {_gb(s.memory_per_gpu_gb)} | {plan_} "
                    f"| {_gb(s.gpu_hours)} | {_gb(s.hours)} |")
    gpu = GPU()
    rows.append(f"\nWritten by `python -m experiments.sizing` from the configs (formulas in "
                f"experiments/sizing.py): {gpu.name}, {USABLE_FRACTION:.0%} of its memory usable, "
                f"{gpu.utilisation:.0%} of peak ({', '.join(f'{p} {t:g}' for p, t in gpu.peak_tflops)}"
                " TFLOP/s); tokens = the paper's training-set size x epochs x seq_len (upper bound); "
                "activations without recomputation (for LoRA an upper bound).")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> list[Sizing]:
    import argparse
    import json
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from .paths import CONF_DIR

    parser = argparse.ArgumentParser(prog="python -m experiments.sizing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+", help="experiment files, e.g. table4/wikisql/ft")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="Hydra overrides for every experiment, e.g. model=qwen2_5_1_5b")
    parser.add_argument("--json", type=Path, help="write every plan as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the plans as a markdown table here")
    args = parser.parse_args(argv)
    sizes = []
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for experiment in args.experiments:
            cfg = compose(config_name="config", overrides=[f"experiment={experiment}", *args.set])
            sizes += [size_run(cfg, p) for p in PRECISIONS]
    for path, text in ((args.json, lambda: json.dumps([asdict(s) for s in sizes], indent=2)),
                       (args.markdown, lambda: markdown(sizes))):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text() + ("\n" if path == args.json else ""))
            print(f"wrote {path}")
    if not (args.json or args.markdown):
        print(markdown(sizes))
    return sizes


if __name__ == "__main__":
    main()
