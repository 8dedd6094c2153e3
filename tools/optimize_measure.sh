#!/usr/bin/env bash
# Measure our Cellpose patches on this machine: the inputs of reports/optimizations.md. Then
# `make optimizations` copies the asv results beside them and regenerates the document.
#
#   tools/optimize_measure.sh [NAME ...]      # default: every patch (cpbench optimize --list)
#
# Per patch, one after another (nothing else should run beside them: these are timings):
#   1. asv continuous v<release> opt/v<release>/<name> on the stages the patch targets (stock asv, the
#      project's environment, results in .asv/optimize-results through asv.optimize.json)
#   2. two Scalene deep-dives (cpu + memory) of the targeted stage at 1024 px: the release, then the patched
#      copy first on PYTHONPATH; compare.md of the two
#   3. cpbench segment on $SLIDE with and without the patch, labels compared pixel for pixel (3.x: it runs the
#      reference model), and for the mask stages' patches mask recovery of the whole synthetic frame
# A 3.x patch runs under .venv; a 4.x patch under .venv-cellpose4 (make .venv-cellpose4/.installed; dask
# is added to it for cpbench segment). Measured here (2 CPUs): about 15 minutes per patch.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OPT=reports/optimizations
SLIDE=${SLIDE:-data/synth/exemplar-001.ome.tif}
CONF=asv.optimize.json
step() { echo "== $* ($(date -u +%T))"; }

[ -f "$SLIDE" ] || { echo "no slide $SLIDE: make $SLIDE (or SLIDE=path tools/optimize_measure.sh)"; exit 1; }
$BIN/cpbench optimize --asv-config $CONF
$BIN/asv --config $CONF machine --yes > /dev/null

measure() {  # NAME RELEASE
  local name=$1 release=$2 stage bench py tmp dest
  case $name in
    follow-flows) stage=follow_flows bench='^bench_masks\.(FollowFlows|MaskRecovery)\.' ;;
    flow-qc) stage=flow_qc bench='^bench_masks\.(FlowQC|MaskRecovery)\.' ;;
    network-layout) stage=network  # the network and eval with the reference model (the random one: same network)
      bench="^bench_(network\\.Network|eval\\.EndToEnd)\\.(time_stage|track_stage_peak_bytes|track_ap50)\\('synthetic', '[0-9]+', 'cpu', 'reference'" ;;
    *) echo "tools/optimize_measure.sh: no stage known for patch $name; add it to the case above"; exit 1 ;;
  esac
  case $release in
    4.*) py=.venv-cellpose4/bin/python
         [ -x $py ] || { echo "$name targets $release: make .venv-cellpose4/.installed first"; exit 1; }
         $py -c "import distributed" 2> /dev/null || $py -m pip install --quiet dask distributed ;;
    *) py=$BIN/python ;;
  esac
  export PYTHONPATH=src  # cpbench from this checkout under either Python (.venv has it installed too)
  step "$name: asv continuous v$release opt/v$release/$name"
  # exits 1 when a benchmark got worse: the document says which, so the run goes on
  $BIN/asv --config $CONF continuous "v$release" "opt/v$release/$name" --bench "$bench" || true
  tmp=$(mktemp -d)
  $py -c "import sys; from pathlib import Path; from cpbench.optimize.branches import PATCH_DIR, read_patch; \
from cpbench.optimize.overlay import patched_copy; patched_copy(read_patch(PATCH_DIR / sys.argv[1]), Path(sys.argv[2]))" \
    "$name.v$release.patch" "$tmp/overlay"
  step "$name: deep-dive of $stage, release"
  $py -m cpbench.cli profile $stage --param size=1024 --mode both --out "$tmp/release"
  step "$name: deep-dive of $stage, patched"
  PYTHONPATH="$tmp/overlay:src" $py -m cpbench.cli profile $stage --param size=1024 --mode both --out "$tmp/patched"
  dest=$OPT/profiles/$name
  rm -rf "$dest" && mkdir -p "$dest/release" "$dest/patched"
  for v in release patched; do cp "$tmp/$v"/*/summary.json "$tmp/$v"/*/summary.md "$dest/$v/"; done
  $BIN/cpbench profile-compare "$dest/release" "$dest/patched" --out "$dest"
  case $name in  # the mask stages' patches: mask recovery of the whole synthetic frame too
    follow-flows|flow-qc)
      step "$name: mask recovery of the whole exemplar-001 frame with and without the patch"
      # the reference model's flows for the frame, made once by .venv's 3.x (a 4.x release cannot run it)
      $BIN/python -c "from cpbench.measure import inputs; inputs.flows('synthetic', 'full', 'network', 'reference', 13.0)"
      $py -m cpbench.cli optimize --whole-frame --patch "$name" ;;
  esac
  case $release in  # cpbench segment runs the reference model: 3.x only (4.x would need cpsam's weights)
    3.*) step "$name: cpbench segment on $SLIDE with and without the patch"
         $py -m cpbench.cli optimize --whole-slide "$SLIDE" --patch "$name" ;;
  esac
  rm -rf "$tmp"
  unset PYTHONPATH
}

names=("$@")
[ ${#names[@]} -gt 0 ] || mapfile -t names < <($BIN/cpbench optimize --list | sed 's#^opt/v[^/]*/\([^:]*\):.*#\1#')
for name in "${names[@]}"; do
  release=$($BIN/cpbench optimize --list | sed -n "s#^opt/v\([^/]*\)/$name:.*#\1#p")
  [ -n "$release" ] || { echo "no patch named $name (cpbench optimize --list)"; exit 1; }
  measure "$name" "$release"
done
step "done: make optimizations regenerates reports/optimizations.md"
