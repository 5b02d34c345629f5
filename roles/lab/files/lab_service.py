"""A small stand-in for one Sophia service in the lab (dashboard API, MCP services, sophia-jobs).

It serves real HTTP and does real reads and writes against the lab's Redis and Qdrant, so that
traffic shifting and data migration in the lab move live state:

  GET  /health                 200 {"status": "ok", ...}; 503 when /admin/health says so
  GET  /metrics                Prometheus text format (requests, errors, latency histogram)
  GET  /<prefix>/...           200, answers with the service name and side (X-Sophia-Backend header)
  POST /<prefix>/items         body {"id": "...", "value": "..."}: SET in Redis (and upsert in Qdrant
                               for services with QDRANT_URL), 201 {"stored": id}
  GET  /<prefix>/items/<id>    reads the item back from Redis
  POST /admin/health           {"healthy": false} makes /health answer 503 (failure injection)
  POST /admin/writes           {"frozen": true, "ttl": 120}: the write freeze of a data cutover. New writes wait
                               (they are held, not refused) and the call answers once the writes in flight have
                               finished, so nothing reaches the old store after it returns; {"frozen": false}
                               releases the held writes. The freeze lifts by itself after ``ttl`` seconds, so a
                               killed migration run cannot leave the service frozen.

Redis and Qdrant are reached by name (REDIS_URL, QDRANT_URL; in the lab the network aliases that the data
cutover moves from the Compose store to the K3s store). Every operation opens a new connection, so it
resolves the name again, and retries for WRITE_RETRY_SECONDS on the answers a cutover produces (READONLY
from a demoted Redis, connection errors, Qdrant 5xx): a write is acknowledged only once the store has it.

On SIGTERM (docker stop) it shuts down as a production ASGI server (uvicorn) does: it stops accepting at once (a
new connection is refused), closes its idle keep-alive connections, lets the requests in flight finish (their
answers say "Connection: close") and exits 0 once none is left (SHUTDOWN_TIMEOUT seconds at most, default 60).

Role "worker" (sophia-jobs): pops jobs from the Redis list ``sophia:jobs`` and writes
``sophia:job:<id>:result``.

Configuration by environment: SERVICE, SIDE (compose|k3s), PORT, REDIS_URL, QDRANT_URL, ROLE, SHUTDOWN_TIMEOUT,
and the stores' credentials where they need one (the staging lab, as production): REDIS_PASSWORD, QDRANT_API_KEY.
Only the Python standard library and redis-py / requests (Debian packages) are needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis  # Debian python3-redis
import requests  # Debian python3-requests

SERVICE = os.environ.get("SERVICE", "mcp")
SIDE = os.environ.get("SIDE", "compose")
PORT = int(os.environ.get("PORT", "8080"))
REDIS_URL = os.environ.get("REDIS_URL", "")
QDRANT_URL = os.environ.get("QDRANT_URL", "")
QDRANT_COLLECTION = os.environ.get("QDRANT_COLLECTION", "sophia")
REDIS_PASSWORD = os.environ.get("REDIS_PASSWORD") or None
QDRANT_HEADERS = {"api-key": os.environ["QDRANT_API_KEY"]} if os.environ.get("QDRANT_API_KEY") else {}
ROLE = os.environ.get("ROLE", "web")
WRITE_RETRY_SECONDS = float(os.environ.get("WRITE_RETRY_SECONDS", "45"))
# API_PREFIX set (the staging lab): the service serves its API under exactly this prefix ("" = at its root, as a
# service behind an nginx location that strips the prefix does) and answers 404 for every other path, as a real
# service would, so a request routed with the wrong path fails instead of being written. Unset: any prefix (the lab).
API_PREFIX = os.environ.get("API_PREFIX")
SHUTDOWN_TIMEOUT = float(os.environ.get("SHUTDOWN_TIMEOUT", "60"))
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_state = {"healthy": True}
_lock = threading.Lock()
_metrics = {"requests": 0, "errors": 0, "writes": 0, "buckets": [0] * len(BUCKETS), "sum": 0.0}


def _redis():
    return redis.Redis.from_url(REDIS_URL, password=REDIS_PASSWORD, socket_timeout=5, socket_connect_timeout=5)


# What a data cutover looks like to a client: the demoted Redis answers READONLY (or unblocks a blocked
# command), the moved name briefly does not resolve or refuses, Qdrant answers 5xx. All are retried.
_RETRIED = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    requests.ConnectionError,
    requests.Timeout,
)


def _retrying(operation):
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    while True:
        try:
            return operation()
        except (*_RETRIED, redis.exceptions.ResponseError, requests.HTTPError) as exc:
            transient = (
                isinstance(exc, _RETRIED)
                or "UNBLOCKED" in str(exc)
                or (
                    isinstance(exc, requests.HTTPError) and exc.response is not None and exc.response.status_code >= 500
                )
            )
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _redis_call(method: str, *args):
    def call():
        client = _redis()
        try:
            return getattr(client, method)(*args)
        finally:
            client.close()

    return _retrying(call)


def _qdrant_upsert(item_id: str, value: str) -> None:
    vec = [float((hash(value) >> s) % 100) / 100.0 for s in range(0, 32, 8)]
    pid = int(item_id) if item_id.isdigit() else abs(hash(item_id)) % (2**53)

    def put():
        resp = requests.put(
            f"{QDRANT_URL}/collections/{QDRANT_COLLECTION}/points?wait=true",
            json={"points": [{"id": pid, "vector": vec, "payload": {"item": item_id, "value": value, "by": SERVICE}}]},
            headers=QDRANT_HEADERS,
            timeout=10,
        )
        resp.raise_for_status()

    _retrying(put)


class WriteGate:
    """The write freeze: writers enter and leave; freeze() waits until none is inside."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inside = 0
        self._frozen_until = 0.0

    def _frozen(self) -> bool:
        return time.monotonic() < self._frozen_until

    def enter(self) -> None:
        with self._cond:
            while self._frozen():
                self._cond.wait(timeout=max(0.01, self._frozen_until - time.monotonic()))
            self._inside += 1

    def leave(self) -> None:
        with self._cond:
            self._inside -= 1
            self._cond.notify_all()

    def freeze(self, ttl: float, drain_timeout: float = 60.0) -> int:
        with self._cond:
            self._frozen_until = time.monotonic() + ttl
            deadline = time.monotonic() + drain_timeout
            while self._inside and time.monotonic() < deadline:
                self._cond.wait(timeout=0.05)
            return self._inside

    def thaw(self) -> None:
        with self._cond:
            self._frozen_until = 0.0
            self._cond.notify_all()

    def state(self) -> dict:
        with self._cond:
            return {"frozen": self._frozen(), "inflight": self._inside}


