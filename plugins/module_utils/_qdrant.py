"""Qdrant plumbing for sophia.migrate.qdrant_snapshot and sophia.migrate.qdrant_compare.

Snapshots (``qdrant_snapshot``) speak Qdrant's REST API through ``_http.HttpClient`` (requests):

* create / list / delete collection snapshots and full (storage) snapshots;
* ``download``: stream a snapshot into a temporary file next to the destination, hashing (sha256)
  in a second thread while the main thread reads the socket and writes the file, with a fixed ring
  of buffers (memory is flat whatever the size); a broken transfer is resumed with ``Range`` (or
  restarted when the server does not honour it); the file is flushed to disk (fdatasync, in a
  third thread) every ``flush_size`` bytes while it streams, so the final fsync has only the tail to
  write; the digest and the size are compared with what Qdrant reports; the file is fsynced and
  renamed into place only when it matches, so nothing partial or wrong is ever left under the final name;
* ``upload`` (multipart, streamed from disk) and ``recover_from_url``, both with ``priority`` and the
  checksum so the server verifies too, after a compatibility check of the target (Qdrant version:
  same or next minor; collection config: vectors, sparse vectors, shard count).

qdrant-client has create/list/delete/recover calls for snapshots, but importing it costs ~65 MB of
resident memory (grpc, numpy, pydantic), which alone would break the flat < 100 MB budget of a
snapshot download; the snapshot calls are a handful of JSON requests, so they go through requests
with the same retries, TLS options and secret-safe errors as the download itself.

Comparison (``qdrant_compare``) uses qdrant-client (imported lazily): config diff, exact count,
an order-independent content digest over ids + vectors + payload (scrolling both sides in id order
in batches, merge-joined, so differing point ids are named), and search parity on sampled vectors.

Errors are raised as ``QdrantError`` with a message naming the server (URL without credentials)
and what was being attempted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import http.client
import json
import os
import queue
import random
import re
import ssl
import tarfile
import threading
import time
import typing as t
import urllib.parse
import uuid

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_open, sha256_file
from ansible_collections.sophia.migrate.plugins.module_utils._http import (
    HAS_REQUESTS,
    RETRY_STATUSES,
    HttpClient,
    HttpError,
    redact_url,
    requests,
)

STATES = ("present", "absent", "downloaded", "uploaded", "recovered", "listed")
PRIORITIES = ("snapshot", "replica", "no_sync")
DEFAULT_CHUNK = 4 * 1024 * 1024
DEFAULT_FLUSH = 64 * 1024 * 1024  # a download is flushed to disk every this many bytes (0: only at the end)
# Connection options of a Qdrant endpoint, shared by the modules' argument specs.
CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "url": {"type": "str", "required": True},
    "api_key": {"type": "str", "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path", "no_log": False},
    "timeout": {"type": "float", "default": 60},
    "retries": {"type": "int", "default": 3},
    "backoff": {"type": "float", "default": 1.0},
}
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DEFAULT_CONFIG_KEYS = (
    "params.vectors",
    "params.sparse_vectors",
    "params.shard_number",
    "params.sharding_method",
    "quantization_config",
)

__all__ = ["HAS_REQUESTS", "QdrantError"]


class QdrantError(Exception):
    """A Qdrant step that failed; the message names the server and the step."""

    def __init__(self, msg: str, **facts: t.Any) -> None:
        super().__init__(msg)
        self.facts = facts


def split_url(label: str, url: t.Any) -> urllib.parse.SplitResult:
    """``url`` parsed, port included; a malformed one (an unclosed IPv6 bracket, a bad port) is a QdrantError
    naming the option and showing the URL without credentials or query."""
    try:
        parts = urllib.parse.urlsplit(str(url or ""))
        parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
    except ValueError as exc:
        raise QdrantError(f"option '{label}' is not a valid URL ({exc}): {redact_url(url)!r}") from exc
    return parts


@dataclasses.dataclass
class Endpoint:
    """How to reach one Qdrant server. ``label`` names the option (url / source / target)."""

    label: str
    url: str
    api_key: str | None = None
    validate_certs: bool = True
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 1.0

    @classmethod
    def from_params(cls, label: str, params: dict[str, t.Any]) -> Endpoint:
        fields = {f.name for f in dataclasses.fields(cls)} - {"label"}
        ep = cls(label=label, **{k: v for k, v in params.items() if k in fields and v is not None})
        parts = split_url(label, ep.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise QdrantError(f"option '{label}' must be an http:// or https:// URL, got {redact_url(ep.url or '')!r}")
        if parts.username or parts.password:
            raise QdrantError(f"option '{label}' must not embed credentials; use api_key")
        prefix = "" if label == "url" else f"{label}."
        if ep.api_key and not re.fullmatch(r"[\x20-\x7e]+", ep.api_key):  # it travels as an HTTP header value
            raise QdrantError(f"option '{prefix}api_key' must be printable ASCII text")
        for name in ("ca_path", "client_cert", "client_key"):
            value = getattr(ep, name)
            if value and not os.path.isfile(value):
                raise QdrantError(f"option '{prefix}{name}': {value!r:.200} is not a file")
        return ep

    @property
    def name(self) -> str:
        return f"{self.label} {redact_url(self.url)}"

    def http(self, sleep: t.Callable[[float], None] = time.sleep) -> HttpClient:
        headers = {"api-key": self.api_key} if self.api_key else {}
        return HttpClient(
            self.url,
            headers=headers,
            timeout=self.timeout,
            validate_certs=self.validate_certs,
            ca_path=self.ca_path,
            client_cert=self.client_cert,
            client_key=self.client_key,
            retries=self.retries,
            backoff=self.backoff,
            sleep=sleep,
        )


# --------------------------------------------------------------------------- REST helpers


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def snapshots_path(collection: str | None) -> str:
    return f"/collections/{_q(collection)}/snapshots" if collection else "/snapshots"


def snapshot_path(collection: str | None, name: str) -> str:
    return f"{snapshots_path(collection)}/{_q(name)}"


def _error_text(exc: HttpError) -> str:
    try:
        return json.loads(exc.body)["status"]["error"]
    except (ValueError, KeyError, TypeError):
        return str(exc)


def api(
    ep: Endpoint,
    http: HttpClient,
    method: str,
    path: str,
    what: str,
    expected: t.Iterable[int] = (200,),
    **kwargs: t.Any,
) -> t.Any:
    """One JSON call; returns Qdrant's ``result``; any failure is a QdrantError naming ``ep`` and ``what``."""
    try:
        body = http.json(method, path, expected=expected, **kwargs)
    except HttpError as exc:
        if exc.status in (401, 403):
            raise QdrantError(
                f"{ep.name}: {what}: HTTP {exc.status}: the API key was refused; "
                f"check option {'api_key' if ep.label == 'url' else ep.label + '.api_key'}",
                status=exc.status,
            ) from exc
        detail = _error_text(exc) if exc.status else str(exc)
        raise QdrantError(f"{ep.name}: {what} failed: {detail}", status=exc.status) from exc
    if isinstance(body, dict) and "result" in body:
        return body["result"]
    return body


