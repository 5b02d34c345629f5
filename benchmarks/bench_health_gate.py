"""Probe overhead of health_gate: requests per second the gate sustains vs a plain `requests` loop.

Both measure the same local endpoint (a threaded HTTP server on loopback) in the same run.
Run: .venv/bin/python benchmarks/bench_health_gate.py [N]
"""

from __future__ import annotations

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".ansible", "collections"))
from ansible_collections.sophia.migrate.plugins.module_utils import _health


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body in one write: no delayed-ACK stall on keep-alive
    disable_nagle_algorithm = True

    def log_message(self, *a):
        return

    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"

    session = requests.Session()
    start = time.perf_counter()
    for _i in range(n):
        r = session.get(url, timeout=2)
        assert r.status_code == 200
    plain = n / (time.perf_counter() - start)

    probe = _health.normalize_probe({"type": "http", "url": url, "timeout": 2, "json_path": "status",
                                     "json_value": "ok"}, 0)
    policy = _health.Policy(interval=0, count=n, consecutive_successes=n)
    start = time.perf_counter()
    result = _health.run_gate([probe], policy, requests.Session(), None)
    gate = n / (time.perf_counter() - start)
    assert result["passed"] and result["rounds"] == n
    server.shutdown()
    print(f"requests: {n}")
    print(f"plain requests loop : {plain:8.1f} req/s")
    print(f"health_gate rounds  : {gate:8.1f} req/s (probe + JSON check + policy + sample bookkeeping)")
    print(f"ratio gate/plain    : {gate / plain:8.2f}")


if __name__ == "__main__":
    main()
