"""Many adapters, one model (§4.1, §4.2): tokens/s of a batch mixing k = 1, 2, 4, 8 adapters.

`python -m experiments.bench.adapters --device cpu` times, on the same random-init model and
the same k LoRA adapters (Wq, Wv), four ways of serving B rows split evenly over k adapters:
  routed          lora_core.adapter_routing, one batch, rows grouped by adapter
  peft            PEFT's `adapter_names=` on the same adapters (Llama-family models only: there
                  PEFT and lora_core adapt the same weights; GPT-2's q,v slices of c_attn it cannot)
  merged_switch   one merged model per task: switch_merged, run that task's rows, next task
  merged_single   the whole batch through one merged model: the no-mixing ceiling
for a prefill pass (no cache, last-token logits) and for greedy decoding with a KV cache, plus
the time of one switch_merged. Writes results/bench/adapters_<device>.{json,md} and
results/figures/adapters_<device>.png.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from lora_core import LoRAConfig, RoutedLinear, adapter_routing, add_adapter, apply_lora, switch_merged
from lora_core.state import ADAPTER_CONFIG, ADAPTER_WEIGHTS, PEFT_PREFIX, PEFT_WEIGHTS

from ..models import load_model, model_spec
from ..paths import results_dir
from .latency import _now, environment

# Wq, Wv as in the paper's GPT-2 (Table 11: r=4, alpha=32) and GPT-3 (Table 4: r=8) rows
SETUPS = {"smollm2_135m": dict(targets={"q": 8, "v": 8}, alpha=16),
          "gpt2_m": dict(targets={"q": 4, "v": 4}, alpha=32),
          "gpt2_tiny": dict(targets={"q": 4, "v": 4}, alpha=32)}  # the tests' smoke run
# Per device and model: rows, prefill length, decode prompt length, new tokens, timed trials.
# The CPU grids are sized for 2 shared cores at 1 thread (GPT-2 M is 2.6x SmolLM2's compute).
GRIDS = {
    "cpu": {"smollm2_135m": dict(batch=8, prefill=32, prompt=8, new=4, trials=4, warmup=1),
            "gpt2_m": dict(batch=8, prefill=16, prompt=8, new=4, trials=3, warmup=1),
            "gpt2_tiny": dict(batch=8, prefill=8, prompt=4, new=2, trials=1, warmup=0)},
    "cuda": {m: dict(batch=32, prefill=256, prompt=32, new=32, trials=10, warmup=2) for m in SETUPS},
    "quick": {m: dict(batch=8, prefill=8, prompt=4, new=2, trials=1, warmup=0) for m in SETUPS},
}
# Trained SmolLM2 adapters of this suite's stand-in runs (Wq, Wv, r=8): merged switching on real
# weights, where |ΔW| / |W0| is what training gives rather than what a random draw gives.
REAL_ADAPTERS = ["table4_smollm2/samsum/lora_qv_r8/seed1", "table4_smollm2/rte_gen/lora_qv_r8/seed1",
                 "table6_smollm2/sst2_gen/qv_r8/seed1", "table6_smollm2/sst2_gen/qv_r8/seed2"]
KS = (1, 2, 4, 8)


def write_adapters(model_name: str, k: int, root: Path, seed: int = 0) -> tuple[list, list]:
    """k random adapters in this suite's format and, where PEFT can hold them, in PEFT's."""
    meta = load_model(model_name, init="meta", with_tokenizer=False).model
    config = LoRAConfig(**SETUPS[model_name])
    apply_lora(meta, config)
    shapes = {n: tuple(p.shape) for n, p in meta.named_parameters() if "lora_" in n}
    masked = any(not getattr(m, "_full", True) for m in meta.modules())
    g = torch.Generator().manual_seed(seed)
    ours, peft_dirs = [], []
    for i in range(k):
        # B's scale gives |ΔW| / |W0| near 0.01, about what the trained SmolLM2 adapters have
        tensors = {n: torch.randn(s, generator=g) * (1e-3 if n.endswith("lora_B") else 1 / s[1] ** .5)
                   for n, s in shapes.items()}
        d = root / f"ours{i}"
        d.mkdir(parents=True)
        save_file(tensors, str(d / ADAPTER_WEIGHTS))
        (d / ADAPTER_CONFIG).write_text(json.dumps(config.to_dict()))
        ours.append(d)
        if not masked:
            import peft

            p = root / f"peft{i}"
            r = next(iter(config.targets.values()))
            peft.LoraConfig(r=r, lora_alpha=config.alpha, target_modules=["q_proj", "v_proj"],
                            task_type="CAUSAL_LM").save_pretrained(str(p))
            save_file({f"{PEFT_PREFIX}{n}.weight": t for n, t in tensors.items()},
                      str(p / PEFT_WEIGHTS))
            peft_dirs.append(p)
    return ours, peft_dirs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def runners(model, peft_model, names, ids, phase: str, new: int) -> dict:
    """{method: (setup, run, teardown)}: `run` serves the batch `ids` (rows routed by `names`)
    one way; setup and teardown, untimed, put the model into and out of that way's state."""
    def forward(m, x, **kw):
        if phase == "prefill":
            return m(input_ids=x, use_cache=False, logits_to_keep=1, **kw)
        return m.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=new,
                          min_new_tokens=new, do_sample=False, pad_token_id=0, **kw)

    order = list(dict.fromkeys(names))
    spans = {n: (names.index(n), len(names) - names[::-1].index(n)) for n in order}
    nothing = lambda: None  # noqa: E731
    unmerge = lambda: switch_merged(model, None)  # noqa: E731

    def routed():
        with adapter_routing(model, names):
            forward(model, ids)

    def merged_switch():  # k switches: the first from W0 (teardown unmerges, untimed)
        for n in order:
            switch_merged(model, n)
            s, e = spans[n]
            forward(model, ids[s:e])

    out = {"routed": (nothing, routed, nothing),
           "merged_switch": (nothing, merged_switch, unmerge),
           "merged_single": (lambda: switch_merged(model, order[0]), lambda: forward(model, ids),
                             unmerge)}
    if peft_model is not None:
        out["peft"] = (nothing, lambda: forward(peft_model, ids, adapter_names=names), nothing)
    return out


