"""Detection time of health_gate against a failing endpoint, measured on the module process a playbook runs.

The promise (docs/health_gate.md): an endpoint that fails from the gate's start is detected within
``interval x failure_limit + timeout`` seconds (the bound; the schedule gives (failure_limit - 1) x interval +
timeout). Each case runs the module file as its own process, the way Ansible runs it (``python health_gate.py
args.json`` with ``{"ANSIBLE_MODULE_ARGS": ...}``, no option beyond the case's), against a real loopback endpoint:

- hung: accepts the connection and never answers;
- refused: a closed port;
- 5xx: an HTTP server answering 503;

with one probe and with two probes on the failing endpoint. Measured: the gate's own ``duration_s`` (gate start to
decision; the goal is p90 <= bound + jitter) and the process wall time (adds interpreter start and imports).

Run: .venv/bin/python benchmarks/bench_health_gate.py [--rounds N] [--collections DIR] [--no-save]
(``--collections`` points at another ansible_collections parent, e.g. a copy of an older tree, to compare.)
Figures are merged into benchmarks/results.json under "health_gate_detection" (other keys are kept).
"""

from __future__ import annotations

import argparse
import json
import math
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
RESULTS = os.path.join(HERE, "results.json")
KEY = "health_gate_detection"
JITTER = 0.3  # seconds of scheduling jitter allowed on a loaded 2-core machine
FAILURE_LIMIT = 3
# (name, endpoint kind, probes, interval, timeout): the two measured cases of the issue first
CASES = [
    ("hung, 1 probe", "hung", 1, 1.0, 2.0),
    ("hung, 2 probes", "hung", 2, 1.0, 1.0),
    ("refused, 1 probe", "refused", 1, 1.0, 2.0),
    ("refused, 2 probes", "refused", 2, 1.0, 1.0),
    ("5xx, 1 probe", "5xx", 1, 1.0, 2.0),
    ("5xx, 2 probes", "5xx", 2, 1.0, 1.0),
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measure(collections: str, rounds: int) -> list[dict]:
    out = []
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
            bound = interval * FAILURE_LIMIT + timeout
            p90 = percentile(gate_s, 90)
            out.append({
                "case": name, "endpoint": kind, "probes": nprobes, "interval": interval, "timeout": timeout,
                "failure_limit": FAILURE_LIMIT, "bound_s": bound,
                "schedule_s": (FAILURE_LIMIT - 1) * interval + timeout,
                "p50_s": round(percentile(gate_s, 50), 3), "p90_s": round(p90, 3), "max_s": round(max(gate_s), 3),
                "ratio_p90": round(p90 / bound, 3),
                "process_p90_s": round(percentile(wall_s, 90), 3),
                "goal": f"p90 <= 1.0 x bound + {JITTER} s",
                "pass": p90 <= bound + JITTER,
            })
    return out


def save(figures: dict) -> None:
    """Read-modify-write: only our key changes; the other keys of results.json are kept."""
    data = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as handle:
            data = json.load(handle)
    data[KEY] = figures
    tmp = f"{RESULTS}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--collections", default=os.path.join(ROOT, ".ansible", "collections"))
    parser.add_argument("--no-save", action="store_true")
    opts = parser.parse_args()
    if opts.rounds < 5:
        parser.error("--rounds must be at least 5 (p90)")
    cases = measure(opts.collections, opts.rounds)
    print(f"health_gate detection time, failure_limit {FAILURE_LIMIT}, p90 of {opts.rounds} runs per case "
          f"(gate start -> decision; process = wall time of the module process)")
    print(f"{'case':<18} {'interval':>8} {'timeout':>7} {'bound':>6} {'p50':>6} {'p90':>6} {'ratio':>6} "
          f"{'process':>8}  goal                      result")
    for c in cases:
        print(f"{c['case']:<18} {c['interval']:>8g} {c['timeout']:>7g} {c['bound_s']:>6.2f} {c['p50_s']:>6.2f} "
              f"{c['p90_s']:>6.2f} {c['ratio_p90']:>5.2f}x {c['process_p90_s']:>8.2f}  {c['goal']:<25} "
              f"{'PASS' if c['pass'] else 'FAIL'}")
    ok = all(c["pass"] for c in cases)
    print(f"overall: {'PASS' if ok else 'FAIL'}")
    if not opts.no_save:
        save({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rounds": opts.rounds,
              "jitter_s": JITTER, "collections": os.path.relpath(opts.collections, ROOT), "cases": cases,
              "pass": ok})
        print(f"written to {os.path.relpath(RESULTS, ROOT)} under {KEY!r}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
