"""The slide opener every command uses (cpbench.io.slide): damaged and wrong files are one line each, up
front (truncated, a folder, not a TIFF, other axes), and a fuzz test (hypothesis) that mutates the header,
IFD entries, tile offsets and byte counts, the OME-XML and the length of small valid slides, and runs the
opener and `cpbench info` on each: never a traceback, never a hang, never an allocation beyond a bound."""

from __future__ import annotations

import contextlib
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpbench.cli import main
from cpbench.errors import UserError
from cpbench.io.slide import open_slide

#: a fuzz case may take this long (seconds) and allocate this much (bytes, Python and NumPy)
CASE_SECONDS, CASE_BYTES = 10, 64 * 2**20
#: how many mutated slides each fuzz strategy tries
EXAMPLES = 150


def _slide(path: Path, shape: tuple[int, int, int] = (2, 96, 80), tile: int = 32) -> Path:
    from cpbench.synth.writer import OutputOptions, generate

    generate(path, shape, options=OutputOptions(tile=tile), progress=False)
    return path


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _slide(tmp_path_factory.mktemp("slide") / "slide.ome.tif")


def test_a_valid_slide_opens(valid: Path) -> None:
    s = open_slide(valid, channel=1, integer=True)
    assert (s.shape, s.channels, s.tile, s.axes, s.dtype) == ((96, 80), 2, (32, 32), "CYX", "uint16")
    assert s.needed_bytes <= s.file_bytes == valid.stat().st_size and len(s.levels) >= 2


def _error(path: Path, **kw: object) -> str:
    with pytest.raises(UserError) as e:
        open_slide(path, **kw)  # type: ignore[arg-type]
    text = str(e.value)
    assert "\n" not in text
    return text


