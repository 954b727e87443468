#!/usr/bin/env bash
# Issue #23's MiniLM evidence (the Table 2 stand-in trained to a plateau), resumable at any point:
#   1. the lr sweep of each method named on CoLA (3 lrs, 3 epochs, seed 1);
#   2. the best lr per method (results/analysis/lr_sweep_minilm.json) written into
#      conf/experiment/glue_minilm/ by scripts/make_glue_configs.py;
#   3. seeds 1, 2, 3 of every task for those methods, seed by seed, so that a stopped grid
#      leaves whole seeds behind.
#   scripts/glue_minilm.sh [METHOD ...]    (default: ft lora bitfit adapter_h; make glue-minilm)
set -eu
py=${PY:-.venv/bin/python}
methods=${*:-ft lora bitfit adapter_h}
seeds=${GLUE_MINILM_SEEDS-1 2 3}  # set but empty: the sweep only
tasks="sst2 mrpc cola rte stsb"
list=$(mktemp)
trap 'rm -f "$list"' EXIT

for m in $methods; do
  for lr in $($py -c "import sys; sys.path.insert(0, 'scripts'); from make_glue_configs import GLUE_MINILM_SWEEP as g; print(*(f'{x:g}' for x in g['$m']))"); do
    name=lr_sweep_minilm/$m/lr_$lr
    echo "$name/seed1 experiment=glue_minilm/${m}_cola seed=1 logger=none train.lr=$lr train.epochs=3 train.patience=null run.name=$name run.table=lr_sweep_minilm"
  done
done > "$list"
PY=$py scripts/run_grid.sh "$list"
$py -m experiments.analysis lr_sweep_minilm
$py scripts/make_glue_configs.py

for s in $seeds; do
  for m in $methods; do
    for t in $tasks; do
      echo "glue_minilm/${m}_$t/seed$s experiment=glue_minilm/${m}_$t seed=$s logger=none"
    done
  done
done > "$list"
PY=$py scripts/run_grid.sh "$list"
