"""splitter_hold: health checks of a route's servers stopped (held) and resumed (released) through the Runtime API.

The Runtime API is a UNIX socket that keeps the servers' state and answers `show servers state`, `disable health`
and `enable health` as HAProxy 2.6.12 (Debian 12) does (recorded: srv_check_state 6 = configured and enabled, 2 =
configured, stopped; "No such server." / "No such backend." for unknown names). The module runs in-process.
"""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import RuntimeApi
from ansible_collections.sophia.migrate.plugins.modules import splitter_hold
from support.modules import run_module
from support.servers import free_port

HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port"
    " srv_check_addr srv_agent_addr srv_agent_port"
)


class FakeHaproxy:
    """Servers of backend route_x: name -> [op_state, admin_state, weight, check_state, address, port]."""

    def __init__(self, path: str):
        self.servers = {"compose1": [2, 0, 100, 6, "127.0.0.1", 8081], "k3s1": [2, 5, 0, 14, "127.0.0.1", 8082]}
        self.seen: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        self.sock.listen(5)
        threading.Thread(target=self._serve, daemon=True).start()

    def _state(self) -> str:
        rows = [f"3 route_x {i} {name} {ip} {op} {admin} {w} {w} 5 15 3 4 {chk} 0 0 0 - {port} - 0 0 - - 0"
                for i, (name, (op, admin, w, chk, ip, port)) in enumerate(self.servers.items(), 1)]
        return "1\n" + HEADER + "\n" + "\n".join(rows) + "\n\n"

    def _one(self, cmd: str) -> str:
        if cmd == "show servers state route_x":
            return self._state()
        if cmd.startswith("show servers state "):
            return "Can't find backend.\n"
        if cmd.startswith("set server "):  # set server <b>/<s> addr <ip> port <port>
            _set, _server, target, _addr, ip, _port, port = cmd.split(" ")
            backend, _slash, server = target.partition("/")
            if backend != "route_x" or server not in self.servers:
                return "No such server.\n"
            old = self.servers[server]
            answer = f"IP changed from '{old[4]}' to '{ip}', port changed from '{old[5]}' to '{port}' by 'cli'\n"
            old[4], old[5] = ip, int(port)
            return answer
        verb, _health, target = cmd.split(" ", 2)
        backend, _slash, server = target.partition("/")
        if backend != "route_x":
            return "No such backend.\n"
        if server not in self.servers:
            return "No such server.\n"
        self.servers[server][3] = self.servers[server][3] | 4 if verb == "enable" else self.servers[server][3] & ~4
        return "\n"

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                line = conn.recv(65536).decode().strip()
                self.seen.append(line)
                conn.sendall("".join(self._one(c.strip()) for c in line.split(";")).encode())


@pytest.fixture
def haproxy(tmp_path):
    fake = FakeHaproxy(str(tmp_path / "admin.sock"))
    yield fake, str(tmp_path / "admin.sock")
    fake.sock.close()


def _args(path: str, **kw) -> dict:
    return {"runtime_api": path, "backend": "route_x", "servers": ["compose1"], **kw}


def test_hold_stops_the_health_check_then_release_resumes_it_each_change_once(haproxy, capsys):
    fake, path = haproxy
    held = run_module(splitter_hold, _args(path, state="held"), capsys)
    assert held["changed"] and held["held"] == ["compose1"], held
    assert held["servers"]["compose1"]["health"] == "disabled" and fake.servers["compose1"][3] == 2
    assert "disable health route_x/compose1" in fake.seen
    assert held["diff"]["before"] == {"compose1": {"health": "enabled", "address": "127.0.0.1:8081"}}
    assert held["diff"]["after"] == {"compose1": {"health": "disabled", "address": "127.0.0.1:8081"}}
    again = run_module(splitter_hold, _args(path, state="held"), capsys)
    assert not again["changed"] and again["held"] == ["compose1"] and "diff" not in again
    released = run_module(splitter_hold, _args(path, state="released"), capsys)
    assert released["changed"] and released["held"] == [] and fake.servers["compose1"][3] == 6
    assert fake.seen[-2] == "enable health route_x/compose1"
    assert not run_module(splitter_hold, _args(path, state="released"), capsys)["changed"]
    assert RuntimeApi(path).servers("route_x")["k3s1"]["health"] == "enabled"  # the other side untouched


def test_check_mode_reports_the_change_and_sends_none(haproxy, capsys):
    fake, path = haproxy
    result = run_module(splitter_hold, _args(path, state="held"), capsys, check_mode=True)
    assert result["changed"] and result["held"] == ["compose1"]
    assert fake.servers["compose1"][3] == 6
    assert fake.seen == ["show servers state route_x"]


def test_missing_socket_backend_or_server_fail_cleanly_and_name_it(haproxy, capsys, tmp_path):
    fake, path = haproxy
    gone = run_module(splitter_hold, _args(str(tmp_path / "absent.sock")), capsys)
    assert gone["failed"] and "cannot reach the HAProxy Runtime API at" in gone["msg"] and "absent.sock" in gone["msg"]
    backend = run_module(splitter_hold, _args(path, backend="route_nope"), capsys)
    assert backend["failed"] and backend["msg"].startswith("splitter_hold: ") and "route_nope" in backend["msg"]
    server = run_module(splitter_hold, _args(path, servers=["compose1", "compose2"]), capsys)
    assert server["failed"] and "backend 'route_x' has no server(s) compose2 (it has: compose1, k3s1)" in server["msg"]
    assert fake.servers["compose1"][3] == 6  # nothing changed by a failed run


