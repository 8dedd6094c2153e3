"""`cpbench segment` end to end on a synthetic slide with the reference model, on a real dask
LocalCluster of two workers and on an existing scheduler: labels agree with whole-image eval, the
pyramid holds labels (not averages), the seam report is written, a re-run resumes (into OME-Zarr), a
block that cannot be read fails the run with one line after its retries, and bad input is a one-line
error with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from cpbench.cli import main

SHAPE = (4, 600, 700)  # channels, Y, X: a 3 x 3 grid of 256 px blocks
DIAMETER = 13.0


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cpbench.synth.writer import generate

    path = tmp_path_factory.mktemp("seg") / "slide.ome.tif"
    generate(path, SHAPE, progress=False)
    return path


@pytest.fixture(scope="module")
def segmented(slide: Path) -> tuple[Path, Path]:
    out = slide.with_name("labels.ome.tif")
    work = slide.with_name("work")
    rc = main(["segment", str(slide), "--channel", "0", "--out", str(out), "--block", "256", "--diameter",
               str(DIAMETER), "--workers", "2", "--threads", "1", "--no-progress", "--work", str(work), "--keep-work"])
    assert rc == 0
    shutil.copytree(work, slide.with_name("work-copy"))  # for the run on an existing scheduler
    return out, work


def _ap(a: np.ndarray, b: np.ndarray) -> float:
    from cpbench import stages as cs

    return float(cs.average_precision(a, b, (0.5,))[0])


@pytest.fixture(scope="module")
def whole(slide: Path) -> np.ndarray:
    """Whole-image Cellpose eval of the channel, in this process."""
    from cpbench import stages as cs
    from cpbench.models import registry

    img = cs.read_region(slide, 0, 0, 0, SHAPE[1], SHAPE[2])
    return cs.eval_end_to_end(registry.load("reference"), img, DIAMETER)


def test_blockwise_labels_agree_with_whole_image_eval(slide: Path, segmented: tuple[Path, Path],
                                                      whole: np.ndarray) -> None:
    from cpbench.synth.writer import labels_path

    out, _ = segmented
    labels = tifffile.imread(out)
    truth = tifffile.imread(labels_path(slide))
    truth = truth[0] if truth.ndim == 3 else truth
    assert labels.shape == SHAPE[1:] and labels.dtype == np.uint32
    assert len(np.unique(labels)) - 1 == int(labels.max())  # ids 1..n, unique
    agreement = _ap(whole, labels)
    print(f"AP@0.5 blockwise vs whole {agreement:.4f}; vs truth {_ap(truth, labels):.4f} "
          f"(whole vs truth {_ap(truth, whole):.4f}); {labels.max()} vs {whole.max()} labels")
    assert agreement >= 0.99
    assert _ap(truth, labels) >= _ap(truth, whole) - 0.005


def test_a_block_larger_than_the_slide_is_whole_image_eval(slide: Path, whole: np.ndarray, tmp_path: Path) -> None:
    out = tmp_path / "whole.ome.tif"
    assert main(["segment", str(slide), "--out", str(out), "--block", "100000", "--diameter", str(DIAMETER),
                 "--workers", "1", "--no-progress"]) == 0
    labels = tifffile.imread(out)
    assert labels.max() == whole.max() and _ap(whole, labels) >= 0.999


def test_pyramid_levels_sample_labels(segmented: tuple[Path, Path]) -> None:
    out, _ = segmented
    with tifffile.TiffFile(out) as tf:
        levels = tf.series[0].levels
        l0, l1 = levels[0].asarray(), levels[1].asarray()
        assert tf.pages[0].is_tiled
    np.testing.assert_array_equal(l1, l0[::2, ::2])  # never an average of two ids


def test_seam_report_counts_every_seam(segmented: tuple[Path, Path]) -> None:
    out, _ = segmented
    doc = json.loads(out.with_name("labels.seams.json").read_text())
    assert len(doc["seams"]) == 3 * 2 * 2 + 2 * 2 * 2  # 3 x 3 blocks: right, below, two diagonals
    assert doc["outcome"]["seams"]["matched"] > 0
    assert doc["outcome"]["labels"] == int(tifffile.imread(out).max())
    assert doc["outcome"]["workers"] == 2  # both LocalCluster workers segmented blocks
    assert doc["device"] == "cpu" and doc["eval"] == {"batch_size": 1}  # the CPU default, recorded
    blocks = doc["blocks"]
    assert [b["index"] for b in blocks] == [[r, c] for r in range(3) for c in range(3)]
    assert sum(b["objects"] for b in blocks) == doc["outcome"]["objects"] and all(b["seconds"] > 0 for b in blocks)
    assert blocks[4]["read"] == [256 + 2 * 26, 256 + 2 * 26]  # the middle block reads its overlap on every side
    peaks = {b["pid"]: b["worker_peak_bytes"] for b in blocks}
    assert len(peaks) == 2 and all(p > 200e6 for p in peaks.values())  # torch + Cellpose in each worker
    assert doc["peak_bytes"]["workers"] == sum(peaks.values()) and doc["peak_bytes"]["client"] > 100e6


def test_the_report_reads_the_seam_report(segmented: tuple[Path, Path]) -> None:
    from cpbench.report.recorded import load_seam_report, segment_section

    out, _ = segmented
    run = load_seam_report(out.with_name("labels.seams.json"))
    assert (run.shape, run.blocks, run.workers, len(run.block_seconds)) == (SHAPE[1:], 9, 2, 9)
    sec = segment_section([run], [])
    assert sec.table is not None and sec.table[1][:5] == ["labels", "0.4", "256", "9", "2"]
    assert f"{SHAPE[1]} x {SHAPE[2]} px (0.4 MP) in 9 blocks of 256 px on 2 worker(s)" in sec.statements[0]
    assert "the workers' peak together at most" in sec.statements[0] and not sec.missing


def test_an_existing_scheduler_runs_the_same_work(slide: Path, segmented: tuple[Path, Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from distributed import LocalCluster

    out, _ = segmented
    work = slide.with_name("work-copy")
    (work / "tables" / "1_1.npz").unlink()  # the middle block is segmented again, on that cluster
    other = out.with_name("scheduled.ome.tif")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        rc = main(["segment", str(slide), "--out", str(other), "--block", "256", "--diameter", str(DIAMETER),
                   "--scheduler", cluster.scheduler_address, "--no-progress", "--work", str(work)])
    assert rc == 0 and "8 resumed" in capsys.readouterr().out
    a, b = tifffile.imread(other), tifffile.imread(out)
    assert a.max() == b.max() and _ap(a, b) >= 0.999


def test_seam_picture_marks_the_labels_the_other_image_lacks(slide: Path, segmented: tuple[Path, Path],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib.image as mpimg

    out, _ = segmented
    labels = tifffile.imread(out)
    view = labels[128:384, 128:384]  # the default region: 256 px around the block corner (256, 256)
    gone = int(np.unique(view[view > 0])[len(np.unique(view[view > 0])) // 2])
    other = out.with_name("other.tif")
    tifffile.imwrite(other, np.where(labels == gone, 0, labels))
    png = out.with_name("seam.png")
    assert main(["seam-picture", str(out), "--image", str(slide), "--against", str(other), "--out", str(png)]) == 0
    n = len(np.unique(view)) - 1
    assert f"y 128..384, x 128..384 px: {n} labels, 1 unmatched; {n - 1} labels, 0 unmatched" in capsys.readouterr().out
    assert mpimg.imread(png).shape[:2] == (726, 1364)
    assert main(["seam-picture", str(out), "--image", str(slide), "--at", "1;2", "--out", str(png)]) == 2
    assert main(["seam-picture", str(other), "--image", str(slide), "--out", str(png)]) == 2
    assert "seam report" in capsys.readouterr().err


def test_a_rerun_resumes_from_the_blocks_done(slide: Path, segmented: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import zarr

    out, work = segmented
    again = out.with_name("again.ome.zarr")
    rc = main(["segment", str(slide), "--out", str(again), "--block", "256", "--diameter", str(DIAMETER),
               "--workers", "1", "--no-progress", "--work", str(work)])
    assert rc == 0 and "9 resumed" in capsys.readouterr().out
    root = zarr.open_group(str(again), mode="r")
    l0 = tifffile.imread(out)
    np.testing.assert_array_equal(root["0"][:], l0)
    assert [d["path"] for d in root.attrs["multiscales"][0]["datasets"]] == ["0", "1"]  # as the OME-TIFF's
    np.testing.assert_array_equal(root["1"][:], l0[::2, ::2])
    assert json.loads(again.with_name("again.seams.json").read_text())["outcome"]["resumed"] == 9
    assert not work.exists()  # removed after success without --keep-work


def test_a_damaged_tile_fails_the_run_in_one_line_naming_it(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """capfd: what the worker processes print reaches this test too (their stderr is this process's)."""
    from cpbench.synth.writer import OutputOptions, generate

    slide = tmp_path / "slide.ome.tif"
    generate(slide, (4, 300, 300), options=OutputOptions(tile=128), progress=False)
    with tifffile.TiffFile(slide) as tf:  # channel 0's middle tile, 128..256 px: garbage
        page = tf.series[0].pages[0]
        offset, size = page.dataoffsets[4], page.databytecounts[4]
    with open(slide, "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)
    out, work = tmp_path / "labels.ome.tif", tmp_path / "work"
    rc = main(["segment", str(slide), "--out", str(out), "--block", "128", "--overlap", "20", "--workers", "1",
               "--no-progress", "--work", str(work)])
    captured = capfd.readouterr()
    err = captured.err.strip()
    assert rc == 2 and "\n" not in err, err
    # the tile is named, and the file (not the run) is what needs mending: no advice to re-run
    assert f"{slide} is damaged at level 0, channel 0, y 128..256, x 128..256 px: that tile does not decode " \
           "(DeflateError" in err and "(block (1, 1), histogram)" in err
    assert "re-download" in err and "re-run" not in err
    assert "Traceback" not in captured.out + captured.err  # the workers' tracebacks went to the log it names
    log = work / "segment.log"
    assert f"worker tracebacks: {log}" in err and "DeflateError" in log.read_text()
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--channel", "9"], "out of range"),
    (["--block", "64", "--overlap", "40"], "too small for an overlap"),
    (["--overlap", "x"], "'auto' or a whole number"),
    (["--batch-size", "0"], "--batch-size 0: give 1 or more"),
])
def test_bad_input_is_one_line(slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                               words: str) -> None:
    out = tmp_path / "l.ome.tif"
    assert main(["segment", str(slide), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and not list(tmp_path.iterdir())


def test_bad_files_are_one_line(slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    text = tmp_path / "notes.ome.tif"
    text.write_text("not a tiff")
    cases = [([str(text), "--out", str(tmp_path / "a.ome.tif")], "not a readable TIFF"),
             ([str(slide), "--out", str(tmp_path / "a.png")], "ending .ome.tif"),
             ([str(slide), "--out", str(tmp_path / "missing" / "a.ome.tif")], "does not exist"),
             ([str(slide), "--out", str(text)], "exists: pass --overwrite")]
    for args, words in cases:
        assert main(["segment", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.ome.tif"]
