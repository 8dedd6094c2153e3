"""The asv site works with no network: a real asv site, real headless Chromium, every host but 127.0.0.1 cut off.

Chromium is required (Debian ``chromium``; ``make test`` installs it when it can): where it is missing
the browser test fails rather than skips, unless ``CPBENCH_ALLOW_NO_BROWSER=1`` (conftest's ``browser``).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cpbench.errors import UserError
from cpbench.report import site

BENCH = '''
def time_sum():
    sum(range(10000))

def track_value():
    return 42
track_value.unit = "bytes"
'''


@pytest.fixture(scope="module")
def asv_site(tmp_path_factory: pytest.TempPathFactory, asv_tools: Any) -> Path:
    """A real asv site: a tiny project with two commits, measured by asv and published."""
    root = asv_tools.project(tmp_path_factory.mktemp("asvproj"), {"bench_tiny": BENCH})
    asv_tools.run(root)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "second"], cwd=root, check=True,
                   env=asv_tools.GIT_ENV)
    asv_tools.run(root)
    subprocess.run([*asv_tools.ASV, "publish"], cwd=root, check=True, capture_output=True)
    return root / "html"


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vendored libraries: the project's (made at setup) or fetched now from the registry."""
    if site.vendored(site.DEFAULT_VENDOR):
        return site.DEFAULT_VENDOR
    return site.vendor_assets(tmp_path_factory.mktemp("vendor"))


@pytest.fixture()
def served(tmp_path: Path, asv_site: Path, browser: Any) -> Iterator[tuple[Path, str]]:
    """A copy of the site served on 127.0.0.1 (what asv preview does)."""
    html = tmp_path / "html"
    shutil.copytree(asv_site, html)
    with browser.serve(html) as base:
        yield html, base


@pytest.mark.slow
def test_site_draws_its_graph_offline(served: tuple[Path, str], vendor: Path, tmp_path: Path, browser: Any) -> None:
    html, base = served
    url = f"{base}/#bench_tiny.time_sum"
    before = browser.browse(url, tmp_path / "cdn.png")
    # asv's stock page: its libraries are on CDNs, so it gives up (the "swallow" error page)
    assert "flot-base" not in before and "continental origin" in before

    replaced = site.make_offline(html, vendor)
    assert len(replaced) == len(site.ASSETS)
    assert "https://cdn" not in (html / "index.html").read_text()
    dom = browser.browse(url, tmp_path / "offline.png")
    assert "continental origin" not in dom
    assert 'class="flot-base"' in dom, "no graph was drawn"
    assert "bench_tiny.time_sum" in dom
    shot = tmp_path / "offline.png"
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("CPBENCH_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(shot, keep)


def test_make_offline_refuses_unknown_cdn(tmp_path: Path, vendor: Path) -> None:
    (tmp_path / "index.html").write_text('<script src="https://cdn.example.org/x.js"></script>')
    with pytest.raises(UserError, match="does not vendor"):
        site.make_offline(tmp_path, vendor)
    with pytest.raises(UserError, match="run asv publish"):
        site.make_offline(tmp_path / "none", vendor)
    with pytest.raises(UserError, match="cpbench site-assets"):
        (tmp_path / "index.html").write_text("<html></html>")
        site.make_offline(tmp_path, tmp_path / "no-vendor")


def test_vendor_refuses_bytes_that_do_not_match_the_pin(tmp_path: Path, browser: Any) -> None:
    """A registry (here a local one) serving other bytes under a pinned version is refused; nothing is kept."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"alert('not jquery')"
        info = tarfile.TarInfo("package/dist/jquery.min.js")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    reg = tmp_path / "registry"
    for pkg in {p.folder: p for p, _ in site.ASSETS.values()}.values():
        dest = reg / pkg.name / "-" / f"{pkg.name}-{pkg.version}.tgz"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(buf.getvalue())
    with browser.serve(reg) as base, pytest.raises(UserError, match="does not match its pinned checksum"):
        site.vendor_assets(tmp_path / "v", registry=base)
    assert not any(p.is_file() for p in (tmp_path / "v").rglob("*"))
