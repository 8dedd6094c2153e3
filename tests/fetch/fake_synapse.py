"""A local stand-in for Synapse, so the real synapseclient can be tested without the internet.

Two HTTP servers on 127.0.0.1 (free ports, daemon threads):

* the *repo* server speaks the REST calls synapseclient 4.14 makes for ``cpbench fetch``::

      GET  /repo/v1/version                  reachability probe
      GET  /repo/v1/userProfile              login with a bearer token
      POST /repo/v1/entity/children          folder listing, paginated with nextPageToken
      POST /repo/v1/entity/{id}/bundle2      entity + file handles + restriction information
      POST /file/v1/fileHandle/batch         file handle + presigned URL

* the *bucket* server stands in for S3: it serves the presigned URLs (``GET``, with or without
  ``Range: bytes=a-b`` / ``bytes=a-``; 206/416 as S3 does) on another port, so that synapseclient
  does not send the Synapse token there (it only does for URLs on the repo host), as with real S3.

Faults to inject per file: corrupt bytes, a dropped connection after N bytes, a stall after N bytes
(until :attr:`FakeSynapse.release` is set), a reported size that no disk has. Server-wide: a bad or
missing token, no access, failing ``/version`` probes.

Safety: both servers stop themselves after ``lifetime_s`` seconds, refuse (HTTP 400, which clients do
not retry) any request past ``max_requests``, and stalls wait at most ``stall_timeout_s``.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import json
import random
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

S3_FILE_HANDLE = "org.sagebionetworks.repo.model.file.S3FileHandle"
FILE_ENTITY = "org.sagebionetworks.repo.model.FileEntity"
FOLDER_ENTITY = "org.sagebionetworks.repo.model.Folder"
DEFAULT_TOKEN = "cpbench-fake-token-7f3a9c2e5b1d4e6f8a0b"
FOLDER_ID = "syn26848688"


def payload(size: int, seed: int) -> bytes:
    """``size`` deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(size)


@dataclass
class FakeFile:
    """One file entity in the fake folder and the bytes the bucket serves for it."""

    name: str
    data: bytes
    synapse_id: str
    file_handle_id: str
    version: int = 1
    parent_id: str = FOLDER_ID
    size: int | None = None  #: reported contentSize, bytes (default: len(data))
    md5: str | None = None  #: reported contentMd5 (default: MD5 of data)
    corrupt: bool = False  #: serve the data with one byte changed
    drop_after: int | None = None  #: GET number ``fault_on_get``: send this many body bytes, then close
    stall_after: int | None = None  #: GET number ``fault_on_get``: send this many body bytes, then wait for release
    fault_on_get: int = 1  #: which GET of this file (1-based) the drop or stall applies to
    gets: int = 0

    @property
    def reported_size(self) -> int:
        return len(self.data) if self.size is None else self.size

    @property
    def reported_md5(self) -> str:
        return self.md5 or hashlib.md5(self.data).hexdigest()

    def served_bytes(self) -> bytes:
        if not self.corrupt:
            return self.data
        mid = len(self.data) // 2
        return self.data[:mid] + bytes([self.data[mid] ^ 0xFF]) + self.data[mid + 1 :]


@dataclass
class Request:
    """What a server saw (the token itself is not kept, only whether it was right)."""

    server: str  #: "repo" or "bucket"
    method: str
    path: str
    range: str | None
    auth: str  #: "none", "valid" or "invalid"
    body: Any = None


