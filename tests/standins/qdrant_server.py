"""Qdrant stand-in server (TEST CODE ONLY - there is no Qdrant binary on this machine).

An HTTP layer over qdrant-client's local mode (``QdrantClient(path=...)``: real Qdrant client code keeps
the points and answers scroll/count/query, no server) plus snapshots that are real tar files with the
sha256 checksums Qdrant reports. Every request and every JSON answer is validated against Qdrant's
OpenAPI document (``shared/specs/qdrant-openapi-v1.19.json``) with jsonschema; violations are collected
in ``QdrantStandin.violations`` and the tests assert there are none.

Endpoints: GET / /readyz /healthz /livez /collections; PUT/GET/DELETE /collections/{c};
GET /collections/{c}/exists; PUT /collections/{c}/points; POST /collections/{c}/points/scroll|count|query;
GET/POST /collections/{c}/snapshots; GET/DELETE /collections/{c}/snapshots/{s} (GET honours Range);
POST /collections/{c}/snapshots/upload (multipart); PUT /collections/{c}/snapshots/recover;
GET/POST /snapshots; GET/DELETE /snapshots/{s}.

Snapshot layout (a tar): ``config.json`` (the collection config as GET /collections/{c} reports it),
``version.info`` (the server version) and ``0/segments/points.jsonl`` (one point per line).

Fault injection for tests (attributes of ``QdrantStandin.faults``): ``fail_next`` (statuses answered to the
next requests), ``drop_after_bytes``/``drops`` (cut snapshot downloads), ``corrupt_download``,
``throttle_bps``, ``ignore_range``.

CLI (so the lab can run it): ``python3 qdrant_server.py --host H --port P --storage DIR [--api-key K]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import tarfile
import tempfile
import threading
import time
import typing as t
import urllib.parse
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.local.local_collection import EPSILON

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC_CANDIDATES = (
    os.environ.get("QDRANT_OPENAPI", ""),
    os.path.join(HERE, "..", "..", "specs", "api", "qdrant-openapi-v1.19.json"),  # vendored copy
    os.path.join(HERE, "..", "..", "..", "shared", "specs", "qdrant-openapi-v1.19.json"),
    "/work/shared/specs/qdrant-openapi-v1.19.json",
)
warnings.filterwarnings("ignore", message="Local mode performs exact")
VALIDATE_MAX_ITEMS = 50  # arrays are validated on their first items (10,000-point bodies stay fast)


def find_spec() -> str | None:
    return next((p for p in SPEC_CANDIDATES if p and os.path.isfile(p)), None)


# --------------------------------------------------------------------------- OpenAPI 3.0 -> JSON Schema


def _convert(node: t.Any) -> t.Any:
    """OpenAPI 3.0 schema -> JSON Schema draft 4 (``nullable`` becomes a null type)."""
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (_convert(v) if k not in ("example", "examples", "enum", "required", "default") else v)
        for k, v in node.items()
        if k not in ("example", "examples", "discriminator", "xml")
    }
    if "properties" in node:
        out["properties"] = {k: _convert(v) for k, v in node["properties"].items()}
    if out.pop("nullable", False) is True:
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif not out:
            return {"type": "null"}
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


def _trim(obj: t.Any) -> t.Any:
    if isinstance(obj, list):
        return [_trim(x) for x in obj[:VALIDATE_MAX_ITEMS]]
    if isinstance(obj, dict):
        return {k: _trim(v) for k, v in obj.items()}
    return obj


class SpecValidator:
    """Validates requests/answers of the stand-in against Qdrant's OpenAPI document."""

    def __init__(self, path: str) -> None:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
        self.components = _convert(doc["components"])
        self.routes: list[tuple[re.Pattern[str], str, dict[str, t.Any]]] = []
        for template, item in doc["paths"].items():
            regex = "^" + re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(template)) + "$"
            self.routes.append((re.compile(regex), template, item))
        self.routes.sort(key=lambda r: r[1].count("{"))
        self._cache: dict[tuple[str, ...], jsonschema.Draft4Validator] = {}

    def operation(self, method: str, path: str) -> tuple[str | None, dict[str, t.Any] | None]:
        for regex, template, item in self.routes:
            if regex.match(path) and method.lower() in item:
                return template, item[method.lower()]
        return None, None

    def _validator(self, key: tuple[str, ...], schema: dict[str, t.Any]) -> jsonschema.Draft4Validator:
        if key not in self._cache:
            self._cache[key] = jsonschema.Draft4Validator({**_convert(schema), "components": self.components})
        return self._cache[key]

    def _errors(self, key: tuple[str, ...], schema: dict[str, t.Any], body: t.Any) -> list[str]:
        err = jsonschema.exceptions.best_match(self._validator(key, schema).iter_errors(_trim(body)))
        return [] if err is None else [f"{err.message} at {'/'.join(map(str, err.absolute_path)) or '<root>'}"]

    def check_request(self, method: str, path: str, query: dict[str, str], body: t.Any) -> list[str]:
        template, op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: not in the OpenAPI document"]
        out = []
        for param in op.get("parameters", []):
            if param.get("in") == "query" and param["name"] in query:
                schema = param.get("schema", {})
                value: t.Any = query[param["name"]]
                if schema.get("type") == "boolean":
                    if value not in ("true", "false"):
                        out.append(f"query {param['name']}={value!r} is not a boolean")
                    continue
                if schema.get("type") == "integer":
                    continue
                out += [
                    f"query {param['name']}: {e}"
                    for e in self._errors(("q", template, method, param["name"]), schema, value)
                ]
        if body is not None:
            schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {}) or {}).get("schema")
            if schema is None:
                out.append(f"{method} {template}: takes no JSON body")
            else:
                out += self._errors(("req", template, method), schema, body)
        return [f"request {method} {path}: {e}" for e in out]

    def check_response(self, method: str, path: str, status: int, body: t.Any) -> list[str]:
        template, op = self.operation(method, path)
        if op is None:
            return []
        responses = op["responses"]
        spec = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
        if spec is None:
            return [f"response {method} {template}: status {status} not documented"]
        schema = spec.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return [] if body is None else [f"response {method} {template} {status}: JSON not documented"]
        return [
            f"response {method} {path} {status}: {e}"
            for e in self._errors(("resp", template, method, str(status)), schema, body)
        ]


