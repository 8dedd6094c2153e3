#!/usr/bin/env bash
# Validate cpbench plan against the runs it plans: for each slide, plan it, run the command the plan
# recommends (whole process tree's peak RSS sampled by tools/peak_rss.py), then cpbench plan --check.
# usage: tools/plan_validate.sh OUT_DIR SLIDE [SLIDE...]   (extra plan options in $PLAN_OPTS, e.g. "--diameter 13")
# Run it on a quiet machine: the samples and the run are timed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$here/.venv/bin}
out=$1; shift
mkdir -p "$out"
for slide in "$@"; do
  slide=$(realpath "$slide"); name=$(basename "$slide"); name=${name%%.*}
  echo "== $name: plan"
  (cd "$out" && /usr/bin/time -f "plan wall %e s" "$bin/cpbench" plan "$slide" ${PLAN_OPTS:-} --out "$out/$name.plan.json" \
     --overwrite --no-progress | tee "$out/$name.plan.txt")
  cmd=$("$bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['command'])" "$out/$name.plan.json")
  echo "== $name: $cmd"
  (cd "$out" && "$bin/python" "$here/tools/peak_rss.py" --json "$out/$name.rss.json" \
     bash -c "PATH=$bin:\$PATH $cmd --overwrite --no-progress" | tee "$out/$name.run.txt")
  "$bin/cpbench" plan --check "$out/$name.labels.seams.json" | tee "$out/$name.check.txt"
done
"$bin/cpbench" plan --validation "$out" > "$out/validation.md"
cat "$out/validation.md"
