#!/usr/bin/env bash
# `make demo`: the main job on the embedded default (synthetic slide, shipped reference model), in phases
# that each show their result as they finish, with the time each took. Run by the Makefile (make demo);
# make's own targets do the setup, so nothing here is a second copy of them.
#
# What is measured: every stage at Cellpose's default parameters, a slice of the quick grid (`cpbench sweep
# scaling --grid quick`, recorded in .asv/results under the installed Cellpose's commit, as `asv run --quick`
# records it): first at 256 px, whose stage table is printed at once, then at 512 px. Per stage: time, stage
# peak memory, AP@0.5 where it applies; whole-image eval's time and process peak (what "will it fit" projects
# from; its AP is mask recovery's, from the same flows). One asv run per size: every asv run pays ~50 s of
# imports here (Cellpose 3.1 compiles its numba kernels at import, ~8 s a process). The whole quick suite
# (every quick-grid parameter, 1024 px, the blockwise segmenter, every process peak) is `make bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
MAKE=${MAKE:-make}
BIN=${VENV:-.venv}/bin
SWEEP_METHODS='(time_stage|track_stage_peak_bytes|track_ap50)'

phases=()
t_all=$(date +%s)
phase() {  # phase NAME COMMAND...: run it, then record how long it took
  local name=$1 t0
  shift
  t0=$(date +%s)
  printf '\n=== %s\n' "$name"
  "$@"
  phases+=("$(printf '%-58s %5d s' "$name" $(( $(date +%s) - t0 )))")
}
quiet() {  # asv's progress lines without its parameter tables (which list the whole grid, mostly n/a)
  sed -u -E '/^\[ *[0-9.]+%\] ·+ [=-]{3}/d; /^ {2,}/d; /^$/d'
}
sweep() {  # sweep SIZE: every stage at SIZE px, in one asv run
  "$BIN/cpbench" sweep scaling --grid quick --results-dir .asv/results --sizes "$1" \
    --methods "$SWEEP_METHODS" --methods-for "bench_eval=(time_stage|peakmem_stage)" 2>&1 | quiet
}
slide_and_history() {  # the history (I/O: the package index) beside the slide (CPU), its log shown after
  "$MAKE" --no-print-directory data/cellpose/.git > data/.history-build.log 2>&1 & local pid=$!
  "$MAKE" --no-print-directory data/synth/exemplar-001.ome.tif
  if ! wait "$pid"; then cat data/.history-build.log; rm -f data/.history-build.log; return 1; fi
  grep -E "releases|^make" data/.history-build.log | grep -v "%|" || true
  rm -f data/.history-build.log
}

cat <<'PLAN'
make demo: what it does and roughly how long each part takes on a 2-core VM (24 GB) with a warm pip cache
  1. .venv: Python venv, torch (CPU build), Cellpose 3.1, cpbench             ~2 min
  2. the synthetic exemplar-001 slide (12 x 3138 x 2509, with ground truth)  ~1.5 min, beside
  3. the offline Cellpose history (31 releases from the package index)      ~0.5 min
  4. asv: every stage at 256 px -> its stage table, printed at once          ~2 min
  5. asv: every stage at 512 px (time, stage peak, AP@0.5, eval's peak)      ~3 min
  6. asv publish + offline site (.asv/html), cpbench report (reports/)       ~0.5 min
  steps 1-3 are made once; a second make demo re-measures (4-6 only). asv's percentages count the whole
  quick grid: the demo measures a slice of it, so they stay low.
PLAN

phase "1. setup (.venv, asv site libraries)" "$MAKE" --no-print-directory setup
phase "2-3. synthetic slide data/synth/exemplar-001.ome.tif, Cellpose history data/cellpose" slide_and_history
"$BIN/asv" machine --yes > /dev/null
phase "4. asv: every stage at 256 px" sweep 256
printf '\nStage costs at 256 px (this machine, Cellpose defaults; the rest is being measured):\n\n'
"$BIN/cpbench" report --table --results .asv/results
phase "5. asv: every stage at 512 px" sweep 512
phase "6. asv publish, offline site, cpbench report" bash -c "
  '$BIN/asv' publish > /dev/null &&
  '$BIN/cpbench' offline-site --html .asv/html &&
  '$BIN/cpbench' report"

printf '\nmake demo took %d s:\n' $(( $(date +%s) - t_all ))
printf '  %s\n' "${phases[@]}"
cat <<'DONE'

Look at: reports/guidelines.html (the report, opens offline), reports/stage_table_cpu.md,
the asv site: .venv/bin/asv preview (or any web server on .asv/html).
More: make bench (the whole quick suite), cpbench sweep scaling / params (larger slices), README.md.
DONE
