"""A Qdrant snapshot streamed to a local file for sophia.migrate.qdrant_snapshot (state=downloaded).

``download`` streams a snapshot into a temporary file next to the destination, hashing (sha256) in a second
thread while the main thread reads the socket and writes the file, with a fixed ring of buffers (memory is flat
whatever the size); a broken transfer is resumed with ``Range`` (or restarted when the server does not honour
it); the file is flushed to disk (fdatasync, in a third thread) every ``flush_size`` bytes while it streams, so
the final fsync has only the tail to write; the digest and the size are compared with what Qdrant reports; the
file is fsynced and renamed into place only when it matches, so nothing partial or wrong is ever left under the
final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import queue
import re
import threading
import time
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_open
from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient, HttpError, requests
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import (
    DEFAULT_CHUNK,
    DEFAULT_FLUSH,
    Endpoint,
    QdrantError,
)
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_rest import error_text

# At most this many bytes per write(2) (curl's own size); the socket is still read a chunk at a time. Measured on this
# project's test machine (Linux 6.18 in a Firecracker VM, ext4; figures in docs/qdrant.md): with 256 KiB or 4 MiB per
# call, 1 GiB took 4.8 to 12.6 s in some rounds, 74 % of it in the kernel's copy into the page cache
# (copy_folio_from_iter_atomic, perf); with 16 KiB per call 1.6 to 3.6 s, in the same sitting. Large writes get
# large page-cache folios, and on that machine fresh large blocks of memory are slow to touch; 64k calls of 16 KiB
# cost about 0.1 s per GiB.
WRITE_SLICE = 16 << 10


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        n = os.write(fd, view[:WRITE_SLICE])
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


class _Download:
    """One download in progress: the hash pipe, the flusher, the bytes received so far and the counters.

    Each attempt is one GET (with ``Range`` once bytes were received); a broken transfer is retried up to
    ``ep.retries`` times, resumed where it broke or restarted from byte 0 when the server ignores ``Range``.
    """

    def __init__(
        self,
        ep: Endpoint,
        http: HttpClient,
        path: str,
        dest: str,
        expected_size: int | None,
        chunk_size: int,
        sleep: t.Callable[[float], None],
        flush_size: int,
    ) -> None:
        self.ep, self.http, self.path, self.dest = ep, http, path, dest
        self.expected_size, self.chunk_size, self.sleep, self.flush_size = expected_size, chunk_size, sleep, flush_size
        self.pipe = _HashPipe(chunk_size)
        self.flusher: _Flusher | None = None
        self.fd, self.tmp = -1, ""
        self.written = 0
        self.total: int | None = None
        self.resumed = self.restarted = self.failures = 0

    def receive(self, handle: t.Any) -> str:
        """Stream the snapshot into the open temporary file ``handle``; the sha256 of what was received."""
        self.fd, self.tmp = handle.fileno(), handle.name
        self.flusher = flusher = _Flusher(self.fd, self.flush_size)
        try:
            while not self._attempt():
                pass
            digest = self.pipe.finish()
            try:
                flusher.close()
            except OSError as exc:
                raise QdrantError(f"option 'dest': cannot write {self.tmp}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(Exception):
                flusher.close()  # before atomic_open closes the file: never sync a closed (or reused) fd
        return digest

    def _attempt(self) -> bool:
        """One GET; True once the body was received whole, False after a broken transfer worth another try."""
        response = self._request()
        try:
            self._start_body(response)
            self._stream(response)
            return True
        except _Transient as exc:
            self.failures += 1
            if self.failures > self.ep.retries:
                raise QdrantError(
                    f"{self.ep.name}: downloading {self.path} broke {self.failures} time(s), last: {exc}; "
                    f"nothing was kept at {self.dest}",
                    bytes_received=self.written,
                ) from exc
            self.sleep(min(self.ep.backoff * (2 ** (self.failures - 1)), 30.0))
            return False
        finally:
            response.close()

    def _request(self) -> t.Any:
        headers = {"Accept-Encoding": "identity"}
        if self.written:
            headers["Range"] = f"bytes={self.written}-"
        try:
            return self.http.request("GET", self.path, expected=(200, 206), stream=True, headers=headers)
        except HttpError as exc:
            raise QdrantError(
                f"{self.ep.name}: downloading {self.path} failed: {error_text(exc) if exc.status else exc}; "
                f"nothing was kept at {self.dest}",
                status=exc.status,
                attempts=self.http.attempts,
            ) from exc

    def _start_body(self, response: t.Any) -> None:
        """Where the answer's body starts (the range asked for, or byte 0 again) and the snapshot's size."""
        if response.status_code == 206:
            first, size = _content_range_start(response.headers.get("Content-Range"))
            if first != self.written:
                raise QdrantError(f"{self.ep.name}: server answered range {first} when asked for {self.written}")
            self.resumed += 1
        else:
            if self.written:  # the server ignored Range: start again from byte 0
                self._restart()
            length = response.headers.get("Content-Length")
            size = int(length) if length and length.isdigit() else None
        if size is not None:
            self.total = size
        if self.expected_size is not None and self.total is not None and self.total != self.expected_size:
            raise QdrantError(
                f"{self.ep.name}: {self.path} is {self.total} bytes, but Qdrant lists it with "
                f"{self.expected_size} bytes; refusing (snapshot replaced while downloading?)"
            )

    def _restart(self) -> None:
        """Empty the file and the digest: the body starts again from byte 0."""
        self.restarted += 1
        self.pipe.finish()
        self.pipe = _HashPipe(self.chunk_size)
        os.ftruncate(self.fd, 0)
        os.lseek(self.fd, 0, os.SEEK_SET)
        t.cast("_Flusher", self.flusher).restart()
        self.written = 0

    def _stream(self, response: t.Any) -> None:
        """Read the body into the file, through the hash pipe; a body cut short is a ``_Transient``."""
        flusher = t.cast("_Flusher", self.flusher)
        reader = _body_reader(response)
        while True:
            buf = self.pipe.take()
            try:
                n = _fill(reader, memoryview(buf))
            except _Transient:
                self.pipe.give(buf, 0)
                raise
            if n:
                try:
                    _write_all(self.fd, memoryview(buf)[:n])
                    flusher.wrote(n)
                except OSError as exc:
                    self.pipe.give(buf, 0)
                    raise QdrantError(f"option 'dest': cannot write {self.tmp}: {exc.strerror}") from exc
            self.pipe.give(buf, n)
            self.written += n
            if n < len(buf):
                break
        if self.total is not None and self.written < self.total:
            raise _Transient(f"connection closed after {self.written} of {self.total} bytes")

    def verify(self, digest: str, expected_sha256: str | None) -> None:
        """Refuse a file whose size or sha256 is not what Qdrant reports (it is then discarded)."""
        if self.total is not None and self.written != self.total:
            raise QdrantError(
                f"{self.ep.name}: {self.path}: received {self.written} bytes, expected {self.total}; "
                f"nothing kept at {self.dest}"
            )
        if expected_sha256 and digest != expected_sha256:
            raise QdrantError(
                f"{self.ep.name}: {self.path}: checksum mismatch - downloaded sha256 {digest}, Qdrant reports "
                f"{expected_sha256}; the file was discarded, nothing kept at {self.dest}",
                sha256=digest,
                expected_sha256=expected_sha256,
            )


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
    job = _Download(ep, http, path, dest, expected_size, chunk_size, sleep, flush_size)
    start = time.monotonic()
    ok = False
    try:
        with atomic_open(dest, 0o600, suffix=".part", buffering=0) as handle:
            digest = job.receive(handle)
            job.verify(digest, expected_sha256)
        ok = True
    finally:
        if not ok:
            with contextlib.suppress(Exception):
                job.pipe.finish()
    seconds = time.monotonic() - start
    return {
        "path": dest,
        "sha256": digest,
        "size_bytes": job.written,
        "resumed": job.resumed,
        "restarted": job.restarted,
        "transfer_failures": job.failures,
        "transfer_seconds": round(seconds, 3),
        "throughput_mib_s": round(job.written / 1048576 / seconds, 1) if seconds > 0 else None,
        "flushes": job.flusher.syncs if job.flusher else 0,
    }