@torch.no_grad()
def bench_model(model_name: str, grid: dict, device: torch.device, ks=KS) -> dict:
    spec = model_spec(model_name)
    model = load_model(spec, init="random", with_tokenizer=False, seed=0).model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        ours, peft_dirs = write_adapters(model_name, max(ks), Path(tmp))
        peft_model = None
        if peft_dirs:
            import peft

            peft_model = peft.PeftModel.from_pretrained(copy.deepcopy(model), str(peft_dirs[0]),
                                                        adapter_name="a0")
            for i, d in enumerate(peft_dirs[1:], 1):
                peft_model.load_adapter(str(d), adapter_name=f"a{i}")
            peft_model = peft_model.eval().to(device)
        for i, d in enumerate(ours):
            add_adapter(model, f"a{i}", d)
    model.to(device)
    g = torch.Generator().manual_seed(1)
    vocab, b = model.config.vocab_size, grid["batch"]
    record = {"model": spec.name, "model_display": spec.display_name, "init": "random",
              "lora": SETUPS[model_name], "peft_compared": peft_model is not None, "phases": {}}
    for phase, length in (("prefill", grid["prefill"]), ("decode", grid["prompt"])):
        ids = torch.randint(3, vocab, (b, length), generator=g).to(device)
        tokens = b * (length if phase == "prefill" else grid["new"])
        rows = []
        for k in ks:
            names = [f"a{i * k // b}" for i in range(b)]  # k groups of b/k rows, contiguous
            run = runners(model, peft_model, names, ids, phase, grid["new"])
            times = {m: [] for m in run}
            for trial in range(grid["warmup"] + grid["trials"]):
                for method, (setup, fn, teardown) in run.items():  # interleaved: load drifts hit all
                    setup()
                    t = timed(fn, device)
                    teardown()
                    if trial >= grid["warmup"]:
                        times[method].append(t)
            # tokens/s from the fastest trial: on a shared machine the noise only ever slows
            # a trial down (timeit's advice); the median is kept beside it
            row = {"k": k, "rows_per_adapter": b // k, "tokens": tokens,
                   **{m: {"tokens_per_s": tokens / min(v), "median_s": statistics.median(v),
                          "tokens_per_s_median": tokens / statistics.median(v), "times_s": v}
                      for m, v in times.items()}}
            if phase == "prefill":  # the adapters matter, and PEFT computes what we compute
                with adapter_routing(model, names):
                    mine = model(input_ids=ids, use_cache=False).logits
                base = model(input_ids=ids, use_cache=False).logits
                row["adapter_effect_rel"] = _rel(mine, base)
                if peft_model is not None:
                    row["peft_max_rel_diff"] = _rel(mine, peft_model(
                        input_ids=ids, use_cache=False, adapter_names=names).logits)
            rows.append(row)
            print(f"[adapters] {spec.name} {phase} k={k}: " + ", ".join(
                f"{m} {row[m]['tokens_per_s']:.0f} tok/s" for m in run), flush=True)
        record["phases"][phase] = {"batch": b, "length": length, "new_tokens": grid["new"]
                                   if phase == "decode" else 0, "rows": rows}
    record["switch"] = time_switches(model, max(ks), device)
    return record


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def time_switches(model, k: int, device: torch.device, n: int = 8) -> dict:
    """Median seconds of one switch_merged between two adapters, and the weights it keeps aside."""
    times = [timed(lambda i=i: switch_merged(model, f"a{i % k}"), device) for i in range(n + 1)][1:]
    layers = [m for m in model.modules() if isinstance(m, RoutedLinear)]
    kept = sum(m._fixups[0].numel() for m in layers if m._fixups is not None)
    adapted = sum(m.base_layer.weight.numel() for m in layers)
    name = layers[0]._merged
    delta = sum(m._delta(name).norm() ** 2 for m in layers if name in m.updates) ** .5
    switch_merged(model, None)
    w0 = sum(m.base_layer.weight.norm() ** 2 for m in layers) ** .5
    return {"median_s": statistics.median(times), "times_s": times, "switches": n,
            "kept_weights": kept, "adapted_weights": adapted, "kept_fraction": kept / adapted,
            "delta_over_w0_frobenius": (delta / w0).item()}


