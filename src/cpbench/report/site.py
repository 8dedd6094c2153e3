"""An asv site that works with no network: its JavaScript and CSS libraries served from local copies.

asv's ``index.html`` loads jQuery, flot, flot-orderbars, stupidtable, blueimp-md5 and bootstrap from
CDNs; with no network the page is blank. :func:`vendor_assets` fetches those libraries once (at
setup) from the npm registry, each package pinned by version and by the registry's sha512 of its
tarball, and keeps the files under ``data/vendor/asv-site``. :func:`make_offline` copies them into a
published site (``.asv/html/vendor``) and points every CDN reference of its HTML pages at them, with
``integrity`` attributes computed from the files served. Nothing is fetched when the site is viewed.

Two libraries are not on npm as asv's CDN serves them: flot 0.8.3's npm package has the unminified
files (cdnjs serves minified ones it made), and stupidtable 1.0.1 is on npm only as
``stupid-table-plugin`` 1.1.3 (same ``$.fn.stupidtable`` API). Hence the recomputed integrity.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cpbench.errors import UserError
from cpbench.io.files import atomic_path

#: where the vendored files are kept (relative to the project root)
DEFAULT_VENDOR = Path("data/vendor/asv-site")
#: the npm registry; ``npm_config_registry`` (npm's own setting) points elsewhere, e.g. a mirror
DEFAULT_REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Package:
    """An npm package version, pinned by the registry's ``dist.integrity`` (sha512 of the tarball)."""

    name: str
    version: str
    integrity: str

    def tarball_url(self, registry: str) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.name}-{self.version}.tgz"

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"


JQUERY = Package("jquery", "3.3.1", "sha512-Ubldcmxp5np52/ENotGxlLe6aGMvmF4R8S6tZjsP6Knsaxd/xp3Zrh50cG93lR6nPXyUFwzN3ZSOQI0wRJNdGg==")
FLOT = Package("flot", "0.8.3", "sha512-xg2otcTJDvS+ERK+my4wxG/ASq90QURXtoM4LhacCq0jQW2jbyjdttbRNqU2cPykrpMvJ6b2uSp6SAgYAzj9tQ==")
ORDERBARS = Package("flot-orderbars", "1.0.0",
                    "sha512-Jv51fvzevUjNXEeozpwEKfPjhiZhfiJddv0WHjduUTCmSF+7T5K7C9c9Y1wIVmUhDBv5fLMjgbwKecT0GIKPZA==")
STUPIDTABLE = Package("stupid-table-plugin", "1.1.3",
                      "sha512-2Vk7XouQPxUQPRe9w0Fu7ZZ8kHLK7rDoLMsCgtKxRNJ7f4dSOGvW9CkHsq5wD6QsaEnWoyLBYH3xOEsrK3yWBg==")
MD5 = Package("blueimp-md5", "2.19.0", "sha512-DRQrD6gJyy8FbiE4s+bDoXS9hiW3Vbx5uCdwvcCf3zLHL+Iv7LtGHLpr+GZV8rHG8tK766FGYBwRbu8pELTt+w==")
BOOTSTRAP = Package("bootstrap", "3.1.1", "sha512-TAzqS8E/ISpVHP29gYhy+1NSV+FJwApDVQhDfgLYsIuUDJiqJzH2DfORN5tiu+Ie2iBLrzEG34t4Rf465cigqg==")

