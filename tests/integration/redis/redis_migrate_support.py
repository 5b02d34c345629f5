"""Helpers for the redis_migrate integration tests: restartable redis-server, a TCP proxy, a writer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import typing as t

import redis

from support.servers import RedisServer, free_port


class MigrateRedis(RedisServer):
    """RedisServer with a full sync that starts at once (no diskless delay) and restartable in place."""

    def __init__(self, password: str | None = None, extra: t.Sequence[str] = (), port: int | None = None):
        super().__init__(password=password, extra=["--repl-diskless-sync-delay", "0", *extra], port=port)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password, socket_timeout=10)

    def conn(self) -> dict[str, t.Any]:
        out: dict[str, t.Any] = {"host": "127.0.0.1", "port": self.port}
        if self.password:
            out["password"] = self.password
        return out

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


class TcpProxy:
    """A loopback TCP forwarder the test controls: block() drops every connection and refuses new ones."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self.blocked = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", self.port))
        self._srv.settimeout(0.2)
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _addr = self._srv.accept()
            except OSError:
                continue
            if self.blocked:
                client.close()
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, up]
            for a, b in ((client, up), (up, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def block(self) -> None:
        self.blocked = True
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def unblock(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self._stop = True
        self.block()
        self._srv.close()
        self._thread.join(2)


class Writer(threading.Thread):
    """Writes at a steady rate, logs every acknowledged write, follows the promotion.

    On READONLY or a connection error it retries the same write on the other endpoint, so after a
    cutover it ends up writing to the new primary. ``check`` then looks up every acknowledged write.
    """

    def __init__(self, endpoints: list[tuple[int, str | None]], rate: float = 300.0) -> None:
        super().__init__(daemon=True)
        self.clients = [redis.Redis(host="127.0.0.1", port=p, password=pw, socket_timeout=5) for p, pw in endpoints]
        self.ports = [p for p, _pw in endpoints]
        self.rate = rate
        self.acked: list[tuple[t.Any, ...]] = []
        self.acked_by_port: dict[int, int] = dict.fromkeys(self.ports, 0)
        self.retries = 0
        self.stopping = threading.Event()
        self.current = 0
        self.error: BaseException | None = None

    def _op(self, c: redis.Redis, i: int) -> tuple[t.Any, ...]:
        kind = i % 6
        if kind == 0:
            c.set(f"w:s:{i}", f"v{i}")
            return ("set", f"w:s:{i}", f"v{i}".encode())
        if kind == 1:
            key = f"w:c:{i % 7}"
            return ("incr", key, c.incr(key))
        if kind == 2:
            key = f"w:h:{i % 13}"
            c.hset(key, f"f{i}", f"v{i}")
            return ("hset", key, f"f{i}".encode(), f"v{i}".encode())
        if kind == 3:
            key = f"w:l:{i % 11}"
            c.lpush(key, str(i))
            return ("lpush", key, str(i).encode())
        if kind == 4:
            key = f"w:e:{i}"
            c.set(key, "x", ex=3600)
            if not c.expire(key, 7200):
                raise RuntimeError(f"EXPIRE {key} found no key")
            return ("expire", key)
        key = f"w:x:{i}"
        c.set(key, "short", px=150)
        return ("short", key)

    def run(self) -> None:
        period = 1.0 / self.rate
        i = 0
        next_at = time.monotonic()
        try:
            while not self.stopping.is_set():
                while True:
                    c = self.clients[self.current]
                    try:
                        entry = self._op(c, i)
                        break
                    except (redis.ReadOnlyError, redis.ConnectionError, redis.TimeoutError):
                        self.retries += 1
                        self.current = (self.current + 1) % len(self.clients)
                        time.sleep(0.01)
                        if self.stopping.is_set() and self.retries > 5000:
                            return
                self.acked.append(entry)
                self.acked_by_port[self.ports[self.current]] += 1
                i += 1
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        if self.error:
            raise self.error
        time.sleep(0.3)  # let the last PX 150 keys expire before check()

    def check(self, c: redis.Redis) -> list[str]:
        """Every acknowledged write that is not on ``c``."""
        lost: list[str] = []
        incr_max: dict[str, int] = {}
        for entry in self.acked:
            kind, key = entry[0], entry[1]
            if kind == "set" and c.get(key) != entry[2]:
                lost.append(f"SET {key}")
            elif kind == "incr":
                incr_max[key] = max(incr_max.get(key, 0), entry[2])
            elif kind == "hset" and c.hget(key, entry[2]) != entry[3]:
                lost.append(f"HSET {key} {entry[2]!r}")
            elif kind == "lpush" and c.lpos(key, entry[2]) is None:
                lost.append(f"LPUSH {key} {entry[2]!r}")
            elif kind == "expire":
                ttl = c.ttl(key)
                if ttl <= 3600:
                    lost.append(f"EXPIRE {key} (ttl {ttl})")
            elif kind == "short" and c.exists(key):
                lost.append(f"PX 150 {key} still exists")
        for key, value in incr_max.items():
            got = int(c.get(key) or 0)
            if got < value:
                lost.append(f"INCR {key} {got} < {value}")
        return lost


def load_all_types(c: redis.Redis, n: int, prefix: str = "k") -> None:
    """n keys of every type (string, hash, list, set, zset, stream); every third has a TTL."""
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        kind = i % 6
        key = f"{prefix}:{kind}:{i}"
        if kind == 0:
            pipe.set(key, f"value-{i}" * (1 + i % 5))
        elif kind == 1:
            pipe.hset(key, mapping={f"f{j}": f"v{i}-{j}" for j in range(1 + i % 7)})
        elif kind == 2:
            pipe.rpush(key, *[f"e{j}" for j in range(1 + i % 9)])
        elif kind == 3:
            pipe.sadd(key, *[f"m{j}" for j in range(1 + i % 6)])
        elif kind == 4:
            pipe.zadd(key, {f"z{j}": j * 1.5 for j in range(1 + i % 8)})
        else:
            for j in range(1 + i % 4):
                pipe.xadd(key, {"n": str(j), "i": str(i)})
        if i % 3 == 0:
            pipe.expire(key, 1000 + i)
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
