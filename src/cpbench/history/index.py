"""Release source distributions straight from the package index pip is configured for.

``pip download --no-binary :all:`` prepares each sdist's metadata in a build environment of its own
before saving it: measured here 6 to 9 s of CPU per Cellpose release (31 releases: 302 s with a warm
pip cache), while the file itself downloads in about half a second. The history only needs the file,
so it reads the index's JSON page (PEP 691: file names, URLs, sha256 hashes), downloads the sdists a
few at a time and checks each hash. The index is pip's own (``PIP_INDEX_URL``, else ``pip config``'s
``index-url``, else PyPI), so a mirror configured for pip is used here as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple"
_JSON = "application/vnd.pypi.simple.v1+json"
#: seconds to wait for the index or a file before giving up on this route
TIMEOUT_S = 60.0


class IndexUnavailable(Exception):
    """The direct route cannot serve this file; the caller falls back to ``pip download``."""


def pip_index_url() -> str:
    """The index pip would use: ``$PIP_INDEX_URL``, else pip's configured ``index-url``
    (download, then global section), else PyPI's simple index."""
    if os.environ.get("PIP_INDEX_URL"):
        return os.environ["PIP_INDEX_URL"].rstrip("/")
    for key in ("download.index-url", "global.index-url"):
        res = subprocess.run([sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip().rstrip("/")
    return DEFAULT_INDEX


def sdist_links(package: str, index: str) -> dict[str, tuple[str, str]]:
    """``{file name: (url, sha256)}`` of ``package``'s ``.tar.gz`` files on ``index`` (its PEP 691
    JSON page); :class:`IndexUnavailable` when the index does not answer in JSON."""
    req = urllib.request.Request(f"{index}/{package}/", headers={"Accept": _JSON})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
            if not resp.headers.get("Content-Type", "").startswith(_JSON):
                raise IndexUnavailable(f"{index} does not serve PEP 691 JSON")
            page = json.load(resp)
    except (OSError, ValueError) as exc:
        raise IndexUnavailable(str(exc)) from None
    out = {}
    for f in page.get("files", []):
        name, sha = f.get("filename", ""), (f.get("hashes") or {}).get("sha256")
        if name.endswith(".tar.gz") and sha and not f.get("yanked"):
            out[name] = (urllib.parse.urljoin(f"{index}/{package}/", f["url"]), sha)
    return out


def fetch(url: str, sha256: str, dest: Path) -> Path:
    """Download ``url`` to ``dest`` (a file path), checking its sha256; :class:`IndexUnavailable`
    on any failure (nothing is left at ``dest``)."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(dest, "wb") as out:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:  # URLError is one
        dest.unlink(missing_ok=True)
        raise IndexUnavailable(str(exc)) from None
    if digest.hexdigest() != sha256:
        dest.unlink(missing_ok=True)
        raise IndexUnavailable(f"{dest.name}: sha256 differs from the index's")
    return dest


def prefetch(package: str, versions: Iterable[str], folder: Path, workers: int = 4) -> dict[str, Future[Path]]:
    """Start downloading the sdist of each of ``versions`` into ``folder/<version>/`` on ``workers``
    threads; ``{version: future of its path}``. A version the direct route cannot serve (no JSON
    index, no such file, network or hash error) gets a future that raises :class:`IndexUnavailable`."""
    versions = list(versions)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sdist")
    try:
        links = sdist_links(package, pip_index_url())
    except IndexUnavailable as exc:
        links, why = {}, str(exc)
    else:
        why = ""

    def one(version: str) -> Path:
        name = f"{package}-{version}.tar.gz"
        if name not in links:
            raise IndexUnavailable(why or f"{name} is not on the index")
        (folder / version).mkdir(parents=True, exist_ok=True)
        return fetch(*links[name], folder / version / name)

    futures = {v: pool.submit(one, v) for v in versions}
    pool.shutdown(wait=False)
    return futures
