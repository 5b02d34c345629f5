"""Verify the live HAProxy splitter on the converged traffic_shift container (route at 50% on K3s)."""

import json
import shlex

SOCKET = "/run/haproxy/admin.sock"
BACKEND = "route_mcp_context"
STATE_FILE = "/var/lib/haproxy/server-state"

# Runs inside the container: socat is not installed there, python3 is.
RUNTIME_API = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.stdin.buffer.read())
out = b""
while True:
    data = s.recv(65536)
    if not data:
        break
    out += data
sys.stdout.write(out.decode())
"""

# 20 requests on one connection each, printing the status and the X-Sophia-Backend header per request.
REQUESTS = """
import json, urllib.request
out = []
for _ in range(20):
    with urllib.request.urlopen("http://127.0.0.1:9101/", timeout=5) as r:
        out.append([r.status, r.headers.get("x-sophia-backend")])
print(json.dumps(out))
"""


def runtime_api(host, command):
    cmd = f"echo {shlex.quote(command)} | python3 -c {shlex.quote(RUNTIME_API)} {SOCKET}"
    return host.check_output(cmd)


def servers_state(host):
    lines = [line for line in runtime_api(host, f"show servers state {BACKEND}").splitlines() if line.strip()]
    header = next(line for line in lines if line.startswith("# be_id"))
    names = header.lstrip("# ").split()
    rows = [dict(zip(names, line.split(), strict=False))
            for line in lines if not line.startswith("#") and line.strip() != "1"]
    return {row["srv_name"]: row for row in rows if row["be_name"] == BACKEND}


def test_haproxy_running_and_enabled(host):
    haproxy = host.service("haproxy")
    assert haproxy.is_running
    assert haproxy.is_enabled


def test_route_at_half_share(host):
    servers = servers_state(host)
    assert set(servers) == {"compose1", "k3s1"}
    compose, k3s = servers["compose1"], servers["k3s1"]
    # srv_uweight is the live (user) weight; both sides equal = 50% on K3s
    assert int(compose["srv_uweight"]) == int(k3s["srv_uweight"]) > 0
    # neither side in maintenance (0x23) or drain (0x18), both checked UP (srv_op_state 2 = RUNNING)
    for row in (compose, k3s):
        assert int(row["srv_admin_state"]) & (0x23 | 0x18) == 0
        assert int(row["srv_op_state"]) == 2


def test_requests_split_between_sides(host):
    answers = json.loads(host.check_output(f"python3 -c {shlex.quote(REQUESTS)}"))
    assert [status for status, _u1 in answers] == [200] * 20
    sides = [side for _u1, side in answers]
    assert set(sides) <= {"compose1", "k3s1"}
    assert 8 <= sides.count("k3s1") <= 12


def test_server_state_file_saved(host):
    state = host.file(STATE_FILE)
    assert state.exists and state.is_file
    assert BACKEND in state.content_string