#: CDN address in asv's pages -> (package, file in its tarball); bootstrap's fonts ride along with its CSS
ASSETS: dict[str, tuple[Package, str]] = {
    "https://code.jquery.com/jquery-3.3.1.min.js": (JQUERY, "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": (FLOT, "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": (FLOT, "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": (FLOT, "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        (FLOT, "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": (ORDERBARS, "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": (STUPIDTABLE, "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": (MD5, "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": (BOOTSTRAP, "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": (BOOTSTRAP, "dist/css/bootstrap.min.css"),
}
EXTRA_FILES: dict[Package, list[str]] = {
    BOOTSTRAP: [f"dist/fonts/glyphicons-halflings-regular.{ext}" for ext in ("eot", "svg", "ttf", "woff")],
}


def _sri(data: bytes, algo: str = "sha384") -> str:
    """Subresource-integrity string of ``data`` (``sha384-<base64>``)."""
    return f"{algo}-" + base64.b64encode(hashlib.new(algo, data).digest()).decode()


def _files_of(pkg: Package) -> list[str]:
    return sorted({f for p, f in ASSETS.values() if p == pkg} | set(EXTRA_FILES.get(pkg, [])))


def _packages() -> list[Package]:
    seen: dict[str, Package] = {}
    for pkg, _ in ASSETS.values():
        seen.setdefault(pkg.folder, pkg)
    return list(seen.values())


def vendored(vendor: Path = DEFAULT_VENDOR) -> bool:
    """Whether every file the offline site needs is in ``vendor``."""
    return all((vendor / p.folder / f).is_file() for p in _packages() for f in _files_of(p))


def _download(url: str, timeout_s: float = 60.0) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - https registry address
            return bytes(r.read())
    except OSError as e:
        raise UserError(f"cannot fetch {url}: {e}; check the network or set npm_config_registry to a "
                        "reachable npm registry mirror") from e


def vendor_assets(vendor: Path = DEFAULT_VENDOR, registry: str | None = None) -> Path:
    """Fetch the site's libraries from the npm registry into ``vendor`` (once; nothing when present).

    Each tarball must match its pinned sha512, else :class:`UserError` and nothing is kept.
    Returns ``vendor``."""
    from tqdm import tqdm

    registry = registry or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY
    vendor.mkdir(parents=True, exist_ok=True)
    todo = [p for p in _packages() if not all((vendor / p.folder / f).is_file() for f in _files_of(p))]
    for pkg in tqdm(todo, desc="asv site libraries", unit="package", disable=not todo):
        url = pkg.tarball_url(registry)
        data = _download(url)
        got = _sri(data, "sha512")
        if got != pkg.integrity:
            raise UserError(f"{url} does not match its pinned checksum ({got} != {pkg.integrity}); "
                            "the registry or a mirror serves other bytes: refusing to use them")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for name in _files_of(pkg):
                member = tar.extractfile(f"package/{name}")
                if member is None:
                    raise UserError(f"{url} has no {name}")
                dest = vendor / pkg.folder / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(dest) as tmp:
                    tmp.write_bytes(member.read())
    return vendor


_TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(?P<url>https?://[^"]+)"[^>]*>')


def make_offline(html_dir: Path, vendor: Path = DEFAULT_VENDOR) -> list[str]:
    """Serve the vendored libraries from ``html_dir/vendor`` and point ``html_dir``'s pages at them.

    Every CDN ``<script>``/``<link>`` of the site's HTML pages is rewritten to the local copy with a
    recomputed ``integrity``; a CDN address this module does not know raises :class:`UserError`
    (the page would not work offline). Returns the addresses replaced (each once)."""
    html_dir = Path(html_dir)
    pages = sorted(html_dir.glob("*.html"))
    if not (html_dir / "index.html").is_file():
        raise UserError(f"no asv site in {html_dir} (index.html missing); run asv publish first")
    if not vendored(vendor):
        raise UserError(f"the site's libraries are not in {vendor}; run: cpbench site-assets (once, at setup)")
    replaced: set[str] = set()
    for pkg in _packages():
        for name in _files_of(pkg):
            dest = html_dir / "vendor" / pkg.folder / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(vendor / pkg.folder / name, dest)
    for page in pages:
        text = page.read_text(encoding="utf-8")

        def local(m: re.Match[str]) -> str:
            url = m.group("url")
            if url not in ASSETS:
                raise UserError(f"{page} loads {url}, which cpbench does not vendor; the page would not work offline")
            pkg, name = ASSETS[url]
            rel = f"vendor/{pkg.folder}/{name}"
            tag = m.group(0).replace(url, rel)
            sri = _sri((html_dir / rel).read_bytes())
            tag = re.sub(r'integrity="[^"]*"', f'integrity="{sri}"', tag)
            replaced.add(url)
            return tag

        new = _TAG.sub(local, text)
        if new != text:
            with atomic_path(page) as tmp:
                tmp.write_text(new, encoding="utf-8")
    return sorted(replaced)