def server_version(ep: Endpoint, http: HttpClient) -> str:
    info = api(ep, http, "GET", "/", "reading the server version")
    if not isinstance(info, dict) or not info.get("version"):
        raise QdrantError(f"{ep.name}: GET / did not return a version (is this a Qdrant server?)")
    return str(info["version"])


def list_snapshots(ep: Endpoint, http: HttpClient, collection: str | None) -> list[dict[str, t.Any]]:
    what = f"listing snapshots of collection {collection!r}" if collection else "listing full snapshots"
    try:
        items = api(ep, http, "GET", snapshots_path(collection), what) or []
    except QdrantError as exc:
        if collection and exc.facts.get("status") == 404:
            raise QdrantError(
                f"{ep.name}: collection {collection!r} does not exist; check option 'collection'", status=404
            ) from exc
        raise
    return sorted(items, key=lambda s: (s.get("creation_time") or "", s.get("name") or ""))


def get_collection(ep: Endpoint, http: HttpClient, collection: str) -> dict[str, t.Any] | None:
    """Collection info, or None when it does not exist."""
    try:
        return http.json("GET", f"/collections/{_q(collection)}", expected=(200,))["result"]
    except HttpError as exc:
        if exc.status == 404:
            return None
        raise QdrantError(f"{ep.name}: reading collection {collection!r} failed: {_error_text(exc)}") from exc


# --------------------------------------------------------------------------- versions and configs


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        raise QdrantError(f"cannot parse Qdrant version {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_compatible(source: str, target: str) -> tuple[bool, str]:
    """Qdrant recovers snapshots of the same or the previous minor version only."""
    s, tv = parse_version(source), parse_version(target)
    if s[0] != tv[0]:
        return False, f"target Qdrant {target} and snapshot Qdrant {source} differ in major version"
    if tv[1] < s[1]:
        return False, f"target Qdrant {target} is older than the snapshot's Qdrant {source} (no downgrades)"
    if tv[1] > s[1] + 1:
        return False, (
            f"target Qdrant {target} is more than one minor version ahead of the snapshot's "
            f"Qdrant {source}; upgrade through {s[0]}.{s[1] + 1} first"
        )
    return True, f"target Qdrant {target} accepts snapshots of {source} (same or next minor)"


def _vector_shape(vectors: t.Any) -> dict[str, tuple[t.Any, t.Any, bool]]:
    """{name: (size, distance, multivector)}; the unnamed vector is named ''."""
    if not vectors:
        return {}
    if isinstance(vectors, dict) and "size" in vectors and "distance" in vectors:
        vectors = {"": vectors}
    return {
        name: (v.get("size"), v.get("distance"), bool(v.get("multivector_config")))
        for name, v in vectors.items()
        if isinstance(v, dict)
    }


def _fmt_shape(shape: dict[str, tuple[t.Any, t.Any, bool]]) -> str:
    parts = [
        f"{name or '<unnamed>'}={size} {dist}{' multi' if multi else ''}"
        for name, (size, dist, multi) in sorted(shape.items())
    ]
    return ", ".join(parts) or "none"


def config_conflicts(snapshot_cfg: dict[str, t.Any], target_cfg: dict[str, t.Any], collection: str) -> list[str]:
    """Reasons why a snapshot with ``snapshot_cfg`` must not replace the existing target collection."""
    sp, tp = snapshot_cfg.get("params") or {}, target_cfg.get("params") or {}
    out = []
    sv, tv = _vector_shape(sp.get("vectors")), _vector_shape(tp.get("vectors"))
    if sv != tv:
        out.append(
            f"collection {collection!r}: target vectors [{_fmt_shape(tv)}] differ from the snapshot's "
            f"[{_fmt_shape(sv)}]"
        )
    ss, ts = sorted((sp.get("sparse_vectors") or {}).keys()), sorted((tp.get("sparse_vectors") or {}).keys())
    if ss != ts:
        out.append(f"collection {collection!r}: target sparse vectors {ts} differ from the snapshot's {ss}")
    sn, tn = sp.get("shard_number") or 1, tp.get("shard_number") or 1
    if sn != tn:
        out.append(f"collection {collection!r}: target has {tn} shard(s), the snapshot {sn}")
    return out


def read_snapshot_meta(path: str) -> dict[str, t.Any]:
    """``config.json`` and ``version.info`` from a collection snapshot tar, when present."""
    meta: dict[str, t.Any] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                base = member.name.lstrip("./")
                if base in ("config.json", "version.info") and member.isfile() and member.size < 1 << 20:
                    handle = tar.extractfile(member)
                    if handle is None:
                        continue
                    data = handle.read()
                    if base == "config.json":
                        meta["config"] = json.loads(data)
                    else:
                        meta["version"] = data.decode().strip()
                if len(meta) == 2:
                    break
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise QdrantError(f"{path}: not a readable Qdrant snapshot (tar): {exc}") from exc
    return meta


# --------------------------------------------------------------------------- files


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view)
        view = view[n:]


class _HashPipe:
    """sha256 in a second thread over a fixed ring of buffers (hashlib releases the GIL on large updates)."""

    def __init__(self, chunk: int, depth: int = 3) -> None:
        self.hasher = hashlib.sha256()
        self.free: queue.Queue[bytearray] = queue.Queue()
        for _u1 in range(depth):
            self.free.put(bytearray(chunk))
        self.work: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            buf, n = item
            self.hasher.update(memoryview(buf)[:n])
            self.free.put(buf)

    def take(self) -> bytearray:
        return self.free.get()

    def give(self, buf: bytearray, n: int) -> None:
        if n:
            self.work.put((buf, n))
        else:
            self.free.put(buf)

    def finish(self) -> str:
        self.work.put(None)
        self.thread.join()
        return self.hasher.hexdigest()


