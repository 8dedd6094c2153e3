"""`cpbench segment` end to end on a synthetic slide with the reference model, on a real dask
LocalCluster: labels agree with whole-image eval, the pyramid holds labels (not averages), the seam
report is written, a re-run resumes, and bad input is a one-line error with nothing written."""

from __future__ import annotations

import json
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
               str(DIAMETER), "--workers", "1", "--threads", "2", "--no-progress", "--work", str(work), "--keep-work"])
    assert rc == 0
    return out, work


def _ap(a: np.ndarray, b: np.ndarray) -> float:
    from cpbench import stages as cs

    return float(cs.average_precision(a, b, (0.5,))[0])


def test_blockwise_labels_agree_with_whole_image_eval(slide: Path, segmented: tuple[Path, Path]) -> None:
    from cpbench import stages as cs
    from cpbench.models import registry
    from cpbench.synth.writer import labels_path

    out, _ = segmented
    labels = tifffile.imread(out)
    img = cs.read_region(slide, 0, 0, 0, SHAPE[1], SHAPE[2])
    whole = cs.eval_end_to_end(registry.load("reference"), img, DIAMETER)
    truth = tifffile.imread(labels_path(slide))
    truth = truth[0] if truth.ndim == 3 else truth
    assert labels.shape == SHAPE[1:] and labels.dtype == np.uint32
    assert len(np.unique(labels)) - 1 == int(labels.max())  # ids 1..n, unique
    agreement = _ap(whole, labels)
    print(f"AP@0.5 blockwise vs whole {agreement:.4f}; vs truth {_ap(truth, labels):.4f} "
          f"(whole vs truth {_ap(truth, whole):.4f}); {labels.max()} vs {whole.max()} labels")
    assert agreement >= 0.99
    assert _ap(truth, labels) >= _ap(truth, whole) - 0.005


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


def test_a_rerun_resumes_from_the_blocks_done(slide: Path, segmented: tuple[Path, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out, work = segmented
    again = out.with_name("again.ome.tif")
    rc = main(["segment", str(slide), "--out", str(again), "--block", "256", "--diameter", str(DIAMETER),
               "--workers", "1", "--no-progress", "--work", str(work)])
    assert rc == 0 and "9 resumed" in capsys.readouterr().out
    np.testing.assert_array_equal(tifffile.imread(again), tifffile.imread(out))
    assert not work.exists()  # removed after success without --keep-work


@pytest.mark.parametrize("args, words", [
    (["--channel", "9"], "out of range"),
    (["--block", "64", "--overlap", "40"], "too small for an overlap"),
    (["--overlap", "x"], "'auto' or a whole number"),
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
