"""`make gpu-check`'s Python half (scripts/gpu_check.sh runs Table 1 and Figure 5 before it):
on one CUDA GPU, the SmolLM2 LoRA / FT training step in bf16 (plain loop vs engine, as
`train_speed` on CPU), GPT-2 M's step for this suite's LoRA, PEFT's and FT, and the decoding
rates against plain `generate`. Writes OUT/gpu_check.json. Sized for a few minutes on an H100.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA GPU (torch.cuda.is_available() is False): "
                         "install a CUDA build of torch (README, 'Installing on a GPU machine')")
    from .decode_cases import smollm2_decoding
    from .gpt2_step import time_steps
    from .speed_common import matmul_rate
    from .train_cases import smollm2_cases, time_case

    started = time.perf_counter()
    report = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "matmul_bf16": matmul_rate(device="cuda", dtype=torch.bfloat16)}
    ref = report["matmul_bf16"]["reference"]
    report["training_bf16"] = {}
    for case in smollm2_cases(device="cuda", dtype=torch.bfloat16):
        report["training_bf16"][case.name] = time_case(case, args.steps, ref)
    report["gpt2_m_fp32"] = {}
    for method in ("lora", "peft", "ft"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        report["gpt2_m_fp32"][method] = time_steps(method, args.steps, device="cuda")
    from ..models import load_model

    loaded = load_model("smollm2_135m")  # fp32: outputs compared string for string
    report["decoding_fp32"] = smollm2_decoding(loaded.model.to("cuda"), loaded.tokenizer,
                                               n_greedy=400, n_beam=64, beam_batch=16,
                                               device="cuda")
    report["wall_s"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