_gate = WriteGate()


def _observe(seconds: float, error: bool) -> None:
    with _lock:
        _metrics["requests"] += 1
        _metrics["errors"] += int(error)
        _metrics["sum"] += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                _metrics["buckets"][i] += 1


def _metrics_text() -> str:
    with _lock:
        m = dict(_metrics, buckets=list(_metrics["buckets"]))
    labels = f'service="{SERVICE}",side="{SIDE}"'
    lines = [
        "# HELP sophia_requests_total Requests served.",
        "# TYPE sophia_requests_total counter",
        f"sophia_requests_total{{{labels}}} {m['requests']}",
        "# HELP sophia_request_errors_total Requests answered with 5xx.",
        "# TYPE sophia_request_errors_total counter",
        f"sophia_request_errors_total{{{labels}}} {m['errors']}",
        "# HELP sophia_writes_total Items written.",
        "# TYPE sophia_writes_total counter",
        f"sophia_writes_total{{{labels}}} {m['writes']}",
        "# HELP sophia_request_duration_seconds Request latency.",
        "# TYPE sophia_request_duration_seconds histogram",
    ]
    for bound, count in zip(BUCKETS, m["buckets"], strict=True):
        lines.append(f'sophia_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count}')
    lines.append(f'sophia_request_duration_seconds_bucket{{{labels},le="+Inf"}} {m["requests"]}')
    lines.append(f"sophia_request_duration_seconds_sum{{{labels}}} {m['sum']:.6f}")
    lines.append(f"sophia_request_duration_seconds_count{{{labels}}} {m['requests']}")
    return "\n".join(lines) + "\n"


