"""Phase 2D port handover under load: a DNAT rule sends new connections for the public port to the
K3s ingress while established keep-alive connections finish on the old edge (nginx closes them
cleanly with "Connection: close" after keepalive_requests), then the role waits until the old edge
holds no connection. Real nginx (both edges, TLS), real iptables, wrk with keep-alive GETs and POSTs.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from traffic_support import Load, free_port, recap, run_playbook, summary


def _edge_body(port: int, tls: str, name: str, logs: str) -> str:
    return f"""
        log_format timed '$msec $request_method $status';
        server {{
            listen 127.0.0.1:{port} ssl;
            ssl_certificate {tls}/cert.pem;
            ssl_certificate_key {tls}/key.pem;
            keepalive_requests 200;
            access_log {logs}/{name}.log timed;
            location / {{ default_type text/plain; return 200 "{name}\\n"; }}
        }}"""


def _count(path: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as handle:
        return sum(1 for _u1 in handle)


@pytest.fixture
def edges(tmp_path, nginx_factory):
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=www.sophia-intel.ai", "-keyout", f"{tls}/key.pem", "-out", f"{tls}/cert.pem"],
                   check=True, capture_output=True)
    logs = tmp_path / "edge-logs"
    logs.mkdir()
    public, new = free_port(), free_port()
    nginx_factory("old-edge", _edge_body(public, str(tls), "old", str(logs)), [public])
    nginx_factory("new-ingress", _edge_body(new, str(tls), "new", str(logs)), [new])
    rule = ["-p", "tcp", "-d", "127.0.0.1", "--dport", str(public)]
    yield {"public": public, "new": new, "logs": str(logs), "work": str(tmp_path)}
    # never leave a rule behind, whatever the test did
    for _u1 in range(3):
        listed = subprocess.run(["iptables", "-t", "nat", "-S", "OUTPUT"], capture_output=True, text=True,
                                check=False).stdout
        for line in listed.splitlines():
            if f"--dport {public}" in line:
                subprocess.run(["iptables", "-t", "nat", *line.replace("-A", "-D", 1).split()], check=False)
    del rule


def _vars(edges, state: str) -> dict:
    return {
        "traffic_shift_routes": [],
        "traffic_shift_handover_state": state,
        "traffic_shift_handover": [{"port": edges["public"], "destination": "127.0.0.1",
                                    "to": f"127.0.0.1:{edges['new']}", "old": f"127.0.0.1:{edges['public']}"}],
        "traffic_shift_handover_chains": ["OUTPUT"],
        "traffic_shift_handover_drain_timeout": 120,
        # this test's host is the machine running the tests: no boot unit on it (test_handover_persist.py tests that)
        "traffic_shift_handover_persist": False,
        "traffic_shift_ledger_path": f"{edges['work']}/ledger.json",
    }


def test_port_handover_and_back_under_load(edges):
    load = Load(edges["work"], f"https://127.0.0.1:{edges['public']}/api/x").start()
    time.sleep(1)
    # check mode shows the rule and adds nothing
    dry = run_playbook(edges["work"], _vars(edges, "present"), check=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    rules = subprocess.run(["iptables", "-t", "nat", "-S", "OUTPUT"], capture_output=True, text=True, check=True)
    assert f"--dport {edges['public']}" not in rules.stdout
    res = run_playbook(edges["work"], _vars(edges, "present"))
    assert res.returncode == 0, res.stdout[-4000:]
    old_after_drain = _count(f"{edges['logs']}/old.log")
    time.sleep(2)
    assert _count(f"{edges['logs']}/old.log") == old_after_drain  # drained: nothing reaches the old edge
    new_served = _count(f"{edges['logs']}/new.log")
    # idempotent
    again = run_playbook(edges["work"], _vars(edges, "present"))
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]
    # rollback: the rule goes, new connections reach the old edge again
    back = run_playbook(edges["work"], _vars(edges, "absent"))
    assert back.returncode == 0, back.stdout[-3000:]
    time.sleep(2)
    result = load.stop()
    print(f"\nport handover and back: {summary(result)}; new ingress served {new_served}")
    assert result["failed"] == 0, result["raw"]
    assert result["rate"] >= 300
    assert new_served > 1000
    with open(f"{edges['work']}/ledger.json") as handle:
        ledger = json.load(handle)
    steps = [(e["step"], e["status"]) for e in ledger["entries"]]
    assert (f"traffic/handover/{edges['public']}", "done") in steps
    assert steps[-1] == (f"traffic/handover/{edges['public']}", "rolled_back")
