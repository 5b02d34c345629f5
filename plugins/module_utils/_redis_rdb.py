"""Redis RDB backup for sophia.migrate.redis_migrate mode=rdb: the source's snapshot into a local file.

The snapshot is streamed over the replication protocol (``SYNC``, what ``redis-cli --rdb`` does) into a
local file, hashed while it streams (sha256); the file appears by an atomic rename, mode 0600.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import time
import typing as t

# connect is looked up at call time (_redis_client.connect): the unit tests put fake servers in its place
from ansible_collections.sophia.migrate.plugins.module_utils import _redis_client
from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_open, sha256_file
from ansible_collections.sophia.migrate.plugins.module_utils._redis_client import (
    Endpoint,
    RedisMigrateError,
    call,
    describe_error,
    info,
    keyspace,
    keyspace_public,
    total_keys,
)


class _Reader:
    """Buffered reads from a socket (RESP lines and raw byte runs)."""

    def __init__(self, sock: t.Any) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            self._fill()
        idx = self.buf.index(b"\n")
        line, self.buf = self.buf[: idx + 1], self.buf[idx + 1:]
        return line.rstrip(b"\r\n")

    def chunks(self, n: int) -> t.Iterator[bytes]:
        while n > 0:
            if not self.buf:
                self._fill()
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def until_mark(self, mark: bytes) -> t.Iterator[bytes]:
        """Yield data up to (not including) ``mark``; keeps a tail so a split mark is found."""
        while True:
            idx = self.buf.find(mark)
            if idx >= 0:
                data, self.buf = self.buf[:idx], self.buf[idx + len(mark):]
                if data:
                    yield data
                return
            if len(self.buf) > len(mark):
                cut = len(self.buf) - len(mark)
                yield self.buf[:cut]
                self.buf = self.buf[cut:]
            self._fill()


def _resp(*args: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _open_socket(ep: Endpoint, timeout: float) -> t.Any:
    sock = socket.create_connection((ep.host, ep.port), timeout=ep.connect_timeout)
    sock.settimeout(timeout)
    if ep.tls:
        ctx = ssl.create_default_context(cafile=ep.tls_ca_path)
        if not ep.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if ep.tls_cert_path:
            ctx.load_cert_chain(ep.tls_cert_path, ep.tls_key_path)
        sock = ctx.wrap_socket(sock, server_hostname=ep.host)
    return sock


def read_rdb_stream(reader: _Reader, handle: t.BinaryIO) -> tuple[int, str]:
    """After SYNC: read the bulk header ($<len> or $EOF:<mark>) and copy the RDB; returns (size, sha256)."""
    while True:
        header = reader.line()
        if header == b"":  # keep-alive newlines while the server prepares the snapshot
            continue
        if header.startswith(b"-"):
            raise RedisMigrateError(f"server refused SYNC: {header[1:].decode(errors='replace')}")
        if header.startswith(b"$"):
            break
        if header.startswith(b"+"):  # e.g. +FULLRESYNC, not sent for SYNC but harmless
            continue
        raise RedisMigrateError(f"unexpected reply to SYNC: {header[:60]!r}")
    digest = hashlib.sha256()
    size = 0
    eof = header.startswith(b"$EOF:")
    stream = reader.until_mark(header[5:]) if eof else reader.chunks(int(header[1:]))
    for piece in stream:
        if size == 0 and not piece.startswith(b"REDIS"[: len(piece)]):
            raise RedisMigrateError("the stream after SYNC is not an RDB file (no REDIS magic)")
        digest.update(piece)
        handle.write(piece)
        size += len(piece)
    if size < 9:
        raise RedisMigrateError(f"the RDB received is too short ({size} bytes)")
    return size, digest.hexdigest()


def rdb_backup(src: Endpoint, dest: str, force: bool = False, check_mode: bool = False, timeout: float = 600.0,
               clock: t.Callable[[], float] = time.monotonic) -> dict[str, t.Any]:
    """mode=rdb: the source's RDB snapshot to ``dest`` over the replication protocol (like redis-cli --rdb)."""
    started = clock()
    result: dict[str, t.Any] = {"changed": False, "mode": "rdb", "path": dest}
    if os.path.exists(dest) and not force:
        result.update(sha256=sha256_file(dest), size_bytes=os.path.getsize(dest),
                      msg="the backup file exists already (force=true takes a new one)")
        return result
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise RedisMigrateError(f"option dest: directory {directory} does not exist")
    client = _redis_client.connect(src)
    ks = keyspace(src, client)
    offset = int(info(src, client, "replication").get("master_repl_offset", 0))
    result.update(source=src.public(), keys=keyspace_public(ks), keys_total=total_keys(ks), source_offset=offset)
    if check_mode:
        result.update(changed=True, msg=f"would write an RDB snapshot of {total_keys(ks)} keys to {dest}")
        return result
    with atomic_open(dest, 0o600) as handle:  # hashed while it streams (read_rdb_stream), never read back
        sock = call(src, "opening a connection for SYNC", _open_socket, src, timeout)
        try:
            reader = _Reader(sock)
            if src.password:
                auth = ("AUTH", src.username, src.password) if src.username else ("AUTH", src.password)
                sock.sendall(_resp(*auth))
                reply = reader.line()
                if not reply.startswith(b"+"):
                    raise RedisMigrateError(describe_error(src, "authenticating for SYNC",
                                                           Exception(reply.decode(errors="replace"))))
            sock.sendall(_resp("REPLCONF", "rdb-only", "1"))
            reader.line()  # older servers answer -ERR: harmless, they simply stream commands afterwards
            sock.sendall(_resp("SYNC"))
            size, sha = call(src, "receiving the RDB snapshot (SYNC)", read_rdb_stream, reader, handle)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
    seconds = clock() - started
    result.update(changed=True, sha256=sha, size_bytes=size, duration_seconds=round(seconds, 3),
                  msg=f"wrote {size} bytes ({total_keys(ks)} keys) to {dest}")
    return result
