"""OME-Zarr label images: NGFF 0.4 metadata a reader can follow, levels that sample labels (never
average two ids), chunk-wise streaming, and atomic replacement (an error leaves nothing behind)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from cpbench.io.omezarr import level_shapes, n_chunks, write_label_pyramid


def _labels(shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 1000, size=shape, dtype=np.uint32)


class _Count:
    n = 0

    def update(self, k: int) -> None:
        self.n += k


def test_levels_sample_and_metadata_points_at_them(tmp_path: Path) -> None:
    src = _labels((1000, 1300))
    out = tmp_path / "labels.ome.zarr"
    bar = _Count()
    write_label_pyramid(out, src, 2, chunk=256, pixel_size_um=0.65, progress=bar)
    assert bar.n == n_chunks((1000, 1300), 2, 256) == 4 * 6 + 2 * 3 + 1 * 2
    root = zarr.open_group(str(out), mode="r")
    assert root.metadata.zarr_format == 2
    ms = root.attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["y", "x"]
    assert "image-label" in root.attrs
    for k, ds in enumerate(ms["datasets"]):
        arr = root[ds["path"]]
        h, w = level_shapes((1000, 1300), 2)[k]
        assert arr.shape == (h, w) and arr.chunks == (min(256, h), min(256, w))
        assert ds["coordinateTransformations"][0]["scale"] == [0.65 * 2**k] * 2
        np.testing.assert_array_equal(arr[:], src[::2**k, ::2**k])
    assert (out / "0" / "0" / "0").is_file()  # NGFF 0.4: "/" between chunk indices


class _Failing:
    """A source that breaks after a few reads (a disk error in the middle of a write)."""

    shape, dtype = (600, 600), np.dtype(np.uint32)

    def __init__(self) -> None:
        self.reads = 0

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        self.reads += 1
        if self.reads > 3:
            raise OSError("read failed")
        return np.ones((key[0].stop - key[0].start, key[1].stop - key[1].start), np.uint32)


def test_an_error_leaves_the_old_output_and_no_partial_folder(tmp_path: Path) -> None:
    out = tmp_path / "labels.ome.zarr"
    write_label_pyramid(out, _labels((300, 300)), 1, chunk=128)
    with pytest.raises(OSError, match="read failed"):
        write_label_pyramid(out, _Failing(), 1, chunk=128)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.ome.zarr"]
    np.testing.assert_array_equal(zarr.open_array(str(out / "0"), mode="r")[:], _labels((300, 300)))
    write_label_pyramid(out, np.zeros((200, 100), np.uint32), 0, chunk=128)  # replaced when complete
    assert zarr.open_group(str(out), mode="r")["0"].shape == (200, 100)
    assert [p.name for p in tmp_path.iterdir()] == ["labels.ome.zarr"]
