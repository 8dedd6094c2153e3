#!/usr/bin/env bash
# The suite's CUDA half on a lent GPU machine (the `device` tool's run), one call of at most ~9.5 minutes:
#   1. carried wheels (.whl/, made here by tools/device/wheels.sh) into /tmp/site; the card, driver, torch, CUDA;
#   2. for each release in RELEASES (each Cellpose wheel laid over /tmp/site on its own path): the scaling sweep
#      of the network, the mask stages and whole-image eval on DEV at SIZES (time, stage peak, GPU peak
#      memory: *GPUMemory.track_gpu_peak_bytes), with stock asv: --python=same, --launch-method spawn (CUDA
#      cannot fork), recorded under the release's commit of the carried history (data/cellpose), machine MACHINE
#      (named for the card); every size while the time left (DEADLINE s from the start) allows;
#   3. the asv results and this log under $OUT (results-gpu/, suite_gpu.log): merge them on the CPU machine with
#      `cp -r OUT/results-gpu/MACHINE .asv/results/` and `cpbench report` draws CPU vs GPU.
# Rehearse on a CPU machine (what CI cannot: it has no GPU):
#   OUT=/tmp/gpu DEV=cpu SIZES=256 NOINSTALL=1 PY=.venv/bin/python bash tools/device/suite_gpu.sh
# Carry: .whl data/cellpose (the `run` tool's carry).
set -u
export PYTHONUNBUFFERED=1
PY=${PY:-python3}; DEV=${DEV:-cuda}; SIZES=${SIZES:-256,512,1024,2048,4096}; RELEASES=${RELEASES:-3.1.1.3 4.2.1.1}
CLASSES=${CLASSES:-bench_network|bench_masks|bench_eval}; DEADLINE=${DEADLINE:-560}; OUT=${OUT:?set OUT}
T0=$(date +%s); left() { echo $((DEADLINE - ($(date +%s) - T0))); }
say() { echo "== [$(($(date +%s) - T0)) s] $*"; }
mkdir -p "$OUT"
exec > >(tee -a "$OUT/suite_gpu.log") 2>&1

if [ -z "${NOINSTALL:-}" ]; then
  ls .whl/*.whl > /dev/null 2>&1 || { say "no wheels in .whl: make them with tools/device/wheels.sh and carry .whl"; exit 3; }
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    $(ls .whl/*.whl | grep -v '/cellpose-') || exit 3
  BASE=/tmp/site:$PWD/src
else
  BASE=$PWD/src
fi
missing=$(PYTHONPATH=$BASE $PY -c "import importlib.util as u
print(' '.join(m for m in ('torch', 'numpy', 'scipy', 'cv2', 'numba', 'tifffile', 'imagecodecs', 'zarr', 'asv', 'fastremap',
                           'natsort', 'tqdm', 'packaging') if u.find_spec(m) is None))")
[ -z "$missing" ] || { say "missing on this machine: $missing (add their wheels to .whl: tools/device/wheels.sh)"; exit 5; }
card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)
say "card: ${card:-none (DEV=$DEV)}; $(nproc) CPUs; $(free -g | awk 'NR==2 {print $2}') GiB"
MACHINE=${MACHINE:-$(echo "${card:-cpu-$(hostname)}" | cut -d, -f1 | tr 'A-Z ' 'a-z-' | tr -cd 'a-z0-9-')}
if [ -n "${NOINSTALL:-}" ]; then  # the Cellpose this Python has, once
  RELEASES=$(PYTHONPATH=$BASE $PY -c "from importlib.metadata import version; print(version('cellpose'))")
fi
[ -d data/cellpose/.git ] || { say "no Cellpose history in data/cellpose: build it (make data/cellpose/.git) and carry it"; exit 4; }

for R in $RELEASES; do
  if [ -z "${NOINSTALL:-}" ]; then
    w=$(ls .whl/cellpose-"$R"-*.whl 2> /dev/null | head -1)
    [ -n "$w" ] || { say "no wheel for Cellpose $R in .whl"; continue; }
    rm -rf "/tmp/cp-$R" && $PY -m pip install -q --no-index --no-deps --target "/tmp/cp-$R" "$w" || continue
    export PYTHONPATH=/tmp/cp-$R:$BASE
  else
    export PYTHONPATH=$BASE
  fi
  have=$($PY -c "from importlib.metadata import version; print(version('cellpose'))" 2>/dev/null)
  if [ -z "${NOINSTALL:-}" ] && [ "$have" != "$R" ]; then say "Cellpose $R did not install (found '$have')"; continue; fi
  commit=$(git -C data/cellpose rev-parse "v$have^{commit}") || { say "v$have is not in data/cellpose"; continue; }
  $PY -c "import sys, torch, numpy, cellpose
print('python', sys.version.split()[0], 'torch', torch.__version__, 'CUDA', torch.version.cuda, 'available',
      torch.cuda.is_available(), 'numpy', numpy.__version__, 'cellpose', '$have')"
  $PY -m asv machine --yes --machine "$MACHINE" > /dev/null
  # one asv run per size and class: asv writes its results when a run ends, so a run cut by the deadline
  # loses only itself (the first rehearsal lost everything measured in 15 minutes that way)
  for size in ${SIZES//,/ }; do
    for cls in ${CLASSES//|/ }; do
      t=$(( $(left) - 10 )); [ "$t" -gt 30 ] || { say "no time left for $cls at $size px (Cellpose $have)"; break 2; }
      say "Cellpose $have, $cls at $size px on $DEV, machine $MACHINE, $t s left"
      timeout "$t" $PY -m cpbench.cli sweep scaling --device "$DEV" --grid quick --sizes "$size" --classes "$cls" \
        --results-dir "$OUT/results-gpu" --commit "$commit" \
        --asv "--quick --launch-method spawn --machine $MACHINE --show-stderr" > "$OUT/asv-$have-$cls-$size.log" 2>&1
      rc=$?
      grep -E '^\[.*(ok|failed)$|^\s+[a-z_]+\s+[0-9]' "$OUT/asv-$have-$cls-$size.log" | tail -40
      [ $rc -eq 0 ] || say "$cls at $size px: exit $rc$([ $rc -eq 124 ] && echo ' (the deadline: this run is lost, the earlier ones are kept)')"
    done
  done
done
$PY - "$OUT/results-gpu" <<'EOF'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*/*.json")):
    if f.name == "machine.json":
        continue
    r = json.loads(f.read_text())
    n = sum(1 for v in r.get("results", {}).values() if v and v[0] is not None and any(x is not None for x in v[0]))
    print(f"{f.parent.name}/{f.name}: {n} benchmarks with values")
EOF
say "done"
