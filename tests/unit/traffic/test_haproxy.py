"""_haproxy: weight planning, share arithmetic, parsing of a recorded Runtime API answer, and the
errors an operator gets for an unreachable API, an unknown backend or impossible weights."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import (
    HaproxyError,
    RuntimeApi,
    check_name,
    plan_weights,
    share_of,
)
from ansible_collections.sophia.migrate.plugins.modules import splitter_weight
from support.modules import run_module

# header and row layout as HAProxy 2.6.12 (Debian 12) answers; the admin/operational values are chosen per
# row: compose1 ready, k3s1 configured "disabled" then set ready (admin 0x04 = CMAINT only, as observed),
# k3s2 in forced maintenance, k3s3 draining
HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight"
    " srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state"
    " srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port"
    " srv_check_addr srv_agent_addr srv_agent_port"
)
STATE = "1\n" + HEADER + """
3 route_x 1 compose1 127.0.0.1 2 0 75 100 96 15 3 4 6 0 0 0 - 8081 - 0 0 - - 0
3 route_x 2 k3s1 127.0.0.1 2 4 25 0 99 17 2 4 6 0 0 0 - 8082 - 0 0 - - 0
3 route_x 3 k3s2 127.0.0.1 0 1 0 0 99 17 2 0 6 0 0 0 - 8083 - 0 0 - - 0
3 route_x 4 k3s3 127.0.0.1 2 8 10 0 99 17 2 4 6 0 0 0 - 8084 - 0 0 - - 0
"""


@pytest.fixture
def fake_api(tmp_path):
    """A UNIX socket that answers each command line from a table (like HAProxy's stats socket)."""
    path = str(tmp_path / "admin.sock")
    answers = {"show servers state route_x": STATE, "show servers state nope": "Can't find backend.\n"}
    seen: list[str] = []
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(5)

    def serve():
        while True:
            try:
                conn, _addr = srv.accept()
            except OSError:
                return
            with conn:
                cmd = conn.recv(4096).decode().strip()
                seen.append(cmd)
                conn.sendall(answers.get(cmd, "").encode())

    threading.Thread(target=serve, daemon=True).start()
    yield path, seen
    srv.close()


def test_plan_weights_give_the_exact_share():
    assert plan_weights(25, ["compose1"], ["k3s1"]) == {"compose1": 75, "k3s1": 25}
    w = plan_weights(25, ["compose1", "compose2"], ["k3s1"])
    assert w == {"compose1": 75, "compose2": 75, "k3s1": 50}
    assert share_of(w, ["k3s1"]) == 25
    w = plan_weights(100, ["compose1", "compose2"], ["k3s1", "k3s2"])
    assert share_of(w, ["k3s1", "k3s2"]) == 100 and max(w.values()) <= 256


@pytest.mark.parametrize(("share", "old", "new", "message"), [
    (101, ["c"], ["k"], "between 0 and 100"),
    (-1, ["c"], ["k"], "between 0 and 100"),
    (50, [], ["k"], "at least one server on each side"),
    (99, ["c1", "c2", "c3"], ["k1", "k2", "k3"], "use fewer servers per side"),
])
def test_impossible_plans_are_refused(share, old, new, message):
    with pytest.raises(HaproxyError, match=message):
        plan_weights(share, old, new)


def test_share_counts_maintenance_as_zero():
    assert share_of({"c": 75, "k": 25}, ["k"], {"k": "maint"}) == 0
    assert share_of({"c": 0, "k": 0}, ["k"]) is None


def test_parse_recorded_state(fake_api):
    path, seen = fake_api
    servers = RuntimeApi(path, 2).servers("route_x")
    assert servers["compose1"] == {"weight": 75, "initial_weight": 100, "address": "127.0.0.1:8081",
                                   "admin": "ready", "operational": "RUNNING", "health": "enabled"}
    assert servers["k3s2"]["health"] == "enabled"  # check state 6: configured and enabled (paused bit aside)
    assert servers["k3s1"]["admin"] == "ready"  # CMAINT alone is no maintenance
    assert servers["k3s2"]["admin"] == "maint" and servers["k3s2"]["operational"] == "STOPPED"
    assert servers["k3s3"]["admin"] == "drain"
    assert seen == ["show servers state route_x"]


def test_unknown_backend_and_unreachable_api_name_the_problem(fake_api, tmp_path):
    path, _seen = fake_api
    with pytest.raises(HaproxyError, match=r"unexpected answer|no backend"):
        RuntimeApi(path, 2).servers("nope")
    missing = str(tmp_path / "absent.sock")
    with pytest.raises(HaproxyError, match=r"cannot reach the HAProxy Runtime API at .*absent.sock.*stats socket"):
        RuntimeApi(missing, 1).servers("route_x")
    assert not os.path.exists(missing)


def test_refused_command_is_an_error(fake_api):
    path, _seen = fake_api
    api = RuntimeApi(path, 2)
    api.command = lambda cmd: "No such server.\n"  # type: ignore[method-assign]
    with pytest.raises(HaproxyError, match="refused a change on backend route_x: No such server"):
        api.set_servers("route_x", [("k3s9", 10, "ready")])


@pytest.mark.parametrize("name", ["route_x", "mcp-context", "be.www:8443", "A" * 64])
def test_haproxy_names_are_accepted(name):
    assert check_name(name, "backend") == name


@pytest.mark.parametrize("name", ["route_x; disable frontend www", "route_x\nshutdown sessions", "a b", "", "A" * 65,
                                  "route/x", "é", None, 5])
def test_other_names_are_refused_before_anything_is_sent(fake_api, name):
    path, seen = fake_api
    with pytest.raises(HaproxyError, match="is not a HAProxy name"):
        check_name(name, "backend")
    api = RuntimeApi(path, 2)
    with pytest.raises(HaproxyError, match="is not a HAProxy name"):
        api.servers(name)
    with pytest.raises(HaproxyError, match="is not a HAProxy name"):
        api.set_servers(name, [("k3s1", 10, "ready")])
    with pytest.raises(HaproxyError, match="is not a HAProxy name"):
        api.set_servers("route_x", [(name, 10, "ready")])
    assert seen == []


def test_module_refuses_an_injected_name_in_check_mode_without_touching_the_socket(fake_api, capsys):
    path, seen = fake_api
    base = {"runtime_api": path, "backend": "route_x", "old_servers": ["compose1"], "new_servers": ["k3s1"],
            "share": 25}
    bad = run_module(splitter_weight, {**base, "backend": "route_x; disable frontend www"}, capsys, check_mode=True)
    assert bad["failed"] and bad["msg"].startswith("splitter_weight: option backend: 'route_x; disable frontend www'")
    server = run_module(splitter_weight, {**base, "new_servers": ["k3s1 weight 0"]}, capsys, check_mode=True)
    assert server["failed"] and "option new_servers: server 'k3s1 weight 0' is not a HAProxy name" in server["msg"]
    assert seen == []
    good = run_module(splitter_weight, base, capsys, check_mode=True)
    assert not good.get("failed") and seen == ["show servers state route_x"], good
