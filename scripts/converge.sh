#!/usr/bin/env bash
# Issue #23's converging stand-ins, resumable at any point (experiments/converge.py: the rule):
#   1. the lr sweep of each method named, on the family's sweep task, extended past an end of
#      its grid where the best lr lies there;
#   2. the best lr per method (results/analysis/<sweep>.json) written into the family's
#      configs by its generator script;
#   3. every cell of those methods for each seed, seed by seed.
#   scripts/converge.sh FAMILY [METHOD ...]      FAMILY: glue_minilm | gpt3_smollm2 | gpt2_smollm2 | scaling_smollm2
#   CONVERGE_SEEDS="1 2 3" (default); CONVERGE_SEEDS= runs the sweep only.
set -eu
py=${PY:-.venv/bin/python}
family=$1; shift
seeds=${CONVERGE_SEEDS-1 2 3}
list=$(mktemp)
trap 'rm -f "$list"' EXIT
methods=()
[[ $# -gt 0 ]] && methods=(--methods "$@")

sweep=$($py -c "from experiments.converge import FAMILIES; print(FAMILIES['$family'].analysis)")
# a best lr at an end of the grid adds one past it (experiments/converge.py, MAX_EXTENSIONS):
# run, analyse and list again until the list stops growing
ran=-1
while :; do
  $py -m experiments.converge sweep "$family" "${methods[@]}" > "$list"
  n=$(grep -c . "$list" || true)
  [[ "$n" == "$ran" ]] && break
  PY=$py scripts/run_grid.sh "$list"
  $py -m experiments.analysis "$sweep"
  ran=$n
done
case $family in
  glue_minilm) $py scripts/make_glue_configs.py ;;
  gpt3_smollm2|scaling_smollm2) $py scripts/make_gpt3_configs.py ;;
  gpt2_smollm2) $py scripts/make_gpt2_configs.py ;;
esac
[[ -z "$seeds" ]] && exit 0
# a new pick leaves the runs made at the old lr complete: the grid would skip them
$py -m experiments.stale --check
# shellcheck disable=SC2086
$py -m experiments.converge runs "$family" "${methods[@]}" --seeds $seeds > "$list"
PY=$py scripts/run_grid.sh "$list"
