"""traffic_shift under real load: Debian's nginx (TLS edge + two backends), HAProxy as the splitter,
wrk sending keep-alive GETs and POSTs at >= 300 requests/s through the edge. Every failed request
counts: socket errors (connect, read, write, timeout) and non-2xx answers.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
import typing as t
import urllib.request

from traffic_support import Load, ShareWatcher, recap, run_playbook, shares_per_step, summary

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_routes
from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import RuntimeApi


def _get(port: int, path: str) -> tuple[int, t.Any]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=5) as resp:
        return resp.status, resp.headers


def _ledger(stack) -> dict:
    with open(os.path.join(stack["work"], "ledger.json")) as handle:
        return json.load(handle)


def _insert_splitter(stack, target: int = 0):
    """First run: splitter configured and started, edge pointed at it (the one-time change)."""
    res = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": target})
    assert res.returncode == 0, res.stdout[-4000:]
    return res


def held(changes, minimum=0.2):
    """Shares that stayed live at least ``minimum`` seconds (a pair of weights moves in one Runtime API
    line; the poller may still catch the microseconds in between)."""
    out = []
    for i, (start, share) in enumerate(changes):
        end = changes[i + 1][0] if i + 1 < len(changes) else float("inf")
        if end - start >= minimum and (not out or out[-1] != share):
            out.append(share)
    return out


def _check_shares(observed, tolerance=5):
    assert observed, "no step lasted long enough to measure"
    for step in observed:
        assert abs(step["observed"] - (step["share"] or 0)) <= tolerance, observed


def test_one_time_edge_change_is_validated_and_measured(stack):
    """Inserting the splitter (config written, HAProxy started, nginx reloaded once) under load."""
    load = Load(stack["work"], f"https://127.0.0.1:{stack['https']}/api/context/x").start()
    res = _insert_splitter(stack)
    time.sleep(1)
    result = load.stop()
    print(f"\nsplitter insertion under load: {result['requests']} requests at {result['rate']:.0f}/s, "
          f"{result['socket_errors']} socket errors, {result['non_2xx']} non-2xx (one nginx reload)")
    print("splitter:", RuntimeApi(stack["socket"]).servers("route_mcp_context"))
    assert result["rate"] >= 300
    # the edge now goes through the splitter, and its other locations and TLS still work
    status, headers = _get(stack["https"], "/api/context/y")
    assert status == 200 and headers.get("X-Sophia-Backend") == "compose1"
    assert _get(stack["https"], "/static/a")[0] == 200
    assert os.path.exists(stack["edge"].conf + "") and any(
        f.startswith("nginx.conf.") for f in os.listdir(os.path.dirname(stack["edge"].conf)))  # backup kept
    # the edited file still says where the route went before (ingress_certs reads the Compose routing from it)
    (route,) = [r for r in _nginx_routes.parse_routes(stack["edge"].conf)["routes"]
                if r["path"].startswith("/api/context")]
    assert route["upstreams"] == [f"127.0.0.1:{stack['ports']['compose']}"]
    assert route["split_by"] == f"http://127.0.0.1:{stack['split']}"
    # the splitter moving (another address) moves proxy_pass only; the record of the Compose target stays
    with open(stack["edge"].conf) as handle:
        edited = handle.read()
    moved = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 0,
                                         "traffic_shift_edge_splitter_host": "localhost"}, check=True)
    assert moved.returncode == 0, moved.stdout[-3000:]
    compose = f"http://127.0.0.1:{stack['ports']['compose']}"
    changed = [f"{line[0]} {line[1:].strip()}" for line in moved.stdout.splitlines() if line.startswith(("+ ", "- "))]
    assert changed == [
        f"- proxy_pass http://127.0.0.1:{stack['split']};",
        f"+ proxy_pass http://localhost:{stack['split']};",
    ], moved.stdout[-3000:]
    assert f"set $sophia_migrate_compose_upstream {compose};" in edited
    with open(stack["edge"].conf) as handle:
        assert handle.read() == edited  # check mode wrote nothing
    # a second run changes nothing
    again = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 0})
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    assert "nothing to do" in " ".join((res.stdout + again.stdout).split())


def test_invalid_edge_change_is_put_back(stack):
    with open(stack["edge"].conf) as handle:
        before = handle.read()
    variables = {**stack["vars"], "traffic_shift_edge_validate_command": "false"}
    res = run_playbook(stack["work"], variables)
    assert res.returncode != 0
    assert "validate_command (false) exited 1" in res.stdout and "back as it was" in res.stdout
    with open(stack["edge"].conf) as handle:
        assert handle.read() == before


def test_full_walk_zero_failed_requests_and_shares(stack):
    _insert_splitter(stack)
    watcher = ShareWatcher(stack["socket"], "route_mcp_context")
    watcher.start()
    time.sleep(0.5)
    load = Load(stack["work"], f"https://127.0.0.1:{stack['https']}/api/context/x").start()
    res = run_playbook(stack["work"], stack["vars"])
    time.sleep(2)  # a while at 100%
    result = load.stop()
    changes = watcher.stop()
    observed = shares_per_step(stack["work"], changes)
    print(f"\nwalk 0->100: {summary(result)}; shares {observed}")
    assert res.returncode == 0, res.stdout[-4000:]
    assert result["rate"] >= 300
    assert result["failed"] == 0, result["raw"]
    assert held(changes) == [0, 5, 25, 50, 100], changes
    _check_shares(observed)
    assert {s["share"] for s in observed} >= {0, 5, 25, 50, 100}
    ledger = _ledger(stack)
    assert ledger["state"]["traffic/mcp-context"] == 100
    done = [e["step"] for e in ledger["entries"]
            if e["status"] == "done" and e["step"].startswith("traffic/mcp-context/")]
    assert done == [f"traffic/mcp-context/{s}" for s in (5, 25, 50, 100)]
    # idempotent: the same target again changes nothing
    again = run_playbook(stack["work"], stack["vars"])
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    # rollback is a run with target 0, straight back
    back = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 0})
    assert back.returncode == 0, back.stdout[-3000:]
    assert _get(stack["https"], "/api/context/z")[1].get("X-Sophia-Backend") == "compose1"


def test_failed_gate_at_25_steps_back_to_zero(stack):
    _insert_splitter(stack)
    watcher = ShareWatcher(stack["socket"], "route_mcp_context")
    watcher.start()
    time.sleep(0.5)
    load = Load(stack["work"], f"https://127.0.0.1:{stack['https']}/api/context/x").start()
    # the K3s side's health check starts failing once the route reaches 25% (its requests still answer)
    variables = {**stack["vars"], "traffic_shift_gate": {
        "probes": [{"name": "k3s", "type": "http", "url": f"http://127.0.0.1:{stack['ports']['k3s']}/health",
                    "timeout": 2}], "interval": 0.5, "initial_delay": 1}}

    def break_at_25():
        end = time.time() + 120
        while time.time() < end:
            if watcher.changes and watcher.changes[-1][1] == 25:
                os.remove(stack["health"]["k3s"])
                return
            time.sleep(0.05)

    breaker = threading.Thread(target=break_at_25, daemon=True)
    breaker.start()
    res = run_playbook(stack["work"], variables)
    time.sleep(2)
    result = load.stop()
    changes = watcher.stop()
    observed = shares_per_step(stack["work"], changes)
    print(f"\nforced failure at 25%: {summary(result)}; shares {observed}")
    assert res.returncode != 0
    assert "failed its gate at 25%" in res.stdout and "back at 0%" in res.stdout, res.stdout[-3000:]
    assert result["failed"] == 0, result["raw"]
    assert result["rate"] >= 300
    assert held(changes)[-1] in (0, None), changes
    assert 25 in held(changes) and 50 not in [s for _t, s in changes]
    _check_shares([s for s in observed if s["share"] in (0, 5)])
    ledger = _ledger(stack)
    assert ledger["state"]["traffic/mcp-context"] == 0
    failed = [e for e in ledger["entries"] if e["status"] == "failed"]
    assert failed and failed[-1]["step"] == "traffic/mcp-context/25"
    assert "k3s" in failed[-1]["data"]["reason"]
