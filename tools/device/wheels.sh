#!/usr/bin/env bash
# The wheels a lent GPU machine lacks, for its Python (it reaches no registry): into .whl/ (git-ignored; the
# `device` tool's run carries it). Torch is not among them: the GPU machine has its own CUDA build.
# usage: tools/device/wheels.sh [PYTHON_VERSION (default 3.12)]
# The carry limit is 64 MiB in all: the script prints the total and stops when it is over.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${1:-3.12}
rm -rf .whl && mkdir -p .whl
# what the suite imports beyond torch and numpy; the two Cellpose releases the GPU runs compare (get_masks
# before and after upstream's vectorisation, PR #1447); asv itself
pkgs=(cellpose==3.1.1.3 cellpose==4.2.1.1 asv==0.6.6 asv-runner fastremap fill-voids natsort roifile
      tifffile imagecodecs zarr numcodecs donfig crc32c typing_extensions packaging tqdm json5 tabulate
      segment_anything google-crc32c)
for p in "${pkgs[@]}"; do
  pin=$(grep -iE "^${p%%==*}==" benchmarks/requirements.txt | head -1 || true)  # the suite's tested version
  [[ "$p" == *==* || -z "$pin" ]] || p=$pin
  python3 -m pip download --quiet --no-deps --only-binary :all: --python-version "$py" \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any -d .whl "$p"
done
total=$(du -sm .whl | cut -f1)
echo ".whl: $(ls .whl | wc -l) wheels, $total MiB"
[ "$total" -le 64 ] || { echo "over the 64 MiB carry limit: carry the largest in a first call"; exit 1; }
