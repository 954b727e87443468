#!/usr/bin/env bash
# Runs a list of experiments one after another, skipping complete runs and resuming unfinished
# ones, so a long CPU grid can be stopped and started again at will.
#   scripts/run_grid.sh LIST_FILE
# Each line of LIST_FILE: <run dir relative to results/runs> <hydra overrides...>
# A grid alone uses every core (the engine's default); two grids side by side: LORA_REPRO_JOBS=2
# in each, so they split the cores instead of oversubscribing them (engine.configure_threads).
set -u
list=$1
results=${LORA_REPRO_RESULTS:-results}
py=${PY:-.venv/bin/python}
export LORA_REPRO_JOBS=${LORA_REPRO_JOBS:-1} HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
while read -r run_dir overrides; do
  [[ -z "$run_dir" || "$run_dir" == \#* ]] && continue
  record="$results/runs/$run_dir/record.json"
  if [[ -f "$record" ]] && grep -q '"status": "complete"' "$record"; then
    echo "[grid] $run_dir: complete, skipped"; continue
  fi
  resume=false; [[ -d "$results/runs/$run_dir" ]] && resume=true
  echo "[grid] $run_dir: $overrides (resume=$resume)"
  # shellcheck disable=SC2086
  $py -m experiments.run $overrides run.resume=$resume || echo "[grid] $run_dir FAILED"
done < "$list"