class _Flusher:
    """Flush the file being downloaded to disk while it streams, in a second thread.

    Every ``every`` bytes written the thread calls ``fdatasync`` (which releases the GIL) on what was
    written so far, while the main thread goes on reading the socket; the final ``fsync`` then has
    only the tail to write instead of the whole file (on a 1 GiB snapshot: seconds saved, and no
    gigabyte of dirty page cache that the kernel writes back whenever it likes). The main thread
    waits when the disk is more than two windows behind, so dirty memory stays flat too.
    ``every=0`` flushes nothing before the end.
    """

    def __init__(self, fd: int, every: int, sync: t.Callable[[int], None] | None = None) -> None:
        self.fd, self.every = fd, every
        self.sync = sync or getattr(os, "fdatasync", os.fsync)
        self.written = 0  # bytes handed to the file so far
        self.flushed = 0  # bytes known to be on disk
        self.syncs = 0
        self.generation = 0  # bumped when the file starts again from byte 0
        self.error: OSError | None = None
        self.done = False
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None
        if every > 0:
            self.thread = threading.Thread(target=self._run, name="fdatasync", daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.done and self.written - self.flushed < self.every:
                    self.cond.wait()
                if self.done:
                    return
                upto, generation = self.written, self.generation
            try:
                self.sync(self.fd)
            except OSError as exc:
                with self.cond:
                    self.error, self.done = exc, True
                    self.cond.notify_all()
                return
            with self.cond:
                if generation == self.generation:  # not truncated meanwhile
                    self.flushed = max(self.flushed, upto)
                self.syncs += 1
                self.cond.notify_all()

    def wrote(self, n: int) -> None:
        """``n`` more bytes are in the file; wake the flusher, wait while it is two windows behind."""
        if self.thread is None:
            return
        with self.cond:
            self.written += n
            if self.written - self.flushed >= self.every:
                self.cond.notify_all()
            while not self.done and self.written - self.flushed > 2 * self.every:
                self.cond.wait()
            if self.error is not None:
                raise self.error

    def restart(self) -> None:
        """The file was truncated to 0 (the server ignored Range): count from 0 again."""
        with self.cond:
            self.written = self.flushed = 0
            self.generation += 1

    def close(self) -> None:
        """Stop the thread (an ongoing flush finishes first); raise the error a flush met, if any."""
        if self.thread is None:
            return
        with self.cond:
            self.done = True
            self.cond.notify_all()
        self.thread.join()
        self.thread = None
        if self.error is not None:
            raise self.error


class _Transient(Exception):
    """The transfer broke in a way a new request may fix (connection lost, truncated body)."""


def _body_reader(response: t.Any) -> t.Any:
    """Something with ``readinto``: http.client's response under urllib3 (no extra copy), else a wrapper."""
    raw = response.raw
    fp = getattr(raw, "_fp", None)
    encoding = (response.headers.get("Content-Encoding") or "identity").lower()
    if isinstance(fp, http.client.HTTPResponse) and encoding == "identity":
        return fp

    class _Wrap:
        def readinto(self, view: memoryview) -> int:
            data = raw.read(len(view))
            view[: len(data)] = data
            return len(data)

    return _Wrap()


def _fill(reader: t.Any, view: memoryview) -> int:
    got = 0
    while got < len(view):
        try:
            n = reader.readinto(view[got:])
        except (http.client.HTTPException, OSError, ValueError) as exc:
            raise _Transient(f"{exc.__class__.__name__}: {exc}") from exc
        except Exception as exc:
            if requests is not None and isinstance(exc, requests.exceptions.RequestException):
                raise _Transient(f"{exc.__class__.__name__}: {exc}") from exc
            name = exc.__class__.__module__
            if name.startswith("urllib3"):
                raise _Transient(f"{exc.__class__.__name__}: {exc}") from exc
            raise
        if not n:
            break
        got += n
    return got


def _content_range_start(value: str | None) -> tuple[int | None, int | None]:
    m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != "*" else None)


def download(
    ep: Endpoint,
    http: HttpClient,
    path: str,
    dest: str,
    expected_sha256: str | None,
    expected_size: int | None,
    chunk_size: int = DEFAULT_CHUNK,
    sleep: t.Callable[[float], None] = time.sleep,
    flush_size: int = DEFAULT_FLUSH,
) -> dict[str, t.Any]:
    """Stream ``path`` to ``dest`` (atomic, 0600); verify size and sha256; resume broken transfers.

    The file is flushed to disk every ``flush_size`` bytes while it streams (see ``_Flusher``).
    """
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise QdrantError(f"option 'dest': directory {directory} does not exist")
    pipe = _HashPipe(chunk_size)
    flusher: _Flusher | None = None
    written = 0
    total: int | None = None
    resumed = restarted = failures = 0
    start = time.monotonic()
    ok = False
    try:
        with atomic_open(dest, 0o600, suffix=".part", buffering=0) as handle:
            fd, tmp = handle.fileno(), handle.name
            flusher = _Flusher(fd, flush_size)
            try:
                while True:
                    headers = {"Accept-Encoding": "identity"}
                    if written:
                        headers["Range"] = f"bytes={written}-"
                    try:
                        response = http.request("GET", path, expected=(200, 206), stream=True, headers=headers)
                    except HttpError as exc:
                        raise QdrantError(
                            f"{ep.name}: downloading {path} failed: {_error_text(exc) if exc.status else exc}; "
                            f"nothing was kept at {dest}",
                            status=exc.status,
                            attempts=http.attempts,
                        ) from exc
                    try:
                        if response.status_code == 206:
                            first, size = _content_range_start(response.headers.get("Content-Range"))
                            if first != written:
                                raise QdrantError(f"{ep.name}: server answered range {first} when asked for {written}")
                            resumed += 1
                        else:
                            if written:  # the server ignored Range: start again from byte 0
                                restarted += 1
                                pipe.finish()
                                pipe = _HashPipe(chunk_size)
                                os.ftruncate(fd, 0)
                                os.lseek(fd, 0, os.SEEK_SET)
                                flusher.restart()
                                written = 0
                            length = response.headers.get("Content-Length")
                            size = int(length) if length and length.isdigit() else None
                        if size is not None:
                            total = size
                        if expected_size is not None and total is not None and total != expected_size:
                            raise QdrantError(
                                f"{ep.name}: {path} is {total} bytes, but Qdrant lists it with "
                                f"{expected_size} bytes; refusing (snapshot replaced while downloading?)"
                            )
                        reader = _body_reader(response)
                        while True:
                            buf = pipe.take()
                            try:
                                n = _fill(reader, memoryview(buf))
                            except _Transient:
                                pipe.give(buf, 0)
                                raise
                            if n:
                                try:
                                    _write_all(fd, memoryview(buf)[:n])
                                    flusher.wrote(n)
                                except OSError as exc:
                                    pipe.give(buf, 0)
                                    raise QdrantError(f"option 'dest': cannot write {tmp}: {exc.strerror}") from exc
                            pipe.give(buf, n)
                            written += n
                            if n < len(buf):
                                break
                        if total is not None and written < total:
                            raise _Transient(f"connection closed after {written} of {total} bytes")
                        break
                    except _Transient as exc:
                        failures += 1
                        if failures > ep.retries:
                            raise QdrantError(
                                f"{ep.name}: downloading {path} broke {failures} time(s), last: {exc}; "
                                f"nothing was kept at {dest}",
                                bytes_received=written,
                            ) from exc
                        sleep(min(ep.backoff * (2 ** (failures - 1)), 30.0))
                    finally:
                        response.close()
                digest = pipe.finish()
                try:
                    flusher.close()
                except OSError as exc:
                    raise QdrantError(f"option 'dest': cannot write {tmp}: {exc.strerror}") from exc
            finally:
                with contextlib.suppress(Exception):
                    flusher.close()  # before atomic_open closes the file: never sync a closed (or reused) fd
            if total is not None and written != total:
                raise QdrantError(
                    f"{ep.name}: {path}: received {written} bytes, expected {total}; nothing kept at {dest}"
                )
            if expected_sha256 and digest != expected_sha256:
                raise QdrantError(
                    f"{ep.name}: {path}: checksum mismatch - downloaded sha256 {digest}, Qdrant reports "
                    f"{expected_sha256}; the file was discarded, nothing kept at {dest}",
                    sha256=digest,
                    expected_sha256=expected_sha256,
                )
        ok = True
    finally:
        if not ok:
            with contextlib.suppress(Exception):
                pipe.finish()
    seconds = time.monotonic() - start
    return {
        "path": dest,
        "sha256": digest,
        "size_bytes": written,
        "resumed": resumed,
        "restarted": restarted,
        "transfer_failures": failures,
        "transfer_seconds": round(seconds, 3),
        "throughput_mib_s": round(written / 1048576 / seconds, 1) if seconds > 0 else None,
        "flushes": flusher.syncs if flusher else 0,
    }