class Connections:
    """The open connections and whether each is inside a request, for the graceful shutdown."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open: dict[BaseHTTPRequestHandler, bool] = {}  # handler -> busy (a request line was read)
        self.stopping = False

    def opened(self, handler: BaseHTTPRequestHandler) -> None:
        with self._cond:
            self._open[handler] = False

    def busy(self, handler: BaseHTTPRequestHandler) -> None:
        with self._cond:
            self._open[handler] = True

    def idle(self, handler: BaseHTTPRequestHandler) -> bool:
        """Between two requests of a keep-alive connection; False once it must close instead."""
        with self._cond:
            self._open[handler] = False
            return not self.stopping

    def closed(self, handler: BaseHTTPRequestHandler) -> None:
        with self._cond:
            self._open.pop(handler, None)
            self._cond.notify_all()

    def stop(self) -> None:
        """Idle keep-alive connections are closed now (their handler reads EOF); a request in flight is
        answered with "Connection: close" and its connection closed after the answer."""
        with self._cond:
            self.stopping = True
            for handler, busy in self._open.items():
                handler.close_connection = True
                if not busy:
                    with contextlib.suppress(OSError):  # the client closed it already
                        handler.connection.shutdown(socket.SHUT_RD)

    def wait(self, timeout: float) -> int:
        """Waits until every connection is closed (at most ``timeout`` s); returns how many are left."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._open and time.monotonic() < deadline:
                self._cond.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic())))
            return len(self._open)


_connections = Connections()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sophia-lab"
    wbufsize = 65536  # headers and body in one write: no delayed-ACK stall on keep-alive
    disable_nagle_algorithm = True

    def log_message(self, fmt: str, *args: object) -> None:  # quiet; metrics count instead
        return

    # The graceful shutdown's view of the connection: opened, busy from the request line on, idle between requests.
    def setup(self) -> None:
        super().setup()
        _connections.opened(self)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            _connections.closed(self)

    def handle(self) -> None:
        self.close_connection = True
        self.handle_one_request()
        while not self.close_connection and _connections.idle(self):
            self.handle_one_request()

    def parse_request(self) -> bool:
        _connections.busy(self)
        ok = super().parse_request()  # sets close_connection from the request's headers
        if _connections.stopping:
            self.close_connection = True
        return ok

    def _outside(self) -> bool:
        """With API_PREFIX, a path the service does not serve (answered 404): not its health, metrics or admin path,
        not its items path, and (with a prefix) not under the prefix."""
        if API_PREFIX is None:
            return False
        path = self.path.split("?", 1)[0]
        if path in ("/health", "/metrics") or path.startswith("/admin/"):
            return False
        if path.endswith("/items") or "/items/" in path:
            return not (path == API_PREFIX + "/items" or path.startswith(API_PREFIX + "/items/"))
        return bool(API_PREFIX) and not (path == API_PREFIX or path.startswith(API_PREFIX + "/"))

    def _send(self, status: int, body: object, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Sophia-Backend", f"{SERVICE}@{SIDE}")
        if self.close_connection:  # say so: a proxy that pools connections must not reuse this one
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw or b"{}")

    def do_GET(self) -> None:
        start = time.monotonic()
        status = 200
        try:
            if self._outside():
                status = 404
                self._send(404, {"error": f"{SERVICE} does not serve {self.path}"})
            elif self.path == "/health" or self.path.endswith("/health"):  # also behind a path prefix
                status = 200 if _state["healthy"] else 503
                self._send(status, {"status": "ok" if status == 200 else "unhealthy", "service": SERVICE, "side": SIDE})
            elif self.path == "/metrics":
                self._send(200, _metrics_text(), "text/plain; version=0.0.4")
            elif "/items/" in self.path:
                item = self.path.rsplit("/", 1)[1]
                value = _redis_call("get", f"sophia:item:{item}")
                status = 200 if value is not None else 404
                self._send(status, {"id": item, "value": value.decode() if value else None, "service": SERVICE})
            else:
                self._send(200, {"service": SERVICE, "side": SIDE, "path": self.path})
        except Exception as exc:
            status = 500
            self._send(500, {"error": str(exc)})
        finally:
            _observe(time.monotonic() - start, status >= 500)

    def do_POST(self) -> None:
        start = time.monotonic()
        status = 201
        try:
            body = self._body()
            if self._outside():
                status = 404
                self._send(404, {"error": f"{SERVICE} does not serve {self.path}"})
            elif self.path == "/admin/health":
                _state["healthy"] = bool(body.get("healthy", True))
                status = 200
                self._send(200, {"healthy": _state["healthy"]})
            elif self.path == "/admin/writes":
                if body.get("frozen"):
                    inflight = _gate.freeze(float(body.get("ttl", 120)))
                    status = 200 if inflight == 0 else 409  # 409: writes still in flight, not safely frozen
                else:
                    _gate.thaw()
                    status = 200
                self._send(status, _gate.state())
            elif self.path.endswith("/items"):
                item, value = str(body["id"]), str(body.get("value", ""))
                _gate.enter()
                try:
                    _redis_call("set", f"sophia:item:{item}", value)
                    if QDRANT_URL:
                        _qdrant_upsert(item, value)
                finally:
                    _gate.leave()
                with _lock:
                    _metrics["writes"] += 1
                self._send(201, {"stored": item, "service": SERVICE, "side": SIDE})
            else:
                status = 200
                self._send(200, {"service": SERVICE, "side": SIDE, "echo": body})
        except Exception as exc:
            status = 500
            self._send(500, {"error": str(exc)})
        finally:
            _observe(time.monotonic() - start, status >= 500)


