"""Find the challenge images in the Synapse folder by name and read what Synapse says of each file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cpbench.errors import UserError
from cpbench.fetch.catalogue import FOLDER_ID, PORTAL, TOKEN_HELP, ChallengeImage
from cpbench.fetch.errors import to_user_error
from cpbench.fetch.session import Session

#: listing bounds: pages per folder, folders visited, folder depth below FOLDER_ID
MAX_PAGES = 100
MAX_FOLDERS = 25
MAX_DEPTH = 2


@dataclass(frozen=True)
class RemoteFile:
    """A challenge image as Synapse describes it."""

    image: ChallengeImage
    synapse_id: str
    version: int
    file_handle_id: str
    size_bytes: int  #: contentSize, bytes
    md5: str | None  #: contentMd5 (hex), None if Synapse has none
    storage: str  #: file handle concreteType, e.g. ``...S3FileHandle``
    unmet_terms: bool = False  #: the entity has access requirements this user has not met


async def _list_children(session: Session, parent: str) -> list[dict[str, Any]]:
    body: dict[str, Any] = {
        "parentId": parent, "includeTypes": ["file", "folder"], "sortBy": "NAME", "sortDirection": "ASC",
    }
    out: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        resp = await session.syn.rest_post_async(
            "/entity/children", body=json.dumps(body), retry_policy=session.retry.policy()
        )
        out.extend(resp.get("page") or [])
        token = resp.get("nextPageToken")
        if not token:
            return out
        body["nextPageToken"] = token
    raise UserError(f"the listing of Synapse folder {parent} did not end after {MAX_PAGES} pages; report it")


async def _find_files(session: Session, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Children of FOLDER_ID (breadth first, sub-folders down to MAX_DEPTH) whose names are wanted."""
    found: dict[str, dict[str, Any]] = {}
    seen_names: list[str] = []
    queue: list[tuple[str, int]] = [(FOLDER_ID, 0)]
    visited = 0
    while queue and visited < MAX_FOLDERS and not wanted <= found.keys():
        parent, depth = queue.pop(0)
        visited += 1
        for child in await _list_children(session, parent):
            name = str(child.get("name", ""))
            kind = str(child.get("type", ""))
            if kind.endswith("FileEntity"):
                seen_names.append(name)
                if name in wanted and name not in found:
                    found[name] = child
            elif kind.endswith("Folder") and depth < MAX_DEPTH:
                queue.append((str(child["id"]), depth + 1))
    missing = sorted(wanted - found.keys())
    if missing:
        have = ", ".join(sorted(seen_names)[:12]) or "no files"
        raise UserError(
            f"{', '.join(missing)} not found in Synapse folder {FOLDER_ID} (it has: {have}); "
            f"the folder may have changed: check {PORTAL}{FOLDER_ID}"
        )
    return found


async def resolve_remote(session: Session, images: list[ChallengeImage]) -> list[RemoteFile]:
    """Find each image by file name in the challenge folder and describe its file (:class:`RemoteFile`)."""
    what = f"Synapse folder {FOLDER_ID}"
    try:
        found = await _find_files(session, {img.file_name for img in images})
        out = []
        for img in images:
            what = f"{img.file_name} ({found[img.file_name]['id']})"
            out.append(await _describe(session, img, str(found[img.file_name]["id"])))
        return out
    except UserError:
        raise
    except Exception as exc:
        raise to_user_error(session, exc, what) from None


async def _describe(session: Session, img: ChallengeImage, syn_id: str) -> RemoteFile:
    request = {"includeEntity": True, "includeFileHandles": True, "includeRestrictionInformation": True}
    bundle = await session.syn.rest_post_async(
        f"/entity/{syn_id}/bundle2", body=json.dumps(request), retry_policy=session.retry.policy()
    )
    entity = bundle.get("entity") or {}
    fh_id = str(entity.get("dataFileHandleId", ""))
    handle = next((h for h in bundle.get("fileHandles") or [] if str(h.get("id")) == fh_id), None)
    if handle is None:
        if session.user is None:
            raise UserError(f"{img.file_name} ({syn_id}) needs a Synapse login to download: {TOKEN_HELP}")
        raise UserError(
            f"your Synapse account cannot see the file of {img.file_name} ({syn_id}); "
            f"request access at {PORTAL}{syn_id}"
        )
    restriction = bundle.get("restrictionInformation") or {}
    return RemoteFile(
        image=img,
        synapse_id=syn_id,
        version=int(entity.get("versionNumber") or 0),
        file_handle_id=fh_id,
        size_bytes=int(handle.get("contentSize") or 0),
        md5=handle.get("contentMd5") or None,
        storage=str(handle.get("concreteType", "")).rsplit(".", 1)[-1],
        unmet_terms=bool(restriction.get("hasUnmetAccessRequirement")),
    )