class _MultipartBody:
    """multipart/form-data with one file part ``snapshot``, read from disk in chunks (has a length)."""

    def __init__(self, path: str, boundary: str, chunk: int = 1024 * 1024) -> None:
        name = os.path.basename(path).replace('"', "")
        self.head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="snapshot"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{boundary}--\r\n".encode()
        self.size = os.path.getsize(path)
        self.len = len(self.head) + self.size + len(self.tail)
        self.handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.stage = 0
        self.chunk = chunk

    def __len__(self) -> int:
        return self.len

    def read(self, n: int = -1) -> bytes:
        if self.stage == 0:
            self.stage = 1
            return self.head
        if self.stage == 1:
            data = self.handle.read(max(n, self.chunk) if n and n > 0 else self.chunk)
            if data:
                return data
            self.stage = 2
        if self.stage == 2:
            self.stage = 3
            return self.tail
        return b""

    def close(self) -> None:
        self.handle.close()


def upload(
    ep: Endpoint,
    http: HttpClient,
    collection: str,
    src: str,
    checksum: str,
    priority: str,
    wait: bool,
    sleep: t.Callable[[float], None] = time.sleep,
) -> dict[str, t.Any]:
    params = {"priority": priority, "wait": str(wait).lower(), "checksum": checksum}
    path = f"/collections/{_q(collection)}/snapshots/upload"
    start = time.monotonic()
    for attempt in range(ep.retries + 1):
        boundary = uuid.uuid4().hex
        body = _MultipartBody(src, boundary)
        try:
            response = http.request(
                "POST",
                path,
                expected=(200, 202),
                retry=False,
                params=params,
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            return {
                "recovered": response.status_code == 200,
                "accepted": response.status_code == 202,
                "upload_seconds": round(time.monotonic() - start, 3),
                "upload_attempts": attempt + 1,
            }
        except HttpError as exc:
            transient = exc.status is None or exc.status in RETRY_STATUSES
            if not transient or attempt >= ep.retries:
                raise QdrantError(
                    f"{ep.name}: uploading {src} to recover collection {collection!r} failed: "
                    f"{_error_text(exc) if exc.status else exc}",
                    status=exc.status,
                ) from exc
            sleep(min(ep.backoff * (2**attempt), 30.0))
        finally:
            body.close()
    raise QdrantError(f"{ep.name}: upload: no attempt made")  # pragma: no cover


# --------------------------------------------------------------------------- the qdrant_snapshot states


@dataclasses.dataclass
class SnapshotRequest:
    state: str
    collection: str | None = None
    snapshot_name: str | None = None
    dest: str | None = None
    src: str | None = None
    location: str | None = None
    location_api_key: str | None = None
    checksum: str | None = None
    priority: str = "snapshot"
    wait: bool = True
    force: bool = False
    reuse_max_age: float = 0.0
    source: Endpoint | None = None
    source_collection: str | None = None
    source_version: str | None = None
    check_compatibility: bool = True
    chunk_size: int = DEFAULT_CHUNK
    flush_size: int = DEFAULT_FLUSH


def _age_seconds(creation_time: str | None) -> float | None:
    if not creation_time:
        return None
    try:
        stamp = dt.datetime.fromisoformat(creation_time.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return (dt.datetime.now(dt.timezone.utc) - stamp).total_seconds()
    except ValueError:
        return None


def _target_label(req: SnapshotRequest) -> str:
    return f"collection {req.collection!r}" if req.collection else "full storage"


def state_listed(ep: Endpoint, http: HttpClient, req: SnapshotRequest) -> dict[str, t.Any]:
    snaps = list_snapshots(ep, http, req.collection)
    return {"changed": False, "snapshots": snaps, "msg": f"{len(snaps)} snapshot(s) of {_target_label(req)}"}


def state_present(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    snaps = list_snapshots(ep, http, req.collection)
    if req.snapshot_name:
        found = next((s for s in snaps if s["name"] == req.snapshot_name), None)
        if found is None:
            raise QdrantError(
                f"{ep.name}: snapshot {req.snapshot_name!r} of {_target_label(req)} does not exist; "
                "Qdrant names new snapshots itself, so omit option 'snapshot_name' to create one"
            )
        return {"changed": False, "snapshot": found, "msg": f"snapshot {found['name']} exists"}
    if req.reuse_max_age > 0 and snaps:
        newest = snaps[-1]
        age = _age_seconds(newest.get("creation_time"))
        if age is not None and age <= req.reuse_max_age:
            return {
                "changed": False,
                "snapshot": newest,
                "msg": f"reusing snapshot {newest['name']} ({age:.0f}s old <= reuse_max_age)",
            }
    if req.collection and get_collection(ep, http, req.collection) is None:
        raise QdrantError(f"{ep.name}: collection {req.collection!r} does not exist; check option 'collection'")
    if check_mode:
        return {"changed": True, "msg": f"would create a snapshot of {_target_label(req)}"}
    start = time.monotonic()
    snap = api(
        ep,
        http,
        "POST",
        snapshots_path(req.collection),
        f"creating a snapshot of {_target_label(req)}",
        params={"wait": "true"},
    )
    return {
        "changed": True,
        "snapshot": snap,
        "snapshot_seconds": round(time.monotonic() - start, 3),
        "msg": f"created snapshot {snap['name']} of {_target_label(req)} ({snap.get('size')} bytes)",
    }


def state_absent(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    if not req.snapshot_name:
        raise QdrantError("option 'snapshot_name' is required when state=absent")
    snaps = list_snapshots(ep, http, req.collection)
    found = next((s for s in snaps if s["name"] == req.snapshot_name), None)
    if found is None:
        return {"changed": False, "msg": f"snapshot {req.snapshot_name} is absent"}
    diff = {"before": {"snapshot": found["name"]}, "after": {}}
    if check_mode:
        return {"changed": True, "diff": diff, "msg": f"would delete snapshot {found['name']}"}
    api(
        ep,
        http,
        "DELETE",
        snapshot_path(req.collection, found["name"]),
        f"deleting snapshot {found['name']}",
        params={"wait": "true"},
    )
    return {"changed": True, "diff": diff, "snapshot": found, "msg": f"deleted snapshot {found['name']}"}


def state_downloaded(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    if not req.dest:
        raise QdrantError("option 'dest' is required when state=downloaded")
    snaps = list_snapshots(ep, http, req.collection)
    if not snaps:
        raise QdrantError(
            f"{ep.name}: {_target_label(req)} has no snapshot to download; create one first (state=present)"
        )
    if req.snapshot_name:
        snap = next((s for s in snaps if s["name"] == req.snapshot_name), None)
        if snap is None:
            raise QdrantError(
                f"{ep.name}: snapshot {req.snapshot_name!r} of {_target_label(req)} not found; "
                f"existing: {[s['name'] for s in snaps][-5:]}"
            )
    else:
        snap = snaps[-1]
    dest = os.path.join(req.dest, snap["name"]) if os.path.isdir(req.dest) else req.dest
    expected = (req.checksum or snap.get("checksum") or "").lower() or None
    if req.checksum and snap.get("checksum") and req.checksum.lower() != snap["checksum"].lower():
        raise QdrantError(
            f"option 'checksum' ({req.checksum}) differs from the checksum Qdrant reports for "
            f"{snap['name']} ({snap['checksum']})"
        )
    warnings = [] if expected else [f"Qdrant reports no checksum for {snap['name']}: only its size is verified"]
    base = {"snapshot": snap, "path": dest, "warnings": warnings}
    if os.path.exists(dest) and not req.force and os.path.getsize(dest) == snap.get("size"):
        have = sha256_file(dest, req.chunk_size) if expected else None
        if expected and have == expected:
            return {
                **base,
                "changed": False,
                "sha256": have,
                "size_bytes": snap["size"],
                "checksum_verified": True,
                "msg": f"{dest} already holds snapshot {snap['name']} (sha256 matches)",
            }
    if check_mode:
        return {**base, "changed": True, "msg": f"would download snapshot {snap['name']} to {dest}"}
    got = download(
        ep, http, snapshot_path(req.collection, snap["name"]), dest, expected, snap.get("size"), req.chunk_size,
        flush_size=req.flush_size,
    )
    return {
        **base,
        **got,
        "changed": True,
        "checksum_verified": bool(expected),
        "msg": f"downloaded snapshot {snap['name']} to {dest} ({got['size_bytes']} bytes, sha256 "
        f"{'verified' if expected else 'computed'}, {got['throughput_mib_s']} MiB/s)",
    }


def _compatibility(
    ep: Endpoint, http: HttpClient, req: SnapshotRequest, meta: dict[str, t.Any], target: dict[str, t.Any] | None
) -> dict[str, t.Any]:
    """Refuse (QdrantError) when the target cannot take the snapshot; return what was checked."""
    if not req.collection:
        raise QdrantError("a compatibility check needs the collection name")
    checks: dict[str, t.Any] = {"target_version": server_version(ep, http)}
    src_version, src_config = meta.get("version"), meta.get("config")
    if req.source is not None:
        shttp = req.source.http()
        checks["source_version"] = src_version = server_version(req.source, shttp)
        if src_config is None:
            info = get_collection(req.source, shttp, req.source_collection or req.collection)
            if info is None:
                raise QdrantError(
                    f"{req.source.name}: collection {req.source_collection or req.collection!r} "
                    "does not exist; check option 'source_collection'"
                )
            src_config = info.get("config")
    src_version = src_version or req.source_version
    if not src_version:
        raise QdrantError(
            "cannot tell which Qdrant version made the snapshot: give option 'source' (the Qdrant "
            "it came from) or 'source_version', or set check_compatibility=false"
        )
    checks["source_version"] = src_version
    ok, reason = version_compatible(src_version, checks["target_version"])
    checks["version"] = reason
    if not ok:
        raise QdrantError(f"incompatible target {ep.name}: {reason}", compatibility=checks)
    if target is not None:
        if src_config is None:
            raise QdrantError(
                f"collection {req.collection!r} exists on the target and the snapshot's config is "
                "unknown: give option 'source' so the configs can be compared"
            )
        conflicts = config_conflicts(src_config, target.get("config") or {}, req.collection)
        checks["config"] = conflicts or "target collection config matches the snapshot"
        if conflicts:
            raise QdrantError(f"incompatible target {ep.name}: " + "; ".join(conflicts), compatibility=checks)
    else:
        checks["config"] = "target collection does not exist yet; the snapshot creates it"
    return checks


def state_recovered(ep: Endpoint, http: HttpClient, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    if not req.collection:
        raise QdrantError(
            "option 'collection' is required to upload or recover (Qdrant recovers full snapshots "
            "only from the command line)"
        )
    if bool(req.src) == bool(req.location):
        raise QdrantError(
            f"state={req.state}: give exactly one of options 'src' (a local file to upload) and "
            "'location' (a URL the target fetches itself)"
        )
    if req.state == "uploaded" and not req.src:
        raise QdrantError("option 'src' is required when state=uploaded")
    meta: dict[str, t.Any] = {}
    checksum = (req.checksum or "").lower() or None
    result: dict[str, t.Any] = {"collection": req.collection, "priority": req.priority}
    if req.src:
        if not os.path.isfile(req.src):
            raise QdrantError(f"option 'src': {req.src} is not a file")
        actual = sha256_file(req.src, req.chunk_size)
        if checksum and checksum != actual:
            raise QdrantError(
                f"option 'src': {req.src} has sha256 {actual}, option 'checksum' says {checksum}; "
                "refusing to upload a corrupted snapshot"
            )
        checksum = actual
        meta = read_snapshot_meta(req.src)
        result.update(path=req.src, sha256=actual, size_bytes=os.path.getsize(req.src))
    target = get_collection(ep, http, req.collection)
    if req.check_compatibility:
        result["compatibility"] = _compatibility(ep, http, req, meta, target)
    points = (target or {}).get("points_count") or 0
    if target is not None and points and not req.force:
        return {
            **result,
            "changed": False,
            "warnings": [
                f"collection {req.collection!r} already exists on {ep.name} with {points} point(s) and a compatible "
                "config; not overwritten (force=false). Prove equality with sophia.migrate.qdrant_compare, or set "
                "force=true to replace it with the snapshot"
            ],
            "msg": f"collection {req.collection!r} already present on the target; nothing recovered",
        }
    diff = {
        "before": {"collection": req.collection, "points_count": points if target else None},
        # the file's name only: a location's query (a presigned URL's signature) and credentials stay out
        "after": {
            "collection": req.collection,
            "recovered_from": os.path.basename(req.src or redact_url(req.location)),
        },
    }
    if check_mode:
        return {
            **result,
            "changed": True,
            "diff": diff,
            "msg": f"would recover collection {req.collection!r} from {req.src or redact_url(req.location)}",
        }
    if req.src:
        got = upload(ep, http, req.collection, req.src, checksum, req.priority, req.wait)
    else:
        body: dict[str, t.Any] = {"location": req.location, "priority": req.priority}
        if checksum:
            body["checksum"] = checksum
        if req.location_api_key:
            body["api_key"] = req.location_api_key
        start = time.monotonic()
        try:
            response = http.request(
                "PUT",
                f"/collections/{_q(req.collection)}/snapshots/recover",
                expected=(200, 202),
                params={"wait": str(req.wait).lower()},
                json=body,
            )
        except HttpError as exc:
            # Qdrant's error may quote the location it could not fetch: only its redacted form is shown
            detail = (_error_text(exc) if exc.status else str(exc)).replace(req.location, redact_url(req.location))
            raise QdrantError(
                f"{ep.name}: recovering collection {req.collection!r} from {redact_url(req.location)} failed: {detail}",
                status=exc.status,
            ) from exc
        got = {
            "recovered": response.status_code == 200,
            "accepted": response.status_code == 202,
            "recover_seconds": round(time.monotonic() - start, 3),
        }
        result["location"] = redact_url(req.location)
    after = get_collection(ep, http, req.collection) if req.wait else None
    if after is not None:
        result["points_count"] = after.get("points_count")
    return {
        **result,
        **got,
        "changed": True,
        "diff": diff,
        "checksum_sent": checksum,
        "msg": f"recovered collection {req.collection!r} on {ep.name} with priority={req.priority}"
        + (f" ({result.get('points_count')} points)" if after is not None else " (accepted, in progress)"),
    }


def snapshot(ep: Endpoint, req: SnapshotRequest, check_mode: bool) -> dict[str, t.Any]:
    """Entry point of qdrant_snapshot: dispatch on ``req.state``."""
    if req.checksum and not SHA256_RE.match(req.checksum.lower()):
        raise QdrantError(f"option 'checksum' must be 64 hex digits (sha256), got {req.checksum!r}")
    if req.chunk_size < 65536 or req.chunk_size > 64 * 1048576:
        raise QdrantError("option 'chunk_size' must be between 65536 and 67108864 bytes")
    if req.flush_size != 0 and req.flush_size < req.chunk_size:
        raise QdrantError(
            f"option 'flush_size' must be 0 (flush only at the end) or at least chunk_size ({req.chunk_size}), "
            f"got {req.flush_size}"
        )
    if req.location and split_url("location", req.location).scheme not in ("http", "https", "file"):
        raise QdrantError("option 'location' must be an http://, https:// or file:// URL")
    start = time.monotonic()
    http = ep.http()
    if req.state == "listed":
        result = state_listed(ep, http, req)
    elif req.state == "present":
        result = state_present(ep, http, req, check_mode)
    elif req.state == "absent":
        result = state_absent(ep, http, req, check_mode)
    elif req.state == "downloaded":
        result = state_downloaded(ep, http, req, check_mode)
    else:
        result = state_recovered(ep, http, req, check_mode)
    result["state"] = req.state
    result["attempts"] = http.attempts
    result["duration_seconds"] = round(time.monotonic() - start, 3)
    return result


# --------------------------------------------------------------------------- qdrant_compare


def import_qdrant_client() -> t.Any:
    """qdrant_client, imported on first use (it is large); raises ImportError when missing."""
    import qdrant_client  # noqa: PLC0415 - deliberately lazy

    return qdrant_client


def make_client(ep: Endpoint) -> t.Any:
    qc = import_qdrant_client()
    parts = urllib.parse.urlsplit(ep.url)
    https = parts.scheme == "https"
    verify: t.Any = False
    try:
        if ep.validate_certs:
            verify = ssl.create_default_context(cafile=ep.ca_path) if ep.ca_path else True
            if ep.client_cert and isinstance(verify, ssl.SSLContext):
                verify.load_cert_chain(ep.client_cert, ep.client_key)
            elif ep.client_cert:
                verify = ssl.create_default_context()
                verify.load_cert_chain(ep.client_cert, ep.client_key)
    except (ssl.SSLError, OSError, ValueError) as exc:  # not PEM, a key that does not match, unreadable
        raise QdrantError(f"{ep.name}: cannot use the CA / client certificate files: {exc}") from exc
    return qc.QdrantClient(
        host=parts.hostname,
        port=parts.port or (443 if https else 80),
        https=https,
        prefix=parts.path.rstrip("/") or None,
        api_key=ep.api_key,
        timeout=max(1, int(ep.timeout)),
        verify=verify,
        check_compatibility=False,
    )


def qc_call(
    ep: Endpoint,
    what: str,
    fn: t.Callable[..., t.Any],
    *args: t.Any,
    sleep: t.Callable[[float], None] = time.sleep,
    **kwargs: t.Any,
) -> t.Any:
    """Call qdrant-client with retries on transient failures; errors become QdrantError."""
    import_qdrant_client()
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse  # noqa: PLC0415

    for attempt in range(ep.retries + 1):
        last = attempt >= ep.retries
        try:
            return fn(*args, **kwargs)
        except UnexpectedResponse as exc:
            if exc.status_code in RETRY_STATUSES and not last:
                sleep(min(ep.backoff * (2**attempt), 30.0))
                continue
            try:
                detail = json.loads(exc.content)["status"]["error"]
            except (ValueError, KeyError, TypeError):
                detail = (exc.content or b"").decode(errors="replace")[:300]
            hint = "; check api_key" if exc.status_code in (401, 403) else ""
            raise QdrantError(
                f"{ep.name}: {what}: HTTP {exc.status_code}: {detail}{hint}", status=exc.status_code
            ) from exc
        except (ResponseHandlingException, OSError, ConnectionError) as exc:
            if not last:
                sleep(min(ep.backoff * (2**attempt), 30.0))
                continue
            raise QdrantError(f"{ep.name}: {what}: cannot reach the server ({exc.__class__.__name__})") from exc
        except Exception as exc:
            if exc.__class__.__module__.startswith("httpx") and not last:
                sleep(min(ep.backoff * (2**attempt), 30.0))
                continue
            if exc.__class__.__module__.startswith(("httpx", "qdrant_client", "pydantic")):
                raise QdrantError(f"{ep.name}: {what}: {exc.__class__.__name__}: {exc}") from exc
            raise
    raise QdrantError(f"{ep.name}: {what}: no attempt made")  # pragma: no cover


def _plain(obj: t.Any) -> t.Any:
    if hasattr(obj, "model_dump"):
        return _plain(obj.model_dump(mode="json", exclude_none=True))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _canon(obj: t.Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode()


def id_key(pid: t.Any) -> tuple[int, t.Any]:
    """Qdrant orders numeric ids before UUIDs; UUIDs by their 128-bit value (= canonical hex order)."""
    if isinstance(pid, int):
        return (0, pid)
    try:
        return (1, uuid.UUID(str(pid)).int)
    except ValueError:
        return (2, str(pid))


def _get(d: dict[str, t.Any], dotted: str) -> t.Any:
    cur: t.Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def config_diff(src: dict[str, t.Any], tgt: dict[str, t.Any], keys: t.Sequence[str]) -> list[dict[str, t.Any]]:
    out = []
    for key in keys:
        a, b = _get(src, key), _get(tgt, key)
        if key.endswith("shard_number"):
            a, b = a or 1, b or 1
        if (a or None) != (b or None):
            out.append({"key": key, "source": a, "target": b})
    return out


class _Side:
    """Scroll one collection in id order, in batches, computing the order-independent digest.

    The pages are fetched by a background thread, at most ``depth`` pages ahead, so the two sides of a
    comparison are read at the same time and hashing overlaps the network (the compare runs inside the
    write freeze; memory stays bounded by ``depth`` pages per side)."""

    def __init__(self, ep: Endpoint, client: t.Any, collection: str, batch: int, depth: int = 2) -> None:
        self.ep, self.client, self.collection, self.batch = ep, client, collection, batch
        self.depth = depth
        self.digest = 0
        self.count = 0
        self.ordered = True
        self._last: tuple[int, t.Any] | None = None

    def _fetch(self, pages: queue.Queue[t.Any], halt: threading.Event) -> None:
        offset = None
        try:
            while not halt.is_set():
                records, offset = qc_call(
                    self.ep,
                    f"scrolling collection {self.collection!r}",
                    self.client.scroll,
                    collection_name=self.collection,
                    limit=self.batch,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                )
                _put(pages, ("page", records), halt)
                if offset is None:
                    break
            _put(pages, ("end", None), halt)
        except Exception as exc:  # handed to the reading thread, which raises it
            _put(pages, ("error", exc), halt)

    def pages(self) -> t.Iterator[t.Any]:
        pages: queue.Queue[t.Any] = queue.Queue(maxsize=self.depth)
        halt = threading.Event()
        worker = threading.Thread(target=self._fetch, args=(pages, halt), name=f"scroll-{self.ep.name}", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = pages.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            halt.set()

    def points(self) -> t.Iterator[tuple[t.Any, bytes, t.Any, t.Any]]:
        for records in self.pages():
            for rec in records:
                vector, payload = _plain(rec.vector), _plain(rec.payload) or {}
                digest = hashlib.sha256(_canon([rec.id, vector, payload])).digest()
                self.digest = (self.digest + int.from_bytes(digest, "big")) % (1 << 256)
                self.count += 1
                key = id_key(rec.id)
                if self._last is not None and key <= self._last:
                    self.ordered = False
                self._last = key
                yield rec.id, digest, vector, payload


def _put(pages: queue.Queue[t.Any], item: tuple[str, t.Any], halt: threading.Event) -> None:
    """Put ``item``, giving up when the reader has stopped reading (``halt``)."""
    while not halt.is_set():
        try:
            pages.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _describe(a: tuple[t.Any, ...], b: tuple[t.Any, ...]) -> dict[str, t.Any]:
    problems = []
    if a[2] != b[2]:
        problems.append("vector differs")
    if a[3] != b[3]:
        keys = sorted(k for k in set(a[3]) | set(b[3]) if a[3].get(k) != b[3].get(k))
        problems.append(f"payload differs in {keys[:10]}")
    return {"id": a[0], "problem": "; ".join(problems) or "content differs"}


def _first_vector(vector: t.Any, name: str | None) -> tuple[str | None, t.Any]:
    if isinstance(vector, list):
        return None, vector
    if isinstance(vector, dict):
        names = [name] if name else sorted(k for k, v in vector.items() if isinstance(v, list))
        for n in names:
            if isinstance(vector.get(n), list):
                return n, vector[n]
    return None, None


def _search_groups(points: list[t.Any]) -> list[tuple[float, frozenset[t.Any]]]:
    groups: list[tuple[float, set[t.Any]]] = []
    for p in points:
        score = round(float(p.score), 5)
        if groups and groups[-1][0] == score:
            groups[-1][1].add(p.id)
        else:
            groups.append((score, {p.id}))
    return [(s, frozenset(ids)) for s, ids in groups]


def search_equal(a: list[t.Any], b: list[t.Any]) -> bool:
    """Same ranking, allowing ties (equal scores) in any order; the last tie group may be cut by the limit."""
    if [p.id for p in a] == [p.id for p in b]:
        return True
    ga, gb = _search_groups(a), _search_groups(b)
    if len(ga) != len(gb) or [s for s, _u1 in ga] != [s for s, _u2 in gb] or len(a) != len(b):
        return False
    return all(x == y for (_u1, x), (_u2, y) in zip(ga[:-1], gb[:-1], strict=True))


@dataclasses.dataclass
class CompareOptions:
    collection: str
    target_collection: str | None = None
    batch_size: int = 256
    max_differences: int = 20
    search_samples: int = 10
    search_limit: int = 10
    search_exact: bool = True
    vector_name: str | None = None
    seed: int = 0
    config_keys: t.Sequence[str] = DEFAULT_CONFIG_KEYS


def compare(src: Endpoint, tgt: Endpoint, opts: CompareOptions) -> dict[str, t.Any]:
    """Compare two collections; returns the figures and ``equal``."""
    start = time.monotonic()
    qc = import_qdrant_client()
    models = qc.models
    tcol = opts.target_collection or opts.collection
    csrc, ctgt = make_client(src), make_client(tgt)
    scrolls: list[t.Iterator[t.Any]] = []
    try:
        info_s = qc_call(src, f"reading collection {opts.collection!r}", csrc.get_collection, opts.collection)
        info_t = qc_call(tgt, f"reading collection {tcol!r}", ctgt.get_collection, tcol)
        conf_diff = config_diff(_plain(info_s.config), _plain(info_t.config), opts.config_keys)
        count_s = qc_call(src, "counting points", csrc.count, opts.collection, exact=True).count
        count_t = qc_call(tgt, "counting points", ctgt.count, tcol, exact=True).count
        side_s = _Side(src, csrc, opts.collection, opts.batch_size)
        side_t = _Side(tgt, ctgt, tcol, opts.batch_size)
        rng = random.Random(opts.seed)  # noqa: S311 - sampling, not security
        samples: list[tuple[t.Any, str | None, t.Any]] = []
        seen = 0
        differences: list[dict[str, t.Any]] = []
        differing = missing = extra = 0
        it_s, it_t = side_s.points(), side_t.points()
        scrolls += [it_s, it_t]
        a, b = next(it_s, None), next(it_t, None)
        while a is not None or b is not None:
            ka = id_key(a[0]) if a is not None else None
            kb = id_key(b[0]) if b is not None else None
            if a is not None and (kb is None or ka < kb):
                missing += 1
                if len(differences) < opts.max_differences:
                    differences.append({"id": a[0], "problem": "missing on target"})
            elif b is not None and (ka is None or kb < ka):
                extra += 1
                if len(differences) < opts.max_differences:
                    differences.append({"id": b[0], "problem": "only on target"})
            elif a is not None and b is not None and a[1] != b[1]:
                differing += 1
                if len(differences) < opts.max_differences:
                    differences.append(_describe(a, b))
            if a is not None and (kb is None or ka <= kb):
                name, vec = _first_vector(a[2], opts.vector_name)
                if vec is not None and opts.search_samples > 0:
                    seen += 1
                    if len(samples) < opts.search_samples:
                        samples.append((a[0], name, vec))
                    else:
                        j = rng.randrange(seen)
                        if j < opts.search_samples:
                            samples[j] = (a[0], name, vec)
                a_next = True
            else:
                a_next = False
            b_next = b is not None and (ka is None or kb <= ka)
            if a_next:
                a = next(it_s, None)
            if b_next:
                b = next(it_t, None)
        ordered = side_s.ordered and side_t.ordered
        digest_equal = side_s.digest == side_t.digest and side_s.count == side_t.count
        search: list[dict[str, t.Any]] = []
        params = models.SearchParams(exact=opts.search_exact)
        for pid, name, vec in samples:
            ra = qc_call(
                src,
                "searching",
                csrc.query_points,
                opts.collection,
                query=vec,
                using=name,
                limit=opts.search_limit,
                with_payload=False,
                search_params=params,
            ).points
            rb = qc_call(
                tgt,
                "searching",
                ctgt.query_points,
                tcol,
                query=vec,
                using=name,
                limit=opts.search_limit,
                with_payload=False,
                search_params=params,
            ).points
            if not search_equal(ra, rb):
                search.append(
                    {"query_point_id": pid, "source_ids": [p.id for p in ra], "target_ids": [p.id for p in rb]}
                )
    finally:
        for scroll in scrolls:  # a failure on one side stops the other side's reading thread too
            scroll.close()
        for c in (csrc, ctgt):
            with contextlib.suppress(Exception):
                c.close()
    search_ok = not search
    equal = (
        (not conf_diff)
        and count_s == count_t
        and digest_equal
        and search_ok
        and (not ordered or not (missing or extra or differing))
    )
    if not ordered:
        differences = []
    summary = []
    if conf_diff:
        summary.append(f"config differs in {[d['key'] for d in conf_diff]}")
    if count_s != count_t:
        summary.append(f"point count {count_s} vs {count_t}")
    if not digest_equal:
        summary.append(
            f"content digest differs ({differing} differing, {missing} missing on target, {extra} only on target)"
            if ordered
            else "content digest differs"
        )
    if not search_ok:
        summary.append(f"{len(search)} of {len(samples)} sampled searches rank differently")
    seconds = time.monotonic() - start
    return {
        "changed": False,
        "equal": equal,
        "msg": (
            "collections are equal: config, exact count, content digest over "
            f"{count_s} points and {len(samples)} sampled searches match"
            if equal
            else "; ".join(summary)
        ),
        "config_differences": conf_diff,
        "count": {"source": count_s, "target": count_t},
        "digest": {
            "source": f"{side_s.digest:064x}",
            "target": f"{side_t.digest:064x}",
            "points_source": side_s.count,
            "points_target": side_t.count,
        },
        "differing_points": differing,
        "missing_on_target": missing,
        "only_on_target": extra,
        "differences": differences,
        "ordered_scroll": ordered,
        "search": {
            "samples": len(samples),
            "limit": opts.search_limit,
            "exact": opts.search_exact,
            "mismatches": search[: opts.max_differences],
        },
        "duration_seconds": round(seconds, 3),
        "points_per_second": round((side_s.count + side_t.count) / seconds, 1) if seconds > 0 else None,
    }