@dataclass
class FakeSynapse:
    """The fake servers; use as a context manager."""

    files: list[FakeFile]
    folders: dict[str, tuple[str, str]] = field(default_factory=dict)  #: id -> (name, parent id)
    token: str = DEFAULT_TOKEN
    require_auth: bool = True  #: anonymous requests get 403
    no_access: bool = False  #: even a valid token gets 403
    version_failures: int = 0  #: the first this many /version probes get 503
    page_size: int = 2
    max_requests: int = 2000
    lifetime_s: float = 120.0
    stall_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self.requests: list[Request] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._servers: list[http.server.ThreadingHTTPServer] = []
        self._timer: threading.Timer | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeSynapse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for role in ("repo", "bucket"):
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self, role))
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(server)
        self._timer = threading.Timer(self.lifetime_s, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        self.release.set()
        if self._timer is not None:
            self._timer.cancel()
        servers, self._servers = self._servers, []
        for server in servers:
            server.shutdown()
            server.server_close()

    # ---- addresses -------------------------------------------------------------------------
    @property
    def repo_base(self) -> str:
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def bucket_base(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"

    @property
    def endpoints(self) -> dict[str, str]:
        """Keyword arguments for ``Synapse(...)`` / ``setEndpoints`` and ``[endpoints]`` config keys."""
        return {
            "repoEndpoint": f"{self.repo_base}/repo/v1",
            "authEndpoint": f"{self.repo_base}/auth/v1",
            "fileHandleEndpoint": f"{self.repo_base}/file/v1",
            "portalEndpoint": f"{self.repo_base}/portal/",
        }

    def write_config(self, path: Path, *, token: str | None = None, cache_dir: Path | None = None) -> Path:
        """Write a ``.synapseConfig`` that points synapseclient at these servers."""
        lines = ["[endpoints]"] + [f"{k} = {v}" for k, v in self.endpoints.items()]
        if cache_dir is not None:
            lines += ["", "[cache]", f"location = {cache_dir}"]
        if token is not None:
            lines += ["", "[authentication]", f"authtoken = {token}"]
        path.write_text("\n".join(lines) + "\n")
        return path

    # ---- inspection ------------------------------------------------------------------------
    def file(self, name: str) -> FakeFile:
        return next(f for f in self.files if f.name == name)

    def bucket_requests(self, name: str | None = None) -> list[Request]:
        """GETs the bucket served (for one file name, or all)."""
        with self._lock:
            reqs = [r for r in self.requests if r.server == "bucket"]
        if name is None:
            return reqs
        fh = self.file(name).file_handle_id
        return [r for r in reqs if r.path.startswith(f"/bucket/{fh}/")]

    def record(self, req: Request) -> int:
        with self._lock:
            self.requests.append(req)
            return len(self.requests)

    # ---- behaviour -------------------------------------------------------------------------
    def auth_state(self, header: str | None) -> str:
        if not header:
            return "none"
        return "valid" if header == f"Bearer {self.token}" else "invalid"

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        kids = [
            {"name": f.name, "id": f.synapse_id, "type": FILE_ENTITY, "versionNumber": f.version,
             "versionLabel": str(f.version), "benefactorId": 26848000, "createdOn": "2021-11-30T00:00:00.000Z",
             "modifiedOn": "2021-11-30T00:00:00.000Z", "createdBy": "1", "modifiedBy": "1"}
            for f in self.files if f.parent_id == parent_id
        ]
        kids += [
            {"name": name, "id": fid, "type": FOLDER_ENTITY, "versionNumber": 1, "versionLabel": "1",
             "benefactorId": 26848000}
            for fid, (name, parent) in self.folders.items() if parent == parent_id
        ]
        return sorted(kids, key=lambda k: k["name"])

    def file_handle(self, f: FakeFile) -> dict[str, Any]:
        return {
            "id": f.file_handle_id, "etag": "etag-" + f.file_handle_id, "createdBy": "1",
            "createdOn": "2021-11-30T00:00:00.000Z", "concreteType": S3_FILE_HANDLE,
            "contentType": "image/tiff", "contentMd5": f.reported_md5, "fileName": f.name,
            "storageLocationId": 1, "contentSize": f.reported_size, "status": "AVAILABLE",
            "bucketName": "fake-bucket", "key": f"{f.file_handle_id}/{f.name}", "isPreview": False,
        }

    def presigned_url(self, f: FakeFile) -> str:
        now = datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        query = urllib.parse.urlencode({
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Date": now, "X-Amz-Expires": "3600",
            "X-Amz-SignedHeaders": "host", "X-Amz-Signature": hashlib.sha256(f.file_handle_id.encode()).hexdigest(),
        })
        return f"{self.bucket_base}/bucket/{f.file_handle_id}/{urllib.parse.quote(f.name)}?{query}"


def _make_handler(fake: FakeSynapse, role: str) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        # -- plumbing --
        def _json(self, status: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode(errors="replace")

        def _begin(self, method: str) -> tuple[Request, bool]:
            body = self._body() if method == "POST" else None
            req = Request(role, method, urllib.parse.urlsplit(self.path).path, self.headers.get("Range"),
                          fake.auth_state(self.headers.get("Authorization")), body)
            if fake.record(req) > fake.max_requests:
                self._json(400, {"reason": "fake Synapse: request budget exhausted"})
                return req, False
            return req, True

        def do_GET(self) -> None:  # noqa: N802
            req, ok = self._begin("GET")
            if ok:
                (self._repo if role == "repo" else self._bucket)(req)

        def do_POST(self) -> None:  # noqa: N802
            req, ok = self._begin("POST")
            if ok:
                self._repo(req) if role == "repo" else self._json(405, {"reason": "no"})

        # -- repo --
        def _denied(self, req: Request) -> bool:
            if req.auth == "invalid":
                self._json(401, {"reason": "Invalid access token"})
                return True
            if req.auth == "none" and fake.require_auth:
                self._json(403, {"reason": "The user anonymous does not have READ permission on the requested entity."})
                return True
            if fake.no_access:
                self._json(403, {"reason": "You lack READ access to the requested entity."})
                return True
            return False

        def _repo(self, req: Request) -> None:
            path = req.path
            if path == "/repo/v1/version":
                with fake._lock:
                    failing = fake.version_failures > 0
                    fake.version_failures -= int(failing)
                if failing:
                    self._json(503, {"reason": "Service Unavailable"})
                else:
                    self._json(200, {"version": "fake-1.0", "stackInstance": "fake"})
                return
            if path == "/repo/v1/userProfile":
                if req.auth == "valid":
                    self._json(200, {"ownerId": "3400001", "userName": "cpbench-tester", "displayName": "cpbench tester",
                                     "emails": ["tester@example.org"]})
                else:
                    self._json(401, {"reason": "Invalid access token"})
                return
            if self._denied(req):
                return
            if path == "/repo/v1/entity/children" and req.method == "POST":
                self._children(req.body or {})
                return
            m = re.fullmatch(r"/repo/v1/entity/(syn\d+)(?:/version/(\d+))?/bundle2", path)
            if m and req.method == "POST":
                self._bundle(m.group(1))
                return
            if path == "/file/v1/fileHandle/batch" and req.method == "POST":
                self._batch(req.body or {})
                return
            self._json(404, {"reason": f"fake Synapse has no {req.method} {path}"})

        def _children(self, body: dict[str, Any]) -> None:
            parent = body.get("parentId")
            if parent != FOLDER_ID and parent not in fake.folders:
                self._json(404, {"reason": f"The entity {parent} does not exist"})
                return
            types = body.get("includeTypes") or ["file", "folder"]
            kids = [k for k in fake.children(parent)
                    if (k["type"] == FILE_ENTITY and "file" in types) or (k["type"] == FOLDER_ENTITY and "folder" in types)]
            start = int(body.get("nextPageToken") or 0)
            page = kids[start:start + fake.page_size]
            out: dict[str, Any] = {"page": page}
            if start + fake.page_size < len(kids):
                out["nextPageToken"] = str(start + fake.page_size)
            self._json(200, out)

        def _bundle(self, syn_id: str) -> None:
            f = next((f for f in fake.files if f.synapse_id == syn_id), None)
            if f is None:
                self._json(404, {"reason": f"The entity {syn_id} does not exist"})
                return
            entity = {
                "name": f.name, "id": f.synapse_id, "etag": "e", "createdOn": "2021-11-30T00:00:00.000Z",
                "modifiedOn": "2021-11-30T00:00:00.000Z", "createdBy": "1", "modifiedBy": "1",
                "parentId": f.parent_id, "concreteType": FILE_ENTITY, "versionNumber": f.version,
                "versionLabel": str(f.version), "isLatestVersion": True, "dataFileHandleId": f.file_handle_id,
            }
            self._json(200, {
                "entity": entity, "entityType": "file", "fileHandles": [fake.file_handle(f)],
                "annotations": {"id": f.synapse_id, "etag": "e", "annotations": {}},
                "restrictionInformation": {"objectId": int(f.synapse_id[3:]), "restrictionLevel": "OPEN",
                                           "hasUnmetAccessRequirement": False},
            })

        def _batch(self, body: dict[str, Any]) -> None:
            out = []
            for item in body.get("requestedFiles", []):
                f = next((f for f in fake.files if f.file_handle_id == str(item.get("fileHandleId"))
                          and f.synapse_id == item.get("associateObjectId")
                          and item.get("associateObjectType") == "FileEntity"), None)
                if f is None:
                    out.append({"fileHandleId": str(item.get("fileHandleId")), "failureCode": "NOT_FOUND"})
                    continue
                res: dict[str, Any] = {"fileHandleId": f.file_handle_id}
                if body.get("includeFileHandles"):
                    res["fileHandle"] = fake.file_handle(f)
                if body.get("includePreSignedURLs"):
                    res["preSignedURL"] = fake.presigned_url(f)
                out.append(res)
            self._json(201, {"requestedFiles": out})

        # -- bucket --
        def _bucket(self, req: Request) -> None:
            m = re.fullmatch(r"/bucket/(\d+)/(.+)", req.path)
            f = next((f for f in fake.files if m and f.file_handle_id == m.group(1)), None)
            if f is None:
                self._json(404, {"reason": "NoSuchKey"})
                return
            data = f.served_bytes()
            size = len(data)
            start, end, status = 0, size - 1, 200
            if req.range:
                rm = re.fullmatch(r"bytes=(\d+)-(\d*)", req.range.strip())
                if not rm:
                    self._json(400, {"reason": "bad Range"})
                    return
                start = int(rm.group(1))
                end = min(int(rm.group(2)), size - 1) if rm.group(2) else size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            with fake._lock:
                f.gets += 1
                faulty = f.gets == f.fault_on_get
            cut = None
            if faulty and f.drop_after is not None:
                cut = ("drop", f.drop_after)
            elif faulty and f.stall_after is not None:
                cut = ("stall", f.stall_after)
            body = data[start:end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "image/tiff")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            try:
                if cut is None:
                    self.wfile.write(body)
                    return
                self.wfile.write(body[:cut[1]])
                self.wfile.flush()
                if cut[0] == "stall":
                    fake.release.wait(fake.stall_timeout_s)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
