"""Fixtures shared across test folders: a planted stage run through the real ``asv run``; headless
Chromium with no network (``browser``)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASV = [sys.executable, "-m", "asv"]
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


PLANTED = '''
import time
import numpy as np
from cpbench.measure import suite as _b

MIB = 1 << 20

class Planted(_b.Stage):
    """A stage that holds 256 MiB (touched) and sleeps 100 ms; its setup keeps 300 MiB alive.
    Its parameters look like a real stage's, so the report tools can read it as one."""
    params = (["synthetic"], ["256"])
    param_names = ["dataset", "size"]

    def setup_cache(self):
        return "planted"

    def prepare(self, dataset, size):
        self.setup_array = np.ones(300 * MIB, np.uint8)  # made in setup: must not count

    def run(self):
        a = np.ones(256 * MIB, np.uint8)
        time.sleep(0.1)
        return int(a[::4096].sum())
'''


def asv_project(proj: Path, benchmarks: dict[str, str], machine: str = "testbox") -> Path:
    """A tiny asv project in ``proj``: ``benchmarks/<name>.py`` files, a config, one git commit on
    ``main`` and the asv machine ``machine``. Returns ``proj``."""
    (proj / "benchmarks").mkdir(parents=True)
    (proj / "benchmarks" / "__init__.py").write_text("")
    for name, text in benchmarks.items():
        (proj / "benchmarks" / f"{name}.py").write_text(textwrap.dedent(text))
    conf = {"version": 1, "project": "planted", "repo": ".", "branches": ["main"], "benchmark_dir": "benchmarks",
            "results_dir": "results", "html_dir": "html", "environment_type": "virtualenv"}
    (proj / "asv.conf.json").write_text(json.dumps(conf))
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "."], ["git", "commit", "-qm", "planted"]):
        subprocess.run(cmd, cwd=proj, check=True, env=GIT_ENV)
    with machine_file_lock():
        subprocess.run([*ASV, "machine", "--yes", "--machine", machine], cwd=proj, check=True, capture_output=True)
    return proj


@contextlib.contextmanager
def machine_file_lock() -> Iterator[None]:
    """Hold an exclusive lock beside ``~/.asv-machine.json`` while ``asv machine`` rewrites it: make test
    runs tests on two workers, and two rewrites at once would drop one machine."""
    import fcntl

    with open(Path.home() / ".asv-machine.json.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def asv_run(proj: Path, *extra: str, machine: str = "testbox") -> None:
    """``asv run --python=same --quick`` of the project's HEAD; asserts it succeeded."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=proj, check=True, capture_output=True, text=True).stdout
    res = subprocess.run([*ASV, "run", "--python=same", "--quick", "--set-commit-hash", head.strip(),
                          "--machine", machine, *extra], cwd=proj, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.fixture(scope="session")
def asv_tools() -> types.SimpleNamespace:
    """The tiny-asv-project helpers for tests in any folder (``from conftest import`` would find another
    folder's conftest): ``project``, ``run``, ``ASV``, ``GIT_ENV``."""
    return types.SimpleNamespace(project=asv_project, run=asv_run, ASV=ASV, GIT_ENV=GIT_ENV)


@pytest.fixture(scope="session")
def planted_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the planted stage with the real `asv run` and read the results with asv's results API."""
    proj = asv_project(tmp_path_factory.mktemp("asvproj"), {"bench_preprocess": PLANTED})
    asv_run(proj, "--show-stderr")
    return proj


@pytest.fixture(scope="session")
def planted_results(planted_project: Path) -> dict[str, float]:
    """The planted stage's results, read with asv's own results API."""
    from asv.results import iter_results

    out: dict[str, float] = {}
    for r in iter_results(str(planted_project / "results" / "testbox")):
        for name in r.get_all_result_keys():
            out[name] = r.get_result_value(name, r.get_result_params(name))[0]  # the one param combination
    return out


@pytest.fixture
def umask022() -> Iterator[None]:
    """The process umask set to 022 (the usual default) for one test, then restored."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CPBENCH_ALLOW_NO_BROWSER") == "1":
        pytest.skip("no chromium and CPBENCH_ALLOW_NO_BROWSER=1")
    pytest.fail("chromium is not installed: apt-get install -y chromium (make test does it where it can)")


def browse(url: str, shot: Path) -> str:
    """Load ``url`` in headless Chromium with every host but 127.0.0.1 unresolvable; the final DOM.
    A screenshot goes to ``shot``."""
    common = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000",
              "--window-size=1200,900", f"--user-data-dir={shot.with_suffix('.profile')}"]  # a fresh profile: no cached page
    subprocess.run([*common, f"--screenshot={shot}", url], check=True, capture_output=True, timeout=120)
    out = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120)
    return out.stdout


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` served on 127.0.0.1 (what asv preview does); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def browser() -> types.SimpleNamespace:
    """Real headless Chromium, offline (required: fails, not skips, where it is missing unless
    ``CPBENCH_ALLOW_NO_BROWSER=1``): ``browse(url, shot) -> DOM``, ``serve(folder)`` (a context manager
    yielding the base URL), ``Quiet`` (a silent request handler)."""
    return types.SimpleNamespace(browse=browse, serve=serve, Quiet=_Quiet)
