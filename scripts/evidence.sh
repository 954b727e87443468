#!/usr/bin/env bash
# Every run the claims ledger reads, stage by stage (experiments/evidence.py: the plan, ordered
# by how many claims a CPU hour settles), then the ledger. Each stage's command skips complete
# runs and resumes unfinished ones: stop this at any point and start it again.
#   scripts/evidence.sh            (make evidence)
set -u
py=${PY:-.venv/bin/python}
mapfile -t pending < <($py -m experiments.evidence pending)
n=${#pending[@]}
$py -m experiments.evidence status
failed=0
for i in "${!pending[@]}"; do
  echo "[evidence] stage $((i + 1)) of $n: ${pending[$i]}"
  bash -c "${pending[$i]}" || { echo "[evidence] FAILED: ${pending[$i]}"; failed=1; }
done
make claims PY="$py"
$py -m experiments.evidence status
exit $failed