def worker() -> None:
    while True:
        try:
            r = _redis()
            while True:
                job = r.blpop("sophia:jobs", timeout=5)
                if job:
                    job_id = job[1].decode()
                    _redis_call("set", f"sophia:job:{job_id}:result", f"done by {SERVICE}@{SIDE}")
                    with _lock:
                        _metrics["writes"] += 1
        except Exception:  # READONLY/UNBLOCKED after a cutover, the store restarting: reconnect by name
            time.sleep(0.2)


def serve(server: ThreadingHTTPServer) -> int:
    """Serves until SIGTERM or SIGINT, then shuts down as uvicorn does: no new connection is accepted, idle
    keep-alive connections are closed, requests in flight finish. Returns the exit status (0: none was cut)."""
    stop = threading.Event()
    wake_r, wake_w = socket.socketpair()
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_args: stop.set())
    with selectors.DefaultSelector() as selector:
        selector.register(server.socket, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _events in selector.select(timeout=1.0):
                if key.fileobj is wake_r:
                    wake_r.recv(64)
                    continue
                try:
                    request, address = server.get_request()
                except OSError:
                    continue
                server.process_request(request, address)
    # Stop accepting: the connections the kernel already accepted are served (their clients may have sent a
    # request), then the listening socket closes and a new connection is refused.
    server.socket.setblocking(False)
    while True:
        try:
            request, address = server.get_request()
        except OSError:
            break
        server.process_request(request, address)
    server.socket.close()
    _connections.stop()
    left = _connections.wait(SHUTDOWN_TIMEOUT)
    if left:
        print(f"{SERVICE}: {left} connection(s) still busy after {SHUTDOWN_TIMEOUT:g}s, exiting", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    if ROLE == "worker":
        threading.Thread(target=worker, daemon=True).start()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128  # listen backlog: bursts of new connections are queued, not dropped
    raise SystemExit(serve(ThreadingHTTPServer(("0.0.0.0", PORT), Handler)))  # noqa: S104 - inside a container
