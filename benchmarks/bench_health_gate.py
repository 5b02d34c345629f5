"""Detection time of health_gate against a failing endpoint, measured on the module process a playbook runs.

The promise (docs/health_gate.md): an endpoint that fails from the gate's start is detected within
``interval x failure_limit + timeout`` seconds (the bound; the schedule gives (failure_limit - 1) x interval +
timeout). Each case runs the module file as its own process, the way Ansible runs it (``python health_gate.py
args.json`` with ``{"ANSIBLE_MODULE_ARGS": ...}``, no option beyond the case's), against a real loopback endpoint:

- hung: accepts the connection and never answers;
- refused: a closed port;
- 5xx: an HTTP server answering 503;

at two sizes, 1 and 3 probes on the failing endpoint (interval 1, timeout 1: bound 4 s; the growth line says
whether more probes detect later: they must not, the probes of a round run concurrently), plus the issue's first
case (a hung endpoint, interval 1, timeout 2: bound 5 s). Measured: the gate's own ``duration_s`` (gate start,
i.e. the first failing round's start, to decision), p90 over ``--rounds`` runs; baseline = the bound computed in
the same run; ratio = p90 / bound; goal p90 <= bound + jitter (JITTER, scheduling on a loaded 2-core machine).
The process wall time (adds interpreter start and imports) is recorded beside it.

Run: .venv/bin/python benchmarks/bench_health_gate.py [--rounds N] [--collections DIR] [--no-save]
(``--collections`` points at another ansible_collections parent, e.g. a copy of an older tree, to compare.)
Rows are merged into benchmarks/results.json as ``health_gate detection, <endpoint> [<probes>]`` (the shared
harness; other keys are kept) and show in ``benchmarks/report.py``'s table.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _harness import Goal, growth, line, percentile, record, summarize  # noqa: E402

JITTER = 0.3  # seconds of scheduling jitter allowed on a loaded 2-core machine
FAILURE_LIMIT = 3
# (row name, endpoint kind, probes, interval, timeout): sizes 1 and 3 of each endpoint, then the case
CASES = [
    ("health_gate detection, hung", "hung", 1, 1.0, 1.0),
    ("health_gate detection, hung", "hung", 3, 1.0, 1.0),
    ("health_gate detection, refused", "refused", 1, 1.0, 1.0),
    ("health_gate detection, refused", "refused", 3, 1.0, 1.0),
    ("health_gate detection, 5xx", "5xx", 1, 1.0, 1.0),
    ("health_gate detection, 5xx", "5xx", 3, 1.0, 1.0),
    ("health_gate detection, hung, timeout 2", "hung", 1, 1.0, 2.0),
]


class Hung:
    """Accepts connections and never answers (the connections are held open until close)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.closed = True
        self.sock.close()
        for conn in self.held:
            conn.close()


class Error5xx:
    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                return

            def do_GET(self):
                body = b'{"status": "broken"}'
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Refused:
    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def close(self):
        return


ENDPOINTS = {"hung": Hung, "refused": Refused, "5xx": Error5xx}


def run_module(collections: str, args: dict, workdir: str) -> tuple[float, dict]:
    """The module file as its own process with ANSIBLE_MODULE_ARGS; (wall seconds, result)."""
    path = os.path.join(workdir, "args.json")
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    module = os.path.join(collections, "ansible_collections", "sophia", "migrate", "plugins", "modules",
                          "health_gate.py")
    env = {**os.environ, "PYTHONPATH": collections}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, module, path], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    wall = time.monotonic() - start
    line = next((x for x in proc.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise SystemExit(f"the module printed no result:\n{proc.stdout}\n{proc.stderr}")
    return wall, json.loads(line)


def measure(collections: str, rounds: int, save: bool) -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, kind, nprobes, interval, timeout in CASES:
            gate_s, wall_s = [], []
            for _i in range(rounds):
                endpoint = ENDPOINTS[kind]()
                try:
                    url = f"http://127.0.0.1:{endpoint.port}/health"
                    args = {
                        "probes": [{"name": f"p{j}", "type": "http", "url": url, "timeout": timeout}
                                   for j in range(nprobes)],
                        "interval": interval,
                        "count": 50,
                        "failure_limit": FAILURE_LIMIT,
                    }
                    wall, result = run_module(collections, args, workdir)
                finally:
                    endpoint.close()
                if result.get("verdict") != "failed" or result.get("rounds") != FAILURE_LIMIT:
                    raise SystemExit(f"{name}: expected a failed gate after {FAILURE_LIMIT} rounds, got {result}")
                gate_s.append(result["duration_s"])
                wall_s.append(wall)
            bound = interval * FAILURE_LIMIT + timeout  # the documented bound: the baseline, computed in this run
            row = summarize(name, nprobes, [bound] * rounds, gate_s, unit="s",
                            goal=Goal("<=", round(bound + JITTER, 3), on="subject"))
            row.update({"endpoint": kind, "interval": interval, "timeout": timeout, "failure_limit": FAILURE_LIMIT,
                        "bound_s": bound, "schedule_s": (FAILURE_LIMIT - 1) * interval + timeout, "jitter_s": JITTER,
                        "max_s": round(max(gate_s), 3), "process_p90_s": round(percentile(wall_s, 90), 3),
                        "collections": os.path.relpath(collections, ROOT)})
            shown = line(row).replace("alternating rounds", "runs; the bound is computed")
            print(f"{shown}; bound {bound:g} s = interval {interval:g} x failure_limit {FAILURE_LIMIT} + timeout "
                  f"{timeout:g}; module process p90 {row['process_p90_s']:.2f} s", flush=True)
            if save:
                record(f"{name} [{nprobes}]", row)
            if rows and rows[-1]["name"] == name:
                growth(rows[-1], row, save=save)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--collections", default=os.path.join(ROOT, ".ansible", "collections"))
    parser.add_argument("--no-save", action="store_true")
    opts = parser.parse_args()
    if opts.rounds < 5:
        parser.error("--rounds must be at least 5 (p90)")
    print(f"health_gate detection time, failure_limit {FAILURE_LIMIT}, p90 of {opts.rounds} runs per case "
          f"(gate start -> decision; baseline = the documented bound interval x failure_limit + timeout)")
    rows = measure(opts.collections, opts.rounds, not opts.no_save)
    failed = [r for r in rows if not r["passed"]]
    print(f"overall: {'PASS' if not failed else 'FAIL'} ({len(rows) - len(failed)} of {len(rows)} cases within the "
          f"bound + {JITTER} s)")
    # a FAIL is a measurement: exit 0 (make bench fails only when a benchmark crashes)


if __name__ == "__main__":
    main()