@torch.no_grad()
def real_switching(runs_root: Path, switches: int = 40) -> dict | None:
    """switch_merged on pretrained SmolLM2 with trained adapters: time, kept fraction, and the
    weights after `switches` switches compared bit for bit with each adapter's first merge."""
    dirs = [runs_root / r / "adapter" for r in REAL_ADAPTERS]
    dirs = [d for d in dirs if (d / ADAPTER_CONFIG).exists()]
    if len(dirs) < 2:
        return None
    model = load_model("smollm2_135m", with_tokenizer=False).model.eval()
    names = [f"r{i}" for i in range(len(dirs))]
    for name, d in zip(names, dirs):
        add_adapter(model, name, d)
    layers = [m for m in model.modules() if isinstance(m, RoutedLinear)]
    first, stats = {}, {}
    for i in range(switches):
        name = names[i % len(names)]
        t = timed(lambda name=name: switch_merged(model, name), torch.device("cpu"))
        if name not in first:
            first[name] = [m.base_layer.weight.clone() for m in layers]
            stats[name] = {"kept_fraction": sum(m._fixups[0].numel() for m in layers if m._fixups)
                           / sum(m.base_layer.weight.numel() for m in layers),
                           "delta_over_w0_frobenius": (sum(m._delta(name).norm() ** 2 for m in layers)
                                                       / sum(w.norm() ** 2 for w in first[name])).item() ** .5,
                           "times_s": []}
        stats[name]["times_s"].append(t)
    identical = {}
    for name in names:
        switch_merged(model, name)
        identical[name] = all(torch.equal(m.base_layer.weight, w) for m, w in zip(layers, first[name]))
    switch_merged(model, None)
    return {"model": "smollm2_135m (pretrained)", "adapters": dict(zip(names, map(str, dirs))),
            "switches": switches, "identical_after_switches": identical,
            "per_adapter": {n: {"kept_fraction": s["kept_fraction"],
                                "delta_over_w0_frobenius": s["delta_over_w0_frobenius"],
                                "median_switch_s": statistics.median(s["times_s"])}
                            for n, s in stats.items()}}