# --------------------------------------------------------------------------- the stand-in


@dataclasses.dataclass
class Faults:
    fail_next: list[int] = dataclasses.field(default_factory=list)
    drop_after_bytes: int | None = None
    drops: int = 0
    corrupt_download: bool = False
    throttle_bps: float | None = None
    ignore_range: bool = False


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _dump(obj: t.Any) -> t.Any:
    return obj.model_dump(mode="json", exclude_none=True) if hasattr(obj, "model_dump") else obj


class QdrantStandin:
    """One stand-in server: ``with QdrantStandin(storage) as q: q.url``."""

    def __init__(
        self,
        storage: str,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "1.19.0",
        api_key: str | None = None,
        validate: bool = True,
    ) -> None:
        self.storage = os.path.abspath(storage)
        self.version = version
        self.api_key = api_key
        self.faults = Faults()
        self.violations: list[str] = []
        self.requests: list[str] = []
        spec = find_spec() if validate else None
        if validate and spec is None:
            raise RuntimeError("qdrant-openapi-v1.19.json not found; set QDRANT_OPENAPI")
        self.validator = SpecValidator(spec) if spec else None
        for sub in ("collections", "meta", "snapshots", "full-snapshots", "tmp"):
            os.makedirs(os.path.join(self.storage, sub), exist_ok=True)
        self.lock = threading.RLock()
        self.client = QdrantClient(path=os.path.join(self.storage, "collections"))
        for name in self.client._client.collections:
            self._fast_storage(name)
            self._normalise_loaded(name)
        self._counter = itertools.count(int(time.time()))
        handler = type("Handler", (_Handler,), {"standin": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> QdrantStandin:
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            self.client.close()

    def __enter__(self) -> QdrantStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- collections

    def _fast_storage(self, name: str) -> None:
        """Local mode commits every point with a full fsync; a test server does not need that."""
        coll = self.client._client.collections.get(name)
        storage = getattr(getattr(coll, "storage", None), "storage", None)
        if storage is not None:
            storage.execute("PRAGMA synchronous=OFF")

    def _normalise_loaded(self, name: str) -> None:
        """Serve Cosine vectors normalised after a restart too, as real Qdrant does.

        Local mode normalises a vector when it is upserted but loads persisted (raw) vectors as they
        are, so without this a restarted stand-in would serve other vectors than before its restart.
        Each row is normalised exactly as an upsert does it (float32, one vector at a time).
        """
        coll = self.client._client.collections[name]
        for vector_name, rows in list(coll.vectors.items()):
            if coll.get_vector_params(vector_name).distance != models.Distance.COSINE:
                continue
            normalised = rows.astype(np.float32)
            for idx in range(normalised.shape[0]):
                row = np.array(rows[idx], dtype=np.float32)
                norm = np.linalg.norm(row)
                normalised[idx] = row / norm if norm > EPSILON else row
            coll.vectors[vector_name] = normalised

    def _meta_path(self, name: str) -> str:
        return os.path.join(self.storage, "meta", f"{name}.json")

    def _exists(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def _require(self, name: str) -> None:
        if not self._exists(name):
            raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")

    def create_collection(self, name: str, body: dict[str, t.Any]) -> None:
        req = models.CreateCollection(**body)
        if self._exists(name):
            raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
        self.client.create_collection(name, vectors_config=req.vectors, sparse_vectors_config=req.sparse_vectors)
        self._fast_storage(name)
        with open(self._meta_path(name), "w", encoding="utf-8") as handle:
            json.dump(body, handle)

    def delete_collection(self, name: str) -> bool:
        if not self._exists(name):
            return False
        self.client.delete_collection(name)
        with contextlib.suppress(OSError):
            os.unlink(self._meta_path(name))
        return True

    def collection_info(self, name: str) -> dict[str, t.Any]:
        self._require(name)
        info = _dump(self.client.get_collection(name))
        try:
            with open(self._meta_path(name), encoding="utf-8") as handle:
                meta = json.load(handle)
        except OSError:
            meta = {}
        params = info["config"]["params"]
        params["shard_number"] = meta.get("shard_number") or 1
        params["replication_factor"] = meta.get("replication_factor") or 1
        params["write_consistency_factor"] = meta.get("write_consistency_factor") or 1
        params.setdefault("on_disk_payload", True)
        info["config"].pop("strict_mode_config", None)
        return info

    def upsert(self, name: str, body: dict[str, t.Any]) -> dict[str, t.Any]:
        self._require(name)
        if "points" in body:
            points: t.Any = [models.PointStruct(**p) for p in body["points"]]
        else:
            points = models.Batch(**body["batch"])
        self.client.upsert(name, points=points)
        return {"operation_id": next(self._counter), "status": "completed"}

    def scroll(self, name: str, body: dict[str, t.Any]) -> dict[str, t.Any]:
        self._require(name)
        req = models.ScrollRequest(**body)
        points, offset = self.client.scroll(
            name,
            scroll_filter=req.filter,
            limit=req.limit or 10,
            offset=req.offset,
            with_payload=True if req.with_payload is None else req.with_payload,
            with_vectors=bool(req.with_vector) if req.with_vector is not None else False,
            order_by=req.order_by,
        )
        out: dict[str, t.Any] = {"points": [_dump(p) for p in points]}
        out["next_page_offset"] = offset
        return out

    def count(self, name: str, body: dict[str, t.Any]) -> dict[str, t.Any]:
        self._require(name)
        req = models.CountRequest(**body)
        return _dump(self.client.count(name, count_filter=req.filter, exact=req.exact is not False))

    def query(self, name: str, body: dict[str, t.Any]) -> dict[str, t.Any]:
        self._require(name)
        req = models.QueryRequest(**body)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # local mode: exact search anyway
            res = self.client.query_points(
                name,
                query=req.query,
                using=req.using,
                query_filter=req.filter,
                search_params=req.params,
                limit=req.limit or 10,
                offset=req.offset,
                score_threshold=req.score_threshold,
                with_payload=False if req.with_payload is None else req.with_payload,
                with_vectors=False if req.with_vector is None else req.with_vector,
            )
        return _dump(res)

    # ---- snapshots

    def snapshot_dir(self, collection: str | None) -> str:
        if collection is None:
            return os.path.join(self.storage, "full-snapshots")
        path = os.path.join(self.storage, "snapshots", collection)
        os.makedirs(path, exist_ok=True)
        return path

    def _describe(self, path: str) -> dict[str, t.Any]:
        stat = os.stat(path)
        checksum = None
        with contextlib.suppress(OSError), open(path + ".checksum", encoding="utf-8") as handle:
            checksum = handle.read().strip()
        created = dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return {"name": os.path.basename(path), "creation_time": created, "size": stat.st_size, "checksum": checksum}

    def list_snapshots(self, collection: str | None) -> list[dict[str, t.Any]]:
        if collection is not None:
            self._require(collection)
        folder = self.snapshot_dir(collection)
        return [self._describe(os.path.join(folder, n)) for n in sorted(os.listdir(folder)) if n.endswith(".snapshot")]

    def snapshot_file(self, collection: str | None, name: str) -> str:
        if "/" in name or name.startswith("."):
            raise ApiError(400, f"Bad request: invalid snapshot name {name!r}")
        path = os.path.join(self.snapshot_dir(collection), name)
        if not os.path.isfile(path):
            raise ApiError(404, f"Not found: Snapshot {name} not found")
        return path

    def _finish_snapshot(self, tmp: str, final: str) -> dict[str, t.Any]:
        digest = _sha256(tmp)
        with open(final + ".checksum.tmp", "w", encoding="utf-8") as handle:
            handle.write(digest)
        os.replace(final + ".checksum.tmp", final + ".checksum")
        os.replace(tmp, final)
        return self._describe(final)

    def create_snapshot(self, collection: str) -> dict[str, t.Any]:
        self._require(collection)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
        name = f"{collection}-{next(self._counter)}-{stamp}.snapshot"
        final = os.path.join(self.snapshot_dir(collection), name)
        with tempfile.TemporaryDirectory(dir=os.path.join(self.storage, "tmp")) as work:
            self.write_collection_tar(collection, os.path.join(work, "snap.tar"))
            return self._finish_snapshot(os.path.join(work, "snap.tar"), final)

    def write_collection_tar(self, collection: str, path: str) -> None:
        info = self.collection_info(collection)
        work = os.path.dirname(path)
        points_file = os.path.join(work, "points.jsonl")
        # The points as they were stored (local mode keeps them before Cosine normalisation and
        # normalises again on load), so a recovered collection holds bit-identical vectors, as a
        # real Qdrant snapshot does.
        # Real Qdrant stores the normalised vector and a snapshot carries it, so a recovery serves the very
        # same floats. Local mode normalises again on every upsert, and numpy's float32 norm may round the
        # last bit differently from one call to the next; so the snapshot also carries each vector as it is
        # served ("stored") and a recovery puts exactly that back.
        coll = self.client._client.collections[collection]
        with open(points_file, "w", encoding="utf-8") as handle:
            for point in coll.storage.load():
                record = {"id": point.id, "vector": _dump(point.vector), "payload": point.payload or {}}
                idx = coll.ids.get(point.id)
                if idx is not None:
                    record["stored"] = {name: rows[idx].tolist() for name, rows in coll.vectors.items()}
                handle.write(json.dumps(record) + "\n")
        with tarfile.open(path, "w") as tar:
            for arcname, data in (
                ("config.json", json.dumps(info["config"]).encode()),
                ("version.info", self.version.encode()),
            ):
                member = tarfile.TarInfo(arcname)
                member.size = len(data)
                member.mtime = int(time.time())
                tar.addfile(member, fileobj=_BytesReader(data))
            tar.add(points_file, arcname="0/segments/points.jsonl")

    def create_full_snapshot(self) -> dict[str, t.Any]:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
        name = f"full-snapshot-{stamp}-{next(self._counter)}.snapshot"
        final = os.path.join(self.snapshot_dir(None), name)
        with tempfile.TemporaryDirectory(dir=os.path.join(self.storage, "tmp")) as work:
            names = [c.name for c in self.client.get_collections().collections]
            out = os.path.join(work, "full.tar")
            with tarfile.open(out, "w") as tar:
                mapping = {}
                for coll in names:
                    sub = os.path.join(work, coll)
                    os.makedirs(sub)
                    self.write_collection_tar(coll, os.path.join(sub, "snap.tar"))
                    mapping[coll] = f"{coll}.snapshot"
                    tar.add(os.path.join(sub, "snap.tar"), arcname=mapping[coll])
                data = json.dumps({"collections_mapping": mapping, "collections_aliases": {}}).encode()
                member = tarfile.TarInfo("config.json")
                member.size = len(data)
                tar.addfile(member, fileobj=_BytesReader(data))
            return self._finish_snapshot(out, final)

    def delete_snapshot(self, collection: str | None, name: str) -> bool:
        path = self.snapshot_file(collection, name)
        os.unlink(path)
        with contextlib.suppress(OSError):
            os.unlink(path + ".checksum")
        return True

    def restore(self, collection: str, tar_path: str, checksum: str | None) -> None:
        if checksum:
            actual = _sha256(tar_path)
            if actual != checksum.lower():
                raise ApiError(400, f"Bad request: Snapshot checksum mismatch: expected {checksum}, got {actual}")
        try:
            with tarfile.open(tar_path, "r:") as tar:
                config = json.loads(tar.extractfile("config.json").read())  # type: ignore[union-attr]
                version = tar.extractfile("version.info").read().decode().strip()  # type: ignore[union-attr]
                own, theirs = self.version.split(".")[:2], version.split(".")[:2]
                if own[0] != theirs[0] or not 0 <= int(own[1]) - int(theirs[1]) <= 1:
                    raise ApiError(
                        400, f"Bad request: snapshot of Qdrant {version} cannot be recovered on {self.version}"
                    )
                params = config["params"]
                body: dict[str, t.Any] = {"vectors": params.get("vectors"), "shard_number": params.get("shard_number")}
                if params.get("sparse_vectors"):
                    body["sparse_vectors"] = params["sparse_vectors"]
                body = {k: v for k, v in body.items() if v is not None}
                self.delete_collection(collection)
                self.create_collection(collection, body)
                handle = tar.extractfile("0/segments/points.jsonl")
                assert handle is not None
                batch: list[models.PointStruct] = []
                stored: dict[t.Any, dict[str, list[float]]] = {}
                for line in handle:
                    record = json.loads(line)
                    stored[record["id"]] = record.pop("stored", {})
                    batch.append(models.PointStruct(**record))
                    if len(batch) >= 1000:
                        self.client.upsert(collection, points=batch)
                        batch = []
                if batch:
                    self.client.upsert(collection, points=batch)
                coll = self.client._client.collections[collection]
                for pid, vectors in stored.items():
                    for name, values in vectors.items():
                        if name in coll.vectors and pid in coll.ids:
                            coll.vectors[name][coll.ids[pid]] = values
        except (tarfile.TarError, KeyError, ValueError) as exc:
            raise ApiError(400, f"Bad request: not a valid snapshot: {exc}") from exc

    def fetch_location(self, location: str, api_key: str | None, dest: str) -> None:
        parts = urllib.parse.urlsplit(location)
        if parts.scheme == "file":
            src = os.path.realpath(urllib.parse.unquote(parts.path))
            if not src.startswith(self.storage + os.sep):
                raise ApiError(403, "Forbidden: snapshot file must be inside the snapshots directory")
            shutil.copyfile(src, dest)
            return
        req = urllib.request.Request(location, headers={"api-key": api_key} if api_key else {})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp, open(dest, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except OSError as exc:
            raise ApiError(400, f"Bad request: cannot download snapshot from {location}: {exc}") from exc


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        out, self.pos = self.data[self.pos : end], min(end, len(self.data))
        return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: QdrantStandin

    def log_message(self, *args: object) -> None:
        return

    # ---- plumbing

    def _send_json(self, status: int, body: t.Any) -> None:
        q = self.standin
        if q.validator is not None:
            q.violations += q.validator.check_response(self.command, self._path, status, body)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _ok(self, result: t.Any, status: int = 200) -> None:
        body: dict[str, t.Any] = {"status": "ok", "time": 0.0001}
        if status == 202:
            body["status"] = "accepted"
        else:
            body["result"] = result
        self._send_json(status, body)

    def _error(self, status: int, message: str) -> None:
        self._send_json(status, {"status": {"error": message}, "time": 0.0001})

    def _read_json(self) -> t.Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        try:
            return json.loads(self.rfile.read(length))
        except ValueError as exc:
            raise ApiError(400, f"Format error in JSON body: {exc}") from exc

    def _authorised(self) -> bool:
        key = self.standin.api_key
        if not key or self._path in ("/healthz", "/readyz", "/livez"):
            return True
        given = self.headers.get("api-key") or ""
        bearer = self.headers.get("Authorization") or ""
        return given == key or bearer == f"Bearer {key}"

    def _dispatch(self) -> None:
        q = self.standin
        split = urllib.parse.urlsplit(self.path)
        self._path = split.path
        self._query = dict(urllib.parse.parse_qsl(split.query))
        q.requests.append(f"{self.command} {self._path}")
        try:
            if q.faults.fail_next:
                status = q.faults.fail_next.pop(0)
                self._drain()
                self._error(status, "Service Unavailable: injected fault")
                return
            if not self._authorised():
                self._drain()
                self._error(401, "Must provide an API key or an Authorization bearer token")
                return
            is_upload = self._path.endswith("/snapshots/upload")
            body = None if is_upload else self._read_json()
            if q.validator is not None:
                q.violations += q.validator.check_request(self.command, self._path, self._query, body)
            self._route(body)
        except ApiError as exc:
            self._error(exc.status, str(exc))
        except (ValueError, TypeError) as exc:  # pydantic validation errors are ValueErrors
            self._error(400, f"Format error: {exc}")

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            got = self.rfile.read(min(length, 1 << 20))
            if not got:
                break
            length -= len(got)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _dispatch

    def _wait(self) -> bool:
        return self._query.get("wait", "true") != "false"

    def _route(self, body: t.Any) -> None:
        q, m = self.standin, self.command
        parts = [urllib.parse.unquote(p) for p in self._path.split("/") if p]
        with_lock = q.lock
        if m == "GET" and parts == []:
            return self._send_json(
                200, {"title": "qdrant - vector search engine (sophia stand-in)", "version": q.version, "commit": None}
            )
        if m == "GET" and parts in (["readyz"], ["healthz"], ["livez"]):
            data = b"healthz check passed"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if parts == ["collections"] and m == "GET":
            with with_lock:
                names = [c.name for c in q.client.get_collections().collections]
            return self._ok({"collections": [{"name": n} for n in sorted(names)]})
        if parts == ["snapshots"]:
            if m == "GET":
                return self._ok(q.list_snapshots(None))
            if m == "POST":
                with with_lock:
                    snap = q.create_full_snapshot()
                return self._ok(snap) if self._wait() else self._ok(None, 202)
        if len(parts) == 2 and parts[0] == "snapshots":
            return self._snapshot_item(None, parts[1], m)
        if not parts or parts[0] != "collections" or len(parts) < 2:
            raise ApiError(404, f"Not found: {self._path}")
        name, rest = parts[1], parts[2:]
        with with_lock:
            if rest == [] and m == "GET":
                return self._ok(q.collection_info(name))
            if rest == [] and m == "PUT":
                q.create_collection(name, body or {})
                return self._ok(True)
            if rest == [] and m == "DELETE":
                return self._ok(q.delete_collection(name))
            if rest == ["exists"] and m == "GET":
                return self._ok({"exists": q._exists(name)})
            if rest == ["points"] and m == "PUT":
                return self._ok(q.upsert(name, body or {}))
            if rest == ["points", "scroll"] and m == "POST":
                return self._ok(q.scroll(name, body or {}))
            if rest == ["points", "count"] and m == "POST":
                return self._ok(q.count(name, body or {}))
            if rest == ["points", "query"] and m == "POST":
                return self._ok(q.query(name, body or {}))
            if rest == ["snapshots"] and m == "GET":
                return self._ok(q.list_snapshots(name))
            if rest == ["snapshots"] and m == "POST":
                snap = q.create_snapshot(name)
                return self._ok(snap) if self._wait() else self._ok(None, 202)
            if rest == ["snapshots", "recover"] and m == "PUT":
                return self._recover(name, body or {})
        if rest == ["snapshots", "upload"] and m == "POST":
            return self._upload(name)
        if len(rest) == 2 and rest[0] == "snapshots":
            return self._snapshot_item(name, rest[1], m)
        raise ApiError(404, f"Not found: {m} {self._path}")

    # ---- snapshots over HTTP

    def _snapshot_item(self, collection: str | None, name: str, method: str) -> None:
        q = self.standin
        if method == "DELETE":
            with q.lock:
                ok = q.delete_snapshot(collection, name)
            return self._ok(ok) if self._wait() else self._ok(None, 202)
        if method != "GET":
            raise ApiError(405, f"Method {method} not allowed")
        return self._send_file(q.snapshot_file(collection, name))

    def _send_file(self, path: str) -> None:
        faults = self.standin.faults
        size = os.path.getsize(path)
        start = 0
        rng = re.match(r"^bytes=(\d+)-$", self.headers.get("Range") or "")
        if rng and not faults.ignore_range and int(rng.group(1)) < size:
            start = int(rng.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        limit = size - start
        drop = faults.drop_after_bytes is not None and faults.drops > 0
        if drop:
            faults.drops -= 1
            limit = min(limit, max(0, faults.drop_after_bytes - start) if start else faults.drop_after_bytes)
        with open(path, "rb") as handle:
            if not (drop or faults.corrupt_download or faults.throttle_bps):
                self.wfile.flush()
                self.connection.sendfile(handle, start, limit)
            else:
                handle.seek(start)
                sent, middle = 0, size // 2
                began = time.monotonic()
                while sent < limit:
                    chunk = bytearray(handle.read(min(65536, limit - sent)))
                    if not chunk:
                        break
                    pos = start + sent
                    if faults.corrupt_download and pos <= middle < pos + len(chunk):
                        chunk[middle - pos] ^= 0xFF
                    try:
                        self.wfile.write(chunk)
                    except OSError:
                        return
                    sent += len(chunk)
                    if faults.throttle_bps:
                        ahead = sent / faults.throttle_bps - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)
        if drop:
            self.wfile.flush()
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def _read_body_to(self, out: t.BinaryIO) -> None:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return
                remaining = size
                while remaining:
                    got = self.rfile.read(min(remaining, 1 << 20))
                    out.write(got)
                    remaining -= len(got)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            got = self.rfile.read(min(length, 1 << 20))
            if not got:
                raise ApiError(400, "Bad request: body ended early")
            out.write(got)
            length -= len(got)

    def _upload(self, collection: str) -> None:
        q = self.standin
        ctype = self.headers.get("Content-Type") or ""
        m = re.search(r"boundary=\"?([^\";]+)\"?", ctype)
        if not ctype.startswith("multipart/form-data") or not m:
            self._drain()
            raise ApiError(400, "Bad request: expected multipart/form-data with a boundary")
        boundary = m.group(1).encode()
        with tempfile.TemporaryDirectory(dir=os.path.join(q.storage, "tmp")) as work:
            raw = os.path.join(work, "body")
            with open(raw, "wb") as out:
                self._read_body_to(out)
            snap = os.path.join(work, "upload.snapshot")
            with open(raw, "rb") as handle:
                head = handle.read(16384)
                first = head.find(b"--" + boundary)
                hdr_end = head.find(b"\r\n\r\n", first)
                if first < 0 or hdr_end < 0 or b'name="snapshot"' not in head[first:hdr_end]:
                    raise ApiError(400, "Bad request: multipart field 'snapshot' not found")
                size = os.path.getsize(raw)
                handle.seek(max(0, size - 4096))
                tail = handle.read()
                end = tail.rfind(b"\r\n--" + boundary)
                if end < 0:
                    raise ApiError(400, "Bad request: multipart closing boundary not found")
                data_start, data_end = hdr_end + 4, max(0, size - 4096) + end
                handle.seek(data_start)
                with open(snap, "wb") as out:
                    remaining = data_end - data_start
                    while remaining > 0:
                        chunk = handle.read(min(remaining, 1 << 20))
                        out.write(chunk)
                        remaining -= len(chunk)
            with q.lock:
                q.restore(collection, snap, self._query.get("checksum"))
        return self._ok(True) if self._wait() else self._ok(None, 202)

    def _recover(self, collection: str, body: dict[str, t.Any]) -> None:
        q = self.standin
        req = models.SnapshotRecover(**body)
        with tempfile.TemporaryDirectory(dir=os.path.join(q.storage, "tmp")) as work:
            path = os.path.join(work, "fetched.snapshot")
            q.fetch_location(str(req.location), req.api_key, path)
            q.restore(collection, path, req.checksum)
        return self._ok(True) if self._wait() else self._ok(None, 202)


def main() -> None:
    parser = argparse.ArgumentParser(description="Qdrant stand-in (test code only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--version", default="1.19.0")
    parser.add_argument("--api-key", default=os.environ.get("QDRANT__SERVICE__API_KEY"))
    parser.add_argument("--throttle-bps", type=float, default=None, help="slow snapshot downloads (tests)")
    parser.add_argument("--no-validate", action="store_true", help="do not validate against the OpenAPI document")
    args = parser.parse_args()
    os.makedirs(args.storage, exist_ok=True)
    server = QdrantStandin(
        args.storage,
        args.host,
        args.port,
        args.version,
        args.api_key,
        validate=not args.no_validate and find_spec() is not None,
    )
    server.faults.throttle_bps = args.throttle_bps

    def _stop(*_args: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"qdrant stand-in listening on {server.url} (storage {server.storage})", flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.client.close()
        for violation in server.violations:
            print(f"OpenAPI violation: {violation}", flush=True)


if __name__ == "__main__":
    main()
