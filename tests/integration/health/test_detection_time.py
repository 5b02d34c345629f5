"""health_gate detects a failing endpoint on time: real loopback servers in threads, the module in-process.

The promise (docs/health_gate.md): from the moment an endpoint starts failing, the gate fails within
``interval x failure_limit + timeout``; for an endpoint failing from the gate's start the schedule gives
``(failure_limit - 1) x interval + timeout``. Both are asserted with scheduling jitter only (JITTER), for a hung
endpoint (accepts, never answers), a refused one (closed port) and one answering 503, with one probe and with
several (the several include a healthy probe: it must not mask the failing ones). The tls probe is held to the same
bound: an endpoint that accepts TCP and never answers the ClientHello, from the start and from a later moment.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from unit.tls import certgen

from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module
from support.servers import free_port
from support.tls_servers import TlsServer

JITTER = 0.3  # scheduling jitter on a loaded 2-core machine; not a formula margin
LIMIT = 3


class Hung:
    """Accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/health"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


class Http:
    """A real HTTP server answering ``status``; ``mode`` switches it to hanging (accept, never answer)."""

    def __init__(self, status: int = 200):
        self.status, self.mode = status, "answer"
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                return

            def do_GET(self):
                if server.mode == "hang":
                    time.sleep(30)
                    return
                body = json.dumps({"status": "ok" if server.status == 200 else "broken"}).encode()
                self.send_response(server.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/health"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Refused:
    def __init__(self):
        self.url = f"http://127.0.0.1:{free_port()}/health"

    def close(self):
        return


ENDPOINTS = {"hung": Hung, "refused": Refused, "5xx": lambda: Http(503)}


@pytest.fixture
def healthy():
    server = Http(200)
    yield server
    server.close()


# (endpoint, failing probes, with a healthy probe, interval, timeout): the two measured cases first
CASES = [
    ("hung", 1, False, 1.0, 2.0),
    ("hung", 2, True, 1.0, 1.0),
    ("refused", 1, False, 0.5, 1.0),
    ("refused", 2, True, 0.5, 1.0),
    ("5xx", 1, False, 0.5, 1.0),
    ("5xx", 2, True, 0.5, 1.0),
]


@pytest.mark.parametrize(("kind", "failing", "with_healthy", "interval", "timeout"), CASES)
def test_failing_from_the_start_is_detected_within_the_bound(
    kind, failing, with_healthy, interval, timeout, healthy, capsys
):
    endpoint = ENDPOINTS[kind]()
    probes = [{"name": f"bad{i}", "type": "http", "url": endpoint.url, "timeout": timeout} for i in range(failing)]
    if with_healthy:
        probes.append({"name": "good", "type": "http", "url": healthy.url, "timeout": timeout})
    try:
        start = time.monotonic()
        res = run_module(
            health_gate,
            {"probes": probes, "interval": interval, "count": 50, "failure_limit": LIMIT},
            capsys,
        )
        elapsed = time.monotonic() - start
    finally:
        endpoint.close()
    assert res["failed"] and res["verdict"] == "failed" and res["rounds"] == LIMIT, res["msg"]
    expected = {"hung": f"no answer within {timeout}s", "refused": "connection failed", "5xx": "HTTP 503"}[kind]
    assert expected in res["msg"]
    bound = interval * LIMIT + timeout  # the documented promise
    schedule = (LIMIT - 1) * interval + timeout  # from the gate's start, rounds at 0, interval, 2 x interval
    print(f"\n{kind} x{failing}{' + healthy' if with_healthy else ''}: detected after {elapsed:.2f}s "
          f"(schedule {schedule:.2f}s, bound {bound:.2f}s)")
    assert elapsed <= bound + JITTER, f"detected after {elapsed:.2f}s, bound {bound:.2f}s"
    assert elapsed <= schedule + JITTER, f"detected after {elapsed:.2f}s, schedule {schedule:.2f}s"
    assert all(s["outcome"] == "success" for s in res["samples"] if s["probe"] == "good")


@pytest.mark.parametrize("mode", ["hang", "5xx"])
def test_failing_later_is_detected_within_the_bound_from_that_moment(mode, capsys):
    # the endpoint answers, then fails at a moment between two rounds: the bound counts from that moment
    server = Http(200)
    interval, timeout = 0.5, 1.0
    switched = {}

    def switch():
        time.sleep(1.3)
        if mode == "hang":
            server.mode = "hang"
        else:
            server.status = 503
        switched["at"] = time.monotonic()

    threading.Thread(target=switch, daemon=True).start()
    try:
        res = run_module(
            health_gate,
            {
                "probes": [{"name": "svc", "type": "http", "url": server.url, "timeout": timeout}],
                "interval": interval,
                "count": 100,
                "failure_limit": LIMIT,
                "consecutive_successes": 100,
            },
            capsys,
        )
        detected = time.monotonic() - switched["at"]
    finally:
        server.close()
    assert res["failed"] and res["verdict"] == "failed"
    bound = interval * LIMIT + timeout
    print(f"\nfails at 1.3s ({mode}): detected {detected:.2f}s later (bound {bound:.2f}s)")
    assert detected <= bound + JITTER, f"detected {detected:.2f}s after the endpoint failed, bound {bound:.2f}s"


# --- the tls probe: a TLS endpoint that accepts the connection and never answers the handshake ---------------------
WWW = "www.sophia-intel.ai"
TLS_HUNG = ("TLS handshake timed out", "no answer within")  # the probe's own timeout, or the round's just after it


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls-detection")
    pki = certgen.Pki()
    cert = pki.leaf([WWW])
    return {"tmp": tmp, "bundle": pki.bundle(tmp / "ca.pem"), "chain": pki.fullchain(cert), "key": cert.key_pem}


def tls_probe(name, port, pki, timeout):
    return {"name": name, "type": "tls", "host": "127.0.0.1", "port": port, "server_name": WWW,
            "ca_path": pki["bundle"], "timeout": timeout}


@pytest.mark.parametrize(
    ("failing", "with_healthy", "interval", "timeout"), [(1, False, 1.0, 2.0), (2, True, 0.5, 1.0)]
)
def test_hung_tls_endpoint_is_detected_within_the_bound(failing, with_healthy, interval, timeout, tls_pki, capsys):
    hung = Hung()  # TCP accepted, the ClientHello never answered
    port = hung.sock.getsockname()[1]
    healthy = TlsServer(tls_pki["tmp"], "healthy", tls_pki["chain"], tls_pki["key"])
    probes = [tls_probe(f"bad{i}", port, tls_pki, timeout) for i in range(failing)]
    if with_healthy:
        probes.append(tls_probe("good", healthy.port, tls_pki, timeout))
    try:
        start = time.monotonic()
        res = run_module(health_gate, {"probes": probes, "interval": interval, "count": 50, "failure_limit": LIMIT},
                         capsys)
        elapsed = time.monotonic() - start
    finally:
        hung.close()
        healthy.close()
    assert res["failed"] and res["verdict"] == "failed" and res["rounds"] == LIMIT, res["msg"]
    assert any(text in res["msg"] for text in TLS_HUNG), res["msg"]
    bound = interval * LIMIT + timeout
    schedule = (LIMIT - 1) * interval + timeout
    print(f"\nhung TLS x{failing}{' + healthy' if with_healthy else ''}: detected after {elapsed:.2f}s "
          f"(schedule {schedule:.2f}s, bound {bound:.2f}s)")
    assert elapsed <= bound + JITTER, f"detected after {elapsed:.2f}s, bound {bound:.2f}s"
    assert elapsed <= schedule + JITTER, f"detected after {elapsed:.2f}s, schedule {schedule:.2f}s"
    assert all(s["outcome"] == "success" for s in res["samples"] if s["probe"] == "good")


def test_tls_endpoint_hanging_later_is_detected_within_the_bound_from_that_moment(tls_pki, capsys):
    server = TlsServer(tls_pki["tmp"], "later", tls_pki["chain"], tls_pki["key"])
    interval, timeout = 0.5, 1.0
    switched = {}

    def switch():
        time.sleep(1.3)
        server.hang = True  # new connections are accepted and never answered
        switched["at"] = time.monotonic()

    threading.Thread(target=switch, daemon=True).start()
    try:
        res = run_module(
            health_gate,
            {"probes": [tls_probe("edge", server.port, tls_pki, timeout)], "interval": interval, "count": 100,
             "failure_limit": LIMIT, "consecutive_successes": 100},
            capsys,
        )
        detected = time.monotonic() - switched["at"]
    finally:
        server.close()
    assert res["failed"] and res["verdict"] == "failed"
    assert res["samples"][0]["outcome"] == "success" and any(text in res["msg"] for text in TLS_HUNG), res["msg"]
    bound = interval * LIMIT + timeout
    print(f"\nTLS hangs at 1.3s: detected {detected:.2f}s later (bound {bound:.2f}s)")
    assert detected <= bound + JITTER, f"detected {detected:.2f}s after the endpoint hung, bound {bound:.2f}s"
