"""cpbench synth: layout, metadata, pyramid, ground truth, determinism, streaming, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from cpbench.cli import main
from cpbench.io import files
from cpbench.synth.params import PRESETS, SceneParams
from cpbench.synth.scene import Scene

SMALL = ["--size", "300,260", "--tile", "64", "--quiet", "--no-preview"]


def synth(tmp_path: Path, *args: str, name: str = "img.ome.tif") -> Path:
    out = tmp_path / name
    assert main(["synth", *args, "--out", str(out)]) == 0
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(np.ascontiguousarray(tifffile.imread(path)).tobytes()).hexdigest()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_layout_and_ome_metadata(tmp_path: Path, preset: str) -> None:
    out = synth(tmp_path, preset, *SMALL, "--pixel-size", "0.325")
    c = PRESETS[preset][0]
    img = tifffile.imread(out)
    assert img.shape == (c, 300, 260) and img.dtype == np.uint16
    with tifffile.TiffFile(out) as tf:
        assert tf.is_ome
        s = tf.series[0]
        assert s.axes == "CYX" and s.shape == (c, 300, 260)
        page = s.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (64, 64)
        assert len(tf.pages) == c  # one page per channel, sub-resolutions hidden in SubIFDs
        pix = tifffile.xml2dict(tf.ome_metadata)["OME"]["Image"]["Pixels"]
        assert float(pix["PhysicalSizeX"]) == pytest.approx(0.325)
        assert float(pix["PhysicalSizeY"]) == pytest.approx(0.325)
        names = [ch["Name"] for ch in pix["Channel"]]
    assert len(names) == c
    assert all(names[i].startswith("DNA_") for i in range(0, c, 4))
    assert not any(n.startswith("DNA_") for i, n in enumerate(names) if i % 4)
    labels = tifffile.imread(out.with_name("img.labels.ome.tif"))
    assert labels.shape == (300, 260) and labels.dtype == np.uint32


def test_pyramid_levels_are_block_means(tmp_path: Path) -> None:
    out = synth(tmp_path, "--shape", "2,300,260", "--tile", "64", "--quiet")
    with tifffile.TiffFile(out) as tf:
        levels = tf.series[0].levels
        shapes = [lv.shape for lv in levels]
        assert shapes == [(2, 300, 260), (2, 150, 130), (2, 75, 65), (2, 38, 33)]
        assert all(lv.pages[0].is_tiled for lv in levels)
        l0, l1, l3 = levels[0].asarray(), levels[1].asarray(), levels[3].asarray()
    expect1 = np.rint(l0.reshape(2, 150, 2, 130, 2).mean(axis=(2, 4))).astype(np.uint16)
    np.testing.assert_array_equal(l1, expect1)
    # the last level is an 8x8 block mean; the ragged edge blocks are padded by replication
    pad = np.pad(l0, ((0, 0), (0, 304 - 300), (0, 264 - 260)), mode="edge").astype(np.float64)
    expect3 = np.rint(pad.reshape(2, 38, 8, 33, 8).mean(axis=(2, 4))).astype(np.uint16)
    np.testing.assert_array_equal(l3, expect3)


def test_ground_truth_is_connected_nuclei_visible_in_channel_0(tmp_path: Path) -> None:
    out = synth(tmp_path, "--shape", "4,512,512", "--tile", "128", "--quiet", "--tissue-fraction", "0.9",
                "--seed", "5")
    img = tifffile.imread(out)
    labels = tifffile.imread(out.with_name("img.labels.ome.tif"))
    ids = np.unique(labels)[1:]
    assert len(ids) > 300, "expected a dense slide"
    assert ids[0] >= 1 and ids[-1] <= len(ids) + 5, "ids are (nearly) contiguous from 1"
    objects = ndimage.find_objects(labels)
    on_edge = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    split_inside, split_edge = [], []
    for i, sl in enumerate(objects, start=1):
        if sl is not None and ndimage.label(labels[sl] == i)[1] != 1:
            (split_edge if i in on_edge else split_inside).append(i)
    assert split_inside == [], "every nucleus inside the frame is one connected region"
    # a nucleus centred outside the frame can show as two slivers where its neighbour cuts it
    assert len(split_edge) <= 0.02 * len(on_edge)
    dna = img[0].astype(np.float64)
    tissue = Scene((4, 512, 512), SceneParams(seed=5, tissue_fraction=0.9)).tissue(0, 0, 512, 512) > 0.5
    bg = dna[(labels == 0) & tissue & (ndimage.distance_transform_edt(labels == 0) > 3)]
    means = ndimage.mean(dna, labels, ids)
    visible = means > np.median(bg) + 5 * bg.std()
    assert visible.mean() > 0.97, f"only {visible.mean():.1%} of nuclei stand out in channel 0"
    # the other channels are not nuclear stains: nuclei are not their brightest objects
    cyto = img[1].astype(np.float64)
    assert ndimage.mean(cyto, labels > 0) < 2 * ndimage.mean(cyto, (labels == 0) & tissue)


def test_same_seed_same_pixels_and_independent_of_tiling(tmp_path: Path) -> None:
    args = ["--shape", "3,400,333", "--quiet", "--seed", "7"]
    a = synth(tmp_path, *args, "--tile", "64", name="a.ome.tif")
    b = synth(tmp_path, *args, "--tile", "64", name="b.ome.tif")
    c = synth(tmp_path, *args, "--tile", "128", "--compression", "none", name="c.ome.tif")
    d = synth(tmp_path, "--shape", "3,400,333", "--quiet", "--seed", "8", "--tile", "64", name="d.ome.tif")
    assert digest(a) == digest(b) == digest(c), "tiling must not change pixels (no seams)"
    la, lc = (p.with_name(p.name.replace(".ome.tif", ".labels.ome.tif")) for p in (a, c))
    assert digest(la) == digest(lc)
    assert digest(a) != digest(d)


def test_processes_make_the_same_files(tmp_path: Path) -> None:
    """Tiles rendered on 3 processes (nuclei counted on 3 too) are the bytes one process writes."""
    args = ["--shape", "3,400,333", "--quiet", "--seed", "5", "--tile", "64", "--no-preview"]
    one = synth(tmp_path, *args, "--workers", "1", name="one.ome.tif")
    three = synth(tmp_path, *args, "--workers", "3", name="three.ome.tif")
    for a, b in ((one, three), (one.with_name("one.labels.ome.tif"), three.with_name("three.labels.ome.tif"))):
        with tifffile.TiffFile(a) as ta, tifffile.TiffFile(b) as tb:
            assert len(ta.series[0].levels) == len(tb.series[0].levels)
            for la, lb in zip(ta.series[0].levels, tb.series[0].levels, strict=True):
                assert np.array_equal(la.asarray(), lb.asarray())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.labels.ome.tif", "one.ome.tif",
                                                          "three.labels.ome.tif", "three.ome.tif"]


def test_nuclei_crossing_tiles_are_whole() -> None:
    scene = Scene((1, 512, 512), SceneParams(seed=2, tissue_fraction=1.0))
    whole = scene.labels(0, 0, 512, 512)
    # render the same area as four windows that cut through nuclei and stitch them
    parts = np.block([[scene.labels(0, 0, 200, 300), scene.labels(0, 300, 200, 212)],
                      [scene.labels(200, 0, 312, 300), scene.labels(200, 300, 312, 212)]])
    np.testing.assert_array_equal(parts, whole)
    crossing = np.intersect1d(np.unique(whole[199]), np.unique(whole[200]))
    assert len(crossing) > 5, "the cut should go through nuclei"


def _peak_rss(tmp_path: Path, y: int, x: int) -> int:
    out = tmp_path / f"s{y}.ome.tif"
    cmd = [sys.executable, "-m", "cpbench.cli", "synth", "--size", f"{y},{x}", "--channels", "1", "--tile", "512",
           "--quiet", "--json", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return int(json.loads(res.stdout)["peak_rss_bytes"])


@pytest.mark.slow
def test_streaming_memory_is_flat(tmp_path: Path) -> None:
    small = _peak_rss(tmp_path, 1024, 1024)
    big = _peak_rss(tmp_path, 6144, 6144)  # 36x the pixels: image + labels would be 226 MB if held
    assert big - small < 60e6, f"peak RSS grew from {small / 1e6:.0f} MB to {big / 1e6:.0f} MB"


# ----- bad input: one line, exit 2, nothing written -----------------------------------------

BAD = [
    (["--shape", "1,100"], "3 whole numbers"),
    (["--shape", "1,a,100"], "whole numbers"),
    (["--shape", "0,100,100"], "too small"),
    (["--shape", "1,8,100"], "too small"),
    (["--shape", "1,300000,100"], "too large"),
    (["--size", "100,100", "--shape", "1,100,100"], "not both"),
    (["--shape", "1,100,100", "--channels", "3"], "--channels goes with --size"),
    ([], "say what to generate"),
    (["--size", "100,100", "--tile", "100"], "multiple of 16"),
    (["--size", "100,100", "--compression", "jpeg9"], "unknown --compression"),
    (["--size", "100,100", "--seed", "-1"], "seed must be >= 0"),
    (["--size", "100,100", "--density", "0"], "density must be"),
    (["--size", "100,100", "--diameter", "500"], "diameter_mean must be"),
    (["--size", "100,100", "--levels", "40"], "--levels must be"),
    (["--size", "100,100", "--workers", "0"], "--workers 0: give 1 or more"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    rc = main(["synth", *args, "--quiet", "--out", str(tmp_path / "x.ome.tif")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("cpbench: error: ") and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_bad_output_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--size", "64,64", "--quiet", "--out", str(tmp_path / "x.png")]) == 2
    assert "must end with .ome.tif" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = synth(tmp_path, "--size", "64,64", "--quiet")
    before = digest(out)
    assert main(["synth", "--size", "64,64", "--seed", "3", "--quiet", "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert digest(out) == before
    assert main(["synth", "--size", "64,64", "--seed", "3", "--quiet", "--overwrite", "--out", str(out)]) == 0
    assert digest(out) != before


def test_not_enough_disk(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    real = files.shutil.disk_usage

    def tiny(path: object) -> object:
        return real(path)._replace(free=1_000_000)

    monkeypatch.setattr(files.shutil, "disk_usage", tiny)
    assert main(["synth", "--size", "2000,2000", "--quiet", "--out", str(tmp_path / "x.ome.tif")]) == 2
    err = capsys.readouterr().err
    assert "not enough disk space" in err and "GB are free" in err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["synth", "--size", "64,64", "--quiet", "--out", str(blocker / "x.ome.tif")]) == 2
    assert "cannot write to" in capsys.readouterr().err


def test_failure_leaves_nothing_half_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = Scene.render

    def flaky(self: Scene, *a: object, **k: object) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk went away")
        return real(self, *a, **k)

    monkeypatch.setattr(Scene, "render", flaky)
    with pytest.raises(OSError):
        main(["synth", "--shape", "2,300,300", "--tile", "64", "--quiet", "--out", str(tmp_path / "x.ome.tif")])
    assert list(tmp_path.iterdir()) == [], "no final, partial or scratch files may remain"


def test_console_script_exit_code_and_info(tmp_path: Path) -> None:
    env = {**os.environ}
    bad = subprocess.run([sys.executable, "-m", "cpbench.cli", "synth", "--shape", "x"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("cpbench: error:")
    out = synth(tmp_path, "--shape", "4,200,200", "--tile", "64", "--quiet")
    info = subprocess.run([sys.executable, "-m", "cpbench.cli", "info", str(out), "--json"], capture_output=True,
                          text=True, check=True)
    d = json.loads(info.stdout)
    assert d["shape"] == [4, 200, 200] and d["channel_names"][0] == "DNA_1" and len(d["levels"]) == 3
    missing = subprocess.run([sys.executable, "-m", "cpbench.cli", "info", str(tmp_path / "nope.ome.tif")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_small_images_show_tissue_and_a_preview(tmp_path: Path, seed: int) -> None:
    out = tmp_path / "img.ome.tif"
    assert main(["synth", "--size", "256,256", "--seed", str(seed), "--quiet", "--out", str(out)]) == 0
    labels = tifffile.imread(tmp_path / "img.labels.ome.tif")
    assert len(np.unique(labels)) > 100, "tissue is placed at the image centre, as on a slide"
    png = tmp_path / "img.preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = __import__("matplotlib.pyplot", fromlist=["imread"]).imread(png)
    assert img.shape[1] > img.shape[0] * 2 and img[..., :3].std() > 0.05  # three panels, not blank