def test_wrong_and_damaged_files_are_one_line_each(valid: Path, tmp_path: Path) -> None:
    trunc = tmp_path / "trunc.ome.tif"
    data = valid.read_bytes()
    trunc.write_bytes(data[: len(data) // 3])
    text = _error(trunc)
    assert text.startswith(f"{trunc} is truncated: it has ") and "bytes missing" in text
    folder = tmp_path / "dir.ome.tif"
    folder.mkdir()
    assert "is a folder, not a slide file" in _error(folder)
    empty = tmp_path / "empty.ome.tif"
    empty.touch()
    assert "is empty (0 bytes)" in _error(empty)
    png = tmp_path / "png.ome.tif"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert "is not a readable TIFF (it starts with b'\\x89PNG" in _error(png)
    assert "--channel 5 is out of range" in _error(valid, channel=5)
    stack = tmp_path / "zcyx.ome.tif"
    tifffile.imwrite(stack, np.zeros((2, 3, 64, 64), np.uint16), metadata={"axes": "ZCYX"})
    assert "has axes ZCYX" in _error(stack)
    assert open_slide(stack, planes=False).channels == 6  # cpbench info describes it
    f64 = tmp_path / "f64.ome.tif"
    tifffile.imwrite(f64, np.zeros((64, 64)), tile=(32, 32))
    assert "holds float64 pixels" in _error(f64, integer=True)


def test_a_truncated_copy_is_named_so_up_front(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The file ends inside its last tiles (the header whole): the tiles' own offsets and byte counts say so
    before any pixel is read, and cpbench segment stops before a cluster starts, writing nothing."""
    slide = _slide(tmp_path / "slide.ome.tif", (1, 256, 256), 64)
    with tifffile.TiffFile(slide) as tf:
        last = max(int(o + n) for p in tf.series[0].pages for o, n in zip(p.dataoffsets, p.databytecounts))
    data = slide.read_bytes()
    cut = tmp_path / "cut.ome.tif"
    cut.write_bytes(data[: last - 10])
    text = _error(cut)
    assert f"{cut} is truncated: it has {last - 10:,} bytes but its tiles reach to byte" in text
    assert "re-download" in text
    out = tmp_path / "labels.ome.tif"
    assert main(["segment", str(cut), "--out", str(out), "--no-progress"]) == 2
    err = capfd.readouterr().err.strip()
    assert "is truncated" in err and "\n" not in err and "re-run" not in err
    assert main(["info", str(cut)]) == 2 and "is truncated" in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.ome.tif", "slide.labels.ome.tif", "slide.ome.tif"]


def test_a_benchmark_skips_a_damaged_challenge_image_with_the_reason(valid: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetched image damaged in place (same size and time as when fetched): the benchmark's dataset input
    says so as an asv skip, not a decoder's traceback in the middle of a run."""
    from cpbench.fetch.catalogue import write_manifest_entry
    from cpbench.measure.inputs import real_image

    data = tmp_path / "data"
    data.mkdir()
    f = data / "exemplar-001.ome.tif"
    raw = bytearray(valid.read_bytes())
    raw[:4] = b"\x00\x00\x00\x00"  # the header gone, the size kept
    f.write_bytes(bytes(raw))
    st = f.stat()
    write_manifest_entry(data, "exemplar-001", {"file_name": f.name, "path": f.name, "size_bytes": st.st_size,
                                                "mtime_ns": st.st_mtime_ns})
    monkeypatch.setenv("CPBENCH_DATA", str(data))
    with pytest.raises(NotImplementedError, match=r"^skipped: .*exemplar-001.ome.tif is not a readable TIFF"):
        real_image("exemplar-001")


# --- fuzz --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _bounded() -> Iterator[None]:
    """No case may run longer than CASE_SECONDS or allocate more than CASE_BYTES (Python and NumPy)."""
    def stop(*_: object) -> None:
        raise TimeoutError(f"a case ran longer than {CASE_SECONDS} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(CASE_SECONDS)
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        assert peak < CASE_BYTES, f"a case allocated {peak / 2**20:.0f} MiB"
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _fields(path: Path) -> list[tuple[int, int, int]]:
    """(file position, item size, count) of the first page's dimension, offset, byte-count and
    description entries: what the mutations aim at."""
    out = []
    with tifffile.TiffFile(path) as tf:
        for page in (tf.pages[0], tf.pages[1]):
            for name in ("ImageWidth", "ImageLength", "TileWidth", "TileOffsets", "TileByteCounts", "SubIFDs",
                         "ImageDescription"):
                tag = page.tags.get(name)
                if tag is not None:
                    size = max(1, tag.valuebytecount // max(tag.count, 1))
                    out.append((tag.valueoffset, size, tag.count))
    return out


def _check(data: bytes, path: Path) -> None:
    """The opener and cpbench info on ``data``: a description or one line, never anything else."""
    path.write_bytes(data)
    with _bounded():
        try:
            open_slide(path)
        except UserError as exc:
            assert "\n" not in str(exc)
        rc = main(["info", str(path)])
        assert rc in (0, 2)


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                database=None, derandomize=True)


class Seed(tuple):  # type: ignore[type-arg]
    """(the valid slide's bytes, the fields to mutate), with a short repr for hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<slide of {len(self[0])} bytes, {len(self[1])} fields>"


@pytest.fixture(scope="module")
def seed(valid: Path) -> Seed:
    return Seed((valid.read_bytes(), _fields(valid)))


@FUZZ
@given(st.data())
def test_fuzz_ifd_entries(seed: Seed, tmp_path: Path, data: st.DataObject) -> None:
    raw, fields = seed
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        pos, size, count = data.draw(st.sampled_from(fields))
        i = data.draw(st.integers(0, max(count - 1, 0)))
        value = data.draw(st.one_of(st.integers(0, 2**(8 * size) - 1), st.sampled_from([0, 1, 2**(8 * size) - 1,
                                                                                           len(raw), len(raw) * 4])))
        at = pos + i * size
        if at + size <= len(buf):
            buf[at:at + size] = (int(value) % 2**(8 * size)).to_bytes(size, "little")
    _check(bytes(buf), tmp_path / "m.ome.tif")


@FUZZ
@given(st.data())
def test_fuzz_header_bytes_and_length(seed: Seed, tmp_path: Path,
                                      data: st.DataObject) -> None:
    raw, _ = seed
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, min(len(buf), 4096) - 1))  # the header, IFDs and OME-XML lie up front
        buf[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.just(len(buf)), st.integers(0, len(buf))))
    _check(bytes(buf[:cut]), tmp_path / "m.ome.tif")


class Levels(tuple):  # type: ignore[type-arg]
    """(the valid slide's OME-XML, its levels' pixels), with a short repr for hypothesis' reports."""

    def __repr__(self) -> str:
        return f"<OME-XML of {len(self[0])} characters, {len(self[1])} levels>"


@pytest.fixture(scope="module")
def levels(valid: Path) -> Levels:
    with tifffile.TiffFile(valid) as tf:
        return Levels((tf.ome_metadata or "", [lvl.asarray() for lvl in tf.series[0].levels]))


@FUZZ
@given(st.sampled_from(["SizeX", "SizeY", "SizeC", "SizeZ", "SizeT", "PhysicalSizeX", "Type", "DimensionOrder",
                        "BigEndian", "Name"]),
       st.sampled_from(["1000000000000", "-1", "0", "nan", "x" * 40, "", "99999999999999999999", "<", "&amp;"]))
def test_fuzz_ome_xml(levels: Levels, tmp_path: Path, attr: str, value: str) -> None:
    """A slide whose OME-XML claims other sizes, types or orders than its pixels (written whole by tifffile,
    so that only the XML lies)."""
    xml, arrays = levels
    start = xml.find(f'{attr}="')
    if start < 0:
        return
    end = xml.find('"', start + len(attr) + 2)
    mutated = xml[:start] + f'{attr}="{value}"' + xml[end + 1:]
    path = tmp_path / "m.ome.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(arrays[0], tile=(32, 32), subifds=len(arrays) - 1, description=mutated.encode(), metadata=None)
        for a in arrays[1:]:
            tw.write(a, tile=(32, 32), subfiletype=1, metadata=None)
    _check(path.read_bytes(), path)
