#!/usr/bin/env bash
# `make demo`: the main job on the embedded default (synthetic slide, shipped reference model), in phases
# that each show their result as they finish, with the time each took. Run by the Makefile (make demo);
# make's own targets do the setup, so nothing here is a second copy of them.
#
# What is measured: every stage at Cellpose's default parameters (a small scaling sweep, `cpbench sweep
# scaling`, recorded in .asv/results-sweep under the installed Cellpose's commit): first at 512 px, whose
# stage table is printed at once, then at 256 and 1024 px. Per stage: time, stage peak memory, AP@0.5
# where it applies, and whole-image eval's process peak (what "will it fit" projects from). The full quick
# suite (every quick-grid parameter, the blockwise segmenter, every process peak) is `make bench`.
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
sweep() {  # sweep SIZES: every stage at SIZES, then eval's process peak there
  "$BIN/cpbench" sweep scaling --sizes "$1" --methods "$SWEEP_METHODS" 2>&1 | quiet
  "$BIN/cpbench" sweep scaling --sizes "$1" --classes bench_eval --methods peakmem_stage 2>&1 | quiet
}

cat <<'PLAN'
make demo: what it does and roughly how long each part takes on a 2-core VM (24 GB) with a warm pip cache
  1. .venv: Python venv, torch (CPU build), Cellpose 3.1, cpbench            ~1.5 min (~2.5 min, cold pip cache)
  2. the synthetic exemplar-001 slide (12 x 3138 x 2509, with ground truth) ~1.5 min
  3. the offline Cellpose history (31 releases from the package index)     ~0.5 min
  4. asv: every stage at 512 px -> the stage table, printed at once         ~2 min
  5. asv: every stage at 256 and 1024 px (time, stage peak, AP@0.5)         ~3 min
  6. asv publish + offline site (.asv/html), cpbench report (reports/)      ~0.5 min
  steps 1-3 are made once; a second make demo re-measures (4-6 only). asv's percentages count the whole
  parameter grid: the demo measures a slice of it, so they stay low.
PLAN

phase "1. setup (.venv, asv site libraries)" "$MAKE" --no-print-directory setup
phase "2. synthetic slide data/synth/exemplar-001.ome.tif" "$MAKE" --no-print-directory data/synth/exemplar-001.ome.tif
phase "3. Cellpose history data/cellpose" "$MAKE" --no-print-directory data/cellpose/.git
"$BIN/asv" machine --yes > /dev/null
phase "4. asv: every stage at 512 px" sweep 512
printf '\nStage costs at 512 px (this machine, Cellpose defaults; the rest is being measured):\n\n'
"$BIN/cpbench" report --table --results .asv/results-sweep
phase "5. asv: every stage at 256 and 1024 px" sweep 256,1024
phase "6. asv publish, offline site, cpbench report" bash -c "
  '$BIN/asv' --config asv.sweep.json publish > /dev/null &&
  '$BIN/cpbench' offline-site --html .asv/html &&
  '$BIN/cpbench' report"

printf '\nmake demo took %d s:\n' $(( $(date +%s) - t_all ))
printf '  %s\n' "${phases[@]}"
cat <<'DONE'

Look at: reports/guidelines.html (the report, opens offline), reports/stage_table_cpu.md,
the asv site: .venv/bin/asv preview (or any web server on .asv/html).
More: make bench (the whole quick suite), cpbench sweep scaling / params (larger slices), README.md.
DONE