@pytest.mark.parametrize("check_mode", [True, False])
def test_injected_names_are_refused_before_anything_is_sent(haproxy, capsys, check_mode):
    fake, path = haproxy
    bad = run_module(splitter_hold, _args(path, backend="route_x; disable frontend www"), capsys, check_mode=check_mode)
    assert bad["failed"] and "option backend: 'route_x; disable frontend www' is not a HAProxy name" in bad["msg"]
    srv = run_module(splitter_hold, _args(path, servers=["compose1\nshutdown sessions"]), capsys, check_mode=check_mode)
    assert srv["failed"] and "option servers: server" in srv["msg"]
    empty = run_module(splitter_hold, _args(path, servers=[]), capsys, check_mode=check_mode)
    assert empty["failed"] and "option servers: at least one server" in empty["msg"]
    assert fake.seen == []


def test_a_route_with_traffic_on_the_other_side_is_not_held(haproxy, capsys):
    fake, path = haproxy
    fake.servers["k3s1"] = [2, 0, 25, 6, "127.0.0.1", 8082]  # K3s at 25, ready: a retry could go there
    result = run_module(splitter_hold, _args(path, state="held"), capsys)
    assert result["failed"] and "k3s1 (weight 25, ready) also take(s) the route's traffic" in result["msg"]
    assert fake.servers["compose1"][3] == 6
    fake.servers["k3s1"] = [2, 1, 25, 6, "127.0.0.1", 8082]  # the same weight in maintenance takes nothing: held
    assert run_module(splitter_hold, _args(path, state="held"), capsys)["held"] == ["compose1"]
    # releasing never refuses: a failed run must be able to resume the checks whatever the weights
    fake.servers["k3s1"] = [2, 0, 25, 6, "127.0.0.1", 8082]
    released = run_module(splitter_hold, _args(path, state="released"), capsys)
    assert released["changed"] and fake.servers["compose1"][3] == 6


def test_a_held_server_that_is_down_is_held_with_a_warning(haproxy, capsys):
    fake, path = haproxy
    fake.servers["compose1"][0] = 0
    result = run_module(splitter_hold, _args(path, state="held"), capsys)
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
    assert result["changed"] and any("compose1 of route_x is not UP" in w for w in warnings), result


def test_park_moves_the_held_server_where_connections_are_refused_and_release_brings_it_back(haproxy, capsys):
    fake, path = haproxy
    park = f"127.0.0.1:{free_port()}"
    held = run_module(splitter_hold, _args(path, park=park), capsys)
    assert held["changed"] and held["servers"]["compose1"]["address"] == park
    assert fake.seen[-3:-1] == ["disable health route_x/compose1",  # checks off first: not marked DOWN when parked
                                f"set server route_x/compose1 addr 127.0.0.1 port {park.rsplit(':', 1)[1]}"]
    assert not run_module(splitter_hold, _args(path, park=park), capsys)["changed"]
    home = {"compose1": "127.0.0.1:8081"}
    check = run_module(splitter_hold, _args(path, state="released", addresses=home), capsys, check_mode=True)
    assert check["changed"]
    assert check["diff"]["after"] == {"compose1": {"health": "enabled", "address": "127.0.0.1:8081"}}
    assert fake.servers["compose1"][4:] == ["127.0.0.1", int(park.rsplit(":", 1)[1])]  # check mode sent nothing
    released = run_module(splitter_hold, _args(path, state="released", addresses=home), capsys)
    assert released["changed"] and fake.servers["compose1"][3:] == [6, "127.0.0.1", 8081]
    assert fake.seen[-3:-1] == ["set server route_x/compose1 addr 127.0.0.1 port 8081",  # home first, then checks
                                "enable health route_x/compose1"]
    assert not run_module(splitter_hold, _args(path, state="released", addresses=home), capsys)["changed"]


def test_a_park_address_that_accepts_connections_is_refused(haproxy, capsys):
    fake, path = haproxy
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        park = f"127.0.0.1:{listener.getsockname()[1]}"
        result = run_module(splitter_hold, _args(path, park=park), capsys, check_mode=True)
    assert result["failed"] and f"option park: something listens on {park}" in result["msg"]
    assert fake.servers["compose1"][3:] == [6, "127.0.0.1", 8081]


@pytest.mark.parametrize(("args", "message"), [
    ({"park": "localhost:1"}, "option park: 'localhost:1' is not IPV4:PORT"),
    ({"park": "127.0.0.1:0"}, "option park: '127.0.0.1:0' is not IPV4:PORT"),
    ({"park": "127.0.0.1:1; disable frontend www"}, "is not IPV4:PORT"),
    ({"state": "released", "addresses": {"compose1": "x"}}, "option addresses.compose1: 'x' is not IPV4:PORT"),
    ({"state": "released", "addresses": {"k3s1": "127.0.0.1:1"}}, "option addresses: 'k3s1' is not one of the servers"),
])
def test_bad_addresses_fail_cleanly_before_anything_is_sent(haproxy, capsys, args, message):
    fake, path = haproxy
    result = run_module(splitter_hold, _args(path, **args), capsys)
    assert result["failed"] and message in result["msg"], result
    assert fake.seen == []