def markdown(record: dict) -> str:
    env = record["environment"]
    lines = [f"# Many adapters, one model: mixed-batch tokens/s ({env['device_name']}, "
             f"{env['threads']} thread(s), {env['cpu_count']} cores)", "",
             f"Generated by `python -m experiments.bench.adapters --device {env['device']}`. "
             "Random-init models, k LoRA adapters on Wq, Wv, B rows split evenly and grouped by "
             "adapter; tokens/s from the fastest of the timed trials (the JSON also has the "
             "medians), methods interleaved trial by trial. `merged_switch` runs each task's rows on the model merged for that task, "
             "with a switch_merged before each (the first from W0); `merged_single` is the whole "
             "batch on one merged model, the ceiling without mixing.", ""]
    for m in record["models"]:
        g = m["grid"]
        lines += [f"Measured {m['started']}, {g['trials']} trials after {g['warmup']} warm-up, "
                  f"load average at start {[round(x, 1) for x in m['load_average_at_start']]}.", ""]
        for phase, p in m["phases"].items():
            methods = [x for x in ("routed", "peft", "merged_switch", "merged_single") if x in p["rows"][0]]
            shape = (f"{p['batch']} rows x {p['length']} tokens" if phase == "prefill" else
                     f"{p['batch']} rows, {p['length']}-token prompts, {p['new_tokens']} new tokens")
            lines += [f"## {m['model_display']}: {phase} ({shape})", "",
                      "| k | " + " | ".join(f"{x} tok/s" for x in methods)
                      + " | routed / peft | routed / merged_single |", "|---" * (len(methods) + 3) + "|"]
            for r in p["rows"]:
                tps = {x: r[x]["tokens_per_s"] for x in methods}
                vs_peft = f"{tps['routed'] / tps['peft']:.2f}" if "peft" in tps else "n/a"
                lines.append(f"| {r['k']} | " + " | ".join(f"{tps[x]:.0f}" for x in methods)
                             + f" | {vs_peft} | {tps['routed'] / tps['merged_single']:.2f} |")
            if phase == "prefill":
                effect = min(r["adapter_effect_rel"] for r in p["rows"])
                diff = [r["peft_max_rel_diff"] for r in p["rows"] if "peft_max_rel_diff" in r]
                same = (" (bit-identical)" if diff and max(diff) == 0 else "")
                lines += ["", f"Adapters change the logits by at least {effect:.2g} (max relative)"
                          + (f"; routed and PEFT logits differ by at most {max(diff):.2g}{same}."
                             if diff else ".")]
            lines.append("")
        sw = m["switch"]
        lines += [f"switch_merged on {m['model_display']}: {sw['median_s'] * 1e3:.0f} ms median of "
                  f"{sw['switches']}; {sw['kept_weights']:,} of {sw['adapted_weights']:,} adapted "
                  f"weights ({100 * sw['kept_fraction']:.1f}%) kept aside so unmerging is exact "
                  f"(random adapters, ‖ΔW‖/‖W0‖ = {sw['delta_over_w0_frobenius']:.2g}).", ""]
    real = record.get("real_switching")
    if real:
        lines += [f"## Merged switching with trained adapters ({real['model']})", "",
                  f"{real['switches']} switches cycling through the adapters; weights afterwards "
                  "bit-identical to each adapter's first merge: "
                  f"{all(real['identical_after_switches'].values())}.", "",
                  "| adapter | run | ‖ΔW‖ / ‖W0‖ | kept aside | median switch ms |", "|---|---|---|---|---|"]
        for n, a in real["per_adapter"].items():
            lines.append(f"| {n} | {Path(real['adapters'][n]).parent.relative_to(Path(real['adapters'][n]).parents[4])} "
                         f"| {a['delta_over_w0_frobenius']:.3g} | {100 * a['kept_fraction']:.2f}% "
                         f"| {a['median_switch_s'] * 1e3:.0f} |")
        lines.append("")
    return "\n".join(lines)


