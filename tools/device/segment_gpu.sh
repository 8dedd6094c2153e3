#!/usr/bin/env bash
# cpbench segment on a lent GPU machine (the `device` tool's run), one call, ~10 minutes:
#   1. wheels (.whl, carried) into /tmp/site; versions; a 2048 px smoke run on the GPU (stops here if it fails;
#      retried once with numpy 2.0.2 from .whl-np, the version the project is tested with)
#   2. a WD-76845-097-sized synthetic nuclear channel (cpbench synth, all CPUs)
#   3. cpbench segment of it on the GPU: wall, peak RSS of all processes, GPU memory (nvidia-smi, 0.5 s)
#   4. AP@0.5 of the WD-sized labels against the ground truth (tools/label_agreement.py)
#   5. CMP px synthetic, blockwise vs whole-image eval (--block larger than the slide), 1 worker x 2 threads each
# Each step starts only if the time left (DEADLINE s from the start) is enough for it. Results under $OUT.
# Rehearse on a CPU machine: PY=.venv/bin/python DEV=cpu WD="--size 3000,3000 --channels 1" CMP=2048 \
#   WORKERS=1 OUT=/tmp/out NOINSTALL=1 bash tools/device/segment_gpu.sh
set -u
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=20
PY=${PY:-python3}; DEV=${DEV:-cuda}; WD=${WD:-WD-76845-097 --channels 1}; CMP=${CMP:-4096}
WORKERS=${WORKERS:-7}; DATA=${DATA:-/tmp/cpb}; DEADLINE=${DEADLINE:-570}; OUT=${OUT:?set OUT}
T0=$(date +%s); left() { echo $((DEADLINE - ($(date +%s) - T0))); }
say() { echo "== [$(($(date +%s) - T0)) s] $*"; }
mkdir -p "$DATA" "$OUT"
if [ -z "${NOINSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site:$PWD/src
else
  export PYTHONPATH=$PWD/src
fi
CP="$PY -m cpbench.cli"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null; nproc; free -g | sed -n 2p
versions() { $PY -c "import sys, torch, numpy, cellpose, dask, distributed, zarr, tifffile, numba
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__,
      'cellpose', cellpose.version, 'dask', dask.__version__, 'zarr', zarr.__version__, 'tifffile', tifffile.__version__, 'numba', numba.__version__)"; }
smoke() {
  rm -rf "$DATA/smoke" && mkdir -p "$DATA/smoke" && versions &&
  $CP synth --size ${SMOKE:-2048},${SMOKE:-2048} --channels 1 --out "$DATA/smoke/s.ome.tif" --quiet --no-preview &&
  $CP segment "$DATA/smoke/s.ome.tif" --out "$DATA/smoke/l.ome.tif" --diameter 13 --device "$DEV" --workers 2 --no-progress
}
say "1 smoke"
if ! smoke; then
  [ -z "${NOINSTALL:-}" ] && ls .whl-np/*.whl > /dev/null 2>&1 || { say "smoke failed"; exit 4; }
  say "smoke failed; again with numpy 2.0.2"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl-np/*.whl || exit 3
  smoke || { say "smoke failed twice"; exit 4; }
fi
gpumem() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$1" 2>/dev/null & echo $!; }
gpupeak() { kill "$1" 2> /dev/null; sort -n "$2" | tail -1; }

say "2 synth WD-sized ($WD), $(left) s left"
$PY tools/peak_rss.py --json "$OUT/peak_synth.json" $CP synth $WD --out "$DATA/wd.ome.tif" --quiet --no-preview \
  --overwrite || exit 5

say "3 segment WD-sized on $DEV, $WORKERS workers x 2 threads, $(left) s left"
g=$(gpumem "$DATA/gpu_wd.csv")
timeout $(($(left) - 5)) $PY tools/peak_rss.py --json "$OUT/peak_wd.json" $CP segment "$DATA/wd.ome.tif" \
  --out "$DATA/wd_labels.ome.tif" --diameter 13 --device "$DEV" --workers "$WORKERS" --threads 2 --keep-work \
  --overwrite; rc=$?
echo "segment exit $rc; GPU memory used, peak MiB (all processes): $(gpupeak $g "$DATA/gpu_wd.csv")"
cp "$DATA/wd_labels.seams.json" "$OUT/" 2>/dev/null
if [ $rc -ne 0 ]; then  # the per-block seconds of the blocks done are in the work folder's tables
  ls "$DATA"/.wd_labels.ome.tif.work/tables 2>/dev/null | wc -l; exit 6
fi

if [ "$(left)" -gt 60 ]; then
  say "4 AP@0.5 of the WD-sized labels vs truth, $(left) s left"
  ta=$(($(left) - 110)); [ $ta -lt 60 ] && ta=$(($(left) - 3))  # leave step 5 its ~2 minutes
  timeout $ta $PY tools/label_agreement.py "$DATA/wd.labels.ome.tif" "$DATA/wd_labels.ome.tif" \
    --json "$OUT/agree_wd.json"
fi
if [ "$(left)" -gt 90 ]; then
  say "5 ${CMP} px: blockwise vs whole-image eval, 1 worker x 2 threads, $(left) s left"
  $CP synth --size "$CMP,$CMP" --channels 1 --out "$DATA/c.ome.tif" --quiet --no-preview --overwrite
  for mode in block whole; do
    [ "$(left)" -gt 30 ] || break
    b=2048; [ $mode = whole ] && b=100000
    g=$(gpumem "$DATA/gpu_$mode.csv")
    timeout $(($(left) - 5)) $PY tools/peak_rss.py --json "$OUT/peak_$mode.json" $CP segment "$DATA/c.ome.tif" \
      --out "$DATA/c_$mode.ome.tif" --block $b --diameter 13 --device "$DEV" --workers 1 --threads 2 --overwrite --no-progress
    echo "$mode: GPU memory used, peak MiB: $(gpupeak $g "$DATA/gpu_$mode.csv")"
  done
fi
say "done"
