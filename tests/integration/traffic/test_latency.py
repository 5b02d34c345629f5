"""traffic_shift's latency baseline and pre-warming (sophia.migrate.route_latency) on real servers: Debian's nginx
(the two backends and the TLS edge), HAProxy as the splitter. Before the route's share leaves 0%, the K3s side is
warmed, then measured in pairs with the route through the splitter (the Compose side: the baseline); at 100% the
route is measured through the splitter again. A K3s side that answers far slower keeps the route at 0%.
The slow K3s side of the second test is a Python HTTP server that waits 150 ms before it answers.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
import typing as t

import pytest
from traffic_support import ShareWatcher, free_port, recap, run_playbook

from ansible_collections.sophia.migrate.plugins.filter.latency_table import latency_table

LATENCY = {"paths": ["/api/context/latency"], "count": 20, "warmup": 5, "concurrency": 2}
STEPS = [0, 50, 100]  # the walk's own tests walk every production step; here one share between 0 and 100 will do


def _ledger(stack) -> dict:
    with open(os.path.join(stack["work"], "ledger.json")) as handle:
        return json.load(handle)


def _lines(stack, side: str) -> int:
    path = os.path.join(stack["work"], "backends", "logs", f"{side}.log")
    if not os.path.exists(path):
        return 0
    with open(path) as handle:
        return sum(1 for line in handle if line.strip())


def _steps(ledger: dict) -> list[str]:
    return [e["step"] for e in ledger["entries"] if e["status"] == "done"]


def test_baseline_prewarming_and_after_are_measured_where_they_belong_and_recorded(stack):
    variables = {**stack["vars"], "traffic_shift_latency": LATENCY, "traffic_shift_steps": STEPS}
    first = run_playbook(stack["work"], {**variables, "traffic_shift_target_weight": 0})  # the splitter, at 0%
    assert first.returncode == 0, first.stdout[-4000:]
    assert not [s for s in _steps(_ledger(stack)) if s.startswith("latency/")]  # nothing walks: nothing measured
    compose_before, k3s_before = _lines(stack, "compose"), _lines(stack, "k3s")

    res = run_playbook(stack["work"], variables)
    assert res.returncode == 0, res.stdout[-4000:]
    # pre-warming (5 + 20) straight to the K3s side, paired with 20 through the splitter at 0% (the Compose side: the
    # baseline); the 100% measurement through the splitter: every request on the K3s side
    assert _lines(stack, "compose") - compose_before == 20
    assert _lines(stack, "k3s") - k3s_before == 25 + 20
    steps = _steps(_ledger(stack))
    order = [s for s in steps if s.startswith(("latency/mcp-context/", "traffic/mcp-context/"))]
    assert order == ["latency/mcp-context/baseline", "latency/mcp-context/prewarm", "traffic/mcp-context/50",
                     "traffic/mcp-context/100", "latency/mcp-context/after"], order
    entries = {e["step"]: e["data"] for e in _ledger(stack)["entries"]}
    for kind in ("baseline", "prewarm", "after"):
        data = entries[f"latency/mcp-context/{kind}"]
        assert data["count"] == 20 and data["errors"] == 0 and data["p95_ms"] > 0, (kind, data)
    assert entries["latency/mcp-context/prewarm"]["warmup"] == 5
    assert entries["latency/mcp-context/baseline"]["within_baseline"] is None
    assert entries["latency/mcp-context/prewarm"]["within_baseline"] is True
    assert entries["latency/mcp-context/after"]["within_baseline"] is True
    assert "mcp-context prewarm: p50 " in res.stdout

    [row] = latency_table(_ledger(stack)["entries"])
    assert row["route"] == "mcp-context" and row["maintained"] is True and row["now"] is None
    assert row["baseline"]["count"] == row["after"]["count"] == 20

    # at 100% again: nothing walks, nothing is measured, nothing changes
    again = run_playbook(stack["work"], variables)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert _lines(stack, "k3s") - k3s_before == 45


@pytest.fixture
def slow_k3s() -> t.Iterator[int]:
    """The K3s side of the route: answers /health at once (HAProxy's checks), everything else after 150 ms."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path != "/health":
                time.sleep(0.15)
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"slow\n")

        def log_message(self, *args: t.Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        def handle_error(self, request: t.Any, client_address: t.Any) -> None:
            pass  # HAProxy's health checks close their connections first

    srv = Server(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_a_k3s_side_far_slower_than_the_baseline_keeps_the_route_at_zero(stack, slow_k3s):
    route = {**stack["vars"]["traffic_shift_routes"][0], "k3s": [f"127.0.0.1:{slow_k3s}"]}
    variables = {**stack["vars"], "traffic_shift_routes": [route], "traffic_shift_steps": STEPS,
                 "traffic_shift_latency": {**LATENCY, "latency_floor_ms": 20}}
    first = run_playbook(stack["work"], {**variables, "traffic_shift_target_weight": 0})
    assert first.returncode == 0, first.stdout[-4000:]
    watcher = ShareWatcher(stack["socket"], "route_mcp_context")
    watcher.start()
    try:
        res = run_playbook(stack["work"], variables)
    finally:
        changes = watcher.stop()
    assert res.returncode != 0 and "Module failed" not in res.stdout + res.stderr
    assert "failed its gate at 0% and is back at 0%" in res.stdout, res.stdout[-3000:]
    assert "pre-warming: the K3s side answered beyond the Compose baseline before any share moved: p95 " in res.stdout
    assert {share for _at, share in changes} <= {0, None}, changes  # no request of the route ever went to K3s
    ledger = _ledger(stack)
    assert not [s for s in _steps(ledger) if s.startswith("traffic/mcp-context/")]
    prewarm = [e["data"] for e in ledger["entries"] if e["step"] == "latency/mcp-context/prewarm"][-1]
    assert prewarm["within_baseline"] is False and prewarm["p95_ms"] >= 150, prewarm
    # without the gate the same K3s side is measured, recorded as beyond the baseline, and the walk goes on
    ungated = {**variables, "traffic_shift_latency": {**LATENCY, "latency_floor_ms": 20, "gate": False},
               "traffic_shift_gate": {}}
    res = run_playbook(stack["work"], ungated)
    assert res.returncode == 0, res.stdout[-4000:]
    [row] = latency_table(_ledger(stack)["entries"])
    assert row["maintained"] is False and row["regressions"][0].startswith("p95 "), row
