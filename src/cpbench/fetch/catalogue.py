"""The three challenge images on Synapse, and where verified copies of them lie locally.

The images are the files of Synapse folder :data:`FOLDER_ID`; they are found there by file name at
fetch time (no Synapse ids are written down here). ``cpbench fetch`` records each verified download
in ``<dest>/manifest.json``; :func:`local_path` reads it, so benchmarks can use an image when it is
present and skip when it is not. Nothing here imports synapseclient.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpbench.errors import UserError
from cpbench.io.files import atomic_path

#: Synapse folder that holds the challenge images
FOLDER_ID = "syn26848688"
#: Synapse web portal, for links in messages
PORTAL = "https://www.synapse.org/#!Synapse:"
#: how to get a token, for messages
TOKEN_HELP = (
    "create a personal access token with view and download scopes at "
    "https://www.synapse.org/#!PersonalAccessTokens: and put it in SYNAPSE_AUTH_TOKEN "
    "(or as authtoken under [authentication] in ~/.synapseConfig)"
)
#: where ``cpbench fetch`` puts images unless told otherwise
DEFAULT_DEST = Path("data")
#: manifest file name inside the destination folder
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ChallengeImage:
    """One challenge image: short name, file name on Synapse, shape and rough size."""

    name: str  #: short name used on the command line
    file_name: str  #: file name in the Synapse folder and on local disk
    shape: tuple[int, int, int]  #: (C, Y, X), pixels
    approx_bytes: int  #: rough file size, bytes (the size Synapse reports is what counts)


IMAGES: dict[str, ChallengeImage] = {
    img.name: img
    for img in (
        ChallengeImage("exemplar-001", "exemplar-001.ome.tif", (12, 3138, 2509), 400 * 10**6),
        ChallengeImage("LUNG-1-LN", "LUNG-1-LN_40X.ome.tif", (44, 10101, 9666), 12 * 10**9),
        ChallengeImage("WD-76845-097", "WD-76845-097.ome.tif", (40, 27120, 26139), 80 * 10**9),
    )
}
#: valid names for ``cpbench fetch``, in order of size
NAMES: tuple[str, ...] = tuple(IMAGES)


def resolve_names(names: Iterable[str]) -> list[ChallengeImage]:
    """The images named (short name or file name, any case; ``all`` = every image), in order, once each.

    Raises :class:`UserError` naming the valid choices for an unknown name.
    """
    lookup = {}
    for img in IMAGES.values():
        lookup[img.name.lower()] = img
        lookup[img.file_name.lower()] = img
    chosen: list[ChallengeImage] = []
    for raw in names:
        key = raw.strip().lower()
        picked = list(IMAGES.values()) if key == "all" else [lookup.get(key)]
        if picked[0] is None:
            raise UserError(f"unknown image {raw!r}; choose from {', '.join(NAMES)} or all")
        chosen.extend(img for img in picked if img not in chosen)
    if not chosen:
        raise UserError(f"name at least one image: {', '.join(NAMES)} or all")
    return chosen


def manifest_path(dest: Path = DEFAULT_DEST) -> Path:
    """Path of the manifest of verified downloads in ``dest``."""
    return Path(dest) / MANIFEST_NAME


def read_manifest(dest: Path = DEFAULT_DEST) -> dict[str, Any]:
    """The manifest in ``dest`` (``{"files": {}}`` when there is none or it is unreadable)."""
    try:
        data = json.loads(manifest_path(dest).read_text())
    except (OSError, ValueError):
        return {"format": MANIFEST_FORMAT, "folder": FOLDER_ID, "files": {}}
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return {"format": MANIFEST_FORMAT, "folder": FOLDER_ID, "files": {}}
    return data


def write_manifest_entry(dest: Path, name: str, entry: dict[str, Any] | None) -> Path:
    """Set (or, with ``None``, drop) the manifest entry of image ``name`` in ``dest``, atomically.

    The manifest is re-read just before writing, written to a temporary file in the same folder and
    renamed over the old one, so a reader never sees a half-written manifest. Returns its path.
    """
    dest = Path(dest)
    data = read_manifest(dest)
    data["format"] = MANIFEST_FORMAT
    data["folder"] = FOLDER_ID
    if entry is None:
        data["files"].pop(name, None)
    else:
        data["files"][name] = entry
    final = manifest_path(dest)
    with atomic_path(final) as tmp, open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return final


def manifest_entry(name: str, dest: Path = DEFAULT_DEST) -> dict[str, Any] | None:
    """The manifest entry of image ``name`` in ``dest``, or ``None``."""
    entry = read_manifest(dest)["files"].get(name)
    return entry if isinstance(entry, dict) else None


def entry_matches_file(entry: dict[str, Any], path: Path) -> bool:
    """Whether ``path`` is still the file the entry recorded: same size (bytes) and modification time."""
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == entry.get("size_bytes") and st.st_mtime_ns == entry.get("mtime_ns")


def local_path(name: str, dest: Path = DEFAULT_DEST) -> Path | None:
    """The verified local copy of challenge image ``name`` (e.g. ``"exemplar-001"``), or ``None``.

    ``None`` when the image was never fetched into ``dest``, or its file was removed or changed since
    ``cpbench fetch`` verified it (different size or modification time). Benchmarks use this to run on
    the real image when it is present and to skip otherwise. Does not touch the network.
    """
    img = resolve_names([name])[0]
    entry = manifest_entry(img.name, dest)
    if entry is None:
        return None
    path = Path(dest) / str(entry.get("path", img.file_name))
    return path if entry_matches_file(entry, path) else None