def figure(record: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(m, ph) for m in record["models"] for ph in m["phases"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (m, phase) in zip(axes[0], panels):
        rows = m["phases"][phase]["rows"]
        ks = [r["k"] for r in rows]
        for method in ("routed", "peft", "merged_switch", "merged_single"):
            if method in rows[0]:
                ax.plot(ks, [r[method]["tokens_per_s"] for r in rows], marker="o", label=method)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("adapters in the batch (k)")
        ax.set_ylabel("tokens / s")
        ax.set_title(f"{m['model_display']}\n{phase}", fontsize=9)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    env = record["environment"]
    fig.suptitle(f"Mixed-adapter batches, {env['device_name']}, {env['threads']} thread(s) "
                 "(random init; CPU runs on a shared machine)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--models", nargs="+", default=["smollm2_135m", "gpt2_m"], choices=list(SETUPS))
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny grid, one trial")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default on CPU: 1, as the latency bench)")
    parser.add_argument("--out", type=Path, default=None, help="results root (default results/)")
    parser.add_argument("--real", action="store_true",
                        help="also switch_merged on pretrained SmolLM2 with the trained adapters "
                             "under --runs-root (CPU)")
    parser.add_argument("--runs-root", default="results/runs")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild the .md and the figure from the existing JSON (no timing)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU: run on a GPU machine or use --device cpu")
    if args.threads or args.device == "cpu":
        torch.set_num_threads(args.threads or 1)
    device = torch.device(args.device)
    grids = GRIDS["quick" if args.quick else args.device]
    out = args.out or results_dir()
    stem = f"adapters_{args.device}{'_quick' if args.quick else ''}"
    json_path = out / "bench" / f"{stem}.json"
    if args.report_only:
        return write_report(json.loads(json_path.read_text()), out, stem)
    started = time.perf_counter()
    record = {"benchmark": "mixed-adapter batches vs PEFT adapter_names vs merged switching",
              "started": _now(), "quick": args.quick, "ks": list(KS), "models": [],
              "load_average_at_start": list(os.getloadavg())}
    if json_path.exists():  # a run of some models keeps the other models' earlier results
        previous = json.loads(json_path.read_text())
        record["models"] = [m for m in previous.get("models", []) if m["model"] not in args.models]
        record["real_switching"] = previous.get("real_switching")
    for name in args.models:
        m = bench_model(name, grids[name], device)
        m.update(grid=grids[name], started=record["started"],
                 load_average_at_start=record["load_average_at_start"])
        record["models"].append(m)
        record["environment"] = environment(device, load_model(name, init="meta", with_tokenizer=False).model)
    if args.real and device.type == "cpu":
        record["real_switching"] = real_switching(Path(args.runs_root))
    record["wall_s"] = round(time.perf_counter() - started, 1)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    return write_report(record, out, stem)


def write_report(record: dict, out: Path, stem: str) -> Path:
    """The markdown table and the figure, from a results record."""
    (out / "bench" / f"{stem}.md").write_text(markdown(record) + "\n")
    figure(record, out / "figures" / f"{stem}.png")
    print(f"[adapters] wrote {out / 'bench' / stem}.{{json,md}} and figures/{stem}.png")
    return out / "bench" / f"{stem}.json"


if __name__ == "__main__":
    main()
