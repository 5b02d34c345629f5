"""The write freeze with production's settings fails no request: the splitter holds the frozen service's requests.

Real HAProxy configured by traffic_shift's template (HAProxy 2.6, Debian 12), two lab_service.py processes (the Compose
and the K3s side of one route, K3s at 0 % as during the data migration), wrk with keep-alive GETs and POSTs and a
30 s timeout. The role's own freeze (data_migration tasks/freeze.yml, in a block/rescue as qdrant_migrate.yml runs
it) stops the Compose service with SIGTERM, as `docker stop` does, waits (the catch-up), and starts it again; the
service's port then first accepts and closes connections for 2 s, as a port published by docker-proxy (Docker's
default; measured with Docker 20.10: "Empty reply from server") does while the container's app is not listening.

- With data_migration_write_freeze.hold (park): 0 failed requests, none answered by the K3s side, the server back
  at its address with its health checks enabled at the end. Before the hold, HAProxy marked the stopped server DOWN
  after 2 failed checks and answered 503 (and the template's `retries 2` held a refused connection 2 s at most).
- The hold without park fails requests in the docker-proxy window (502: accepted, then closed, not retried).
- Without the hold, the same freeze fails requests (the test can fail).
- A freeze whose catch-up fails and whose service does not come back still ends the hold: health checks enabled,
  the server back at its address and marked DOWN (a failed migration never leaves a route held).
"""

from __future__ import annotations

import re
import time

from conftest import BACKEND, ROUTE
from traffic_support import Load, free_port, summary

from support.playbooks import run_play

DOWN_SECONDS = 5

# As qdrant_migrate.yml: the freeze starts, the catch-up runs, the freeze ends; any failure ends it in the rescue.
PLAY = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: the catch-up under the write freeze
      block:
        - name: stop the writes
          ansible.builtin.include_role:
            name: sophia.migrate.data_migration
            tasks_from: freeze.yml
          vars:
            _data_migration_freeze_action: start
        - name: the catch-up
          ansible.builtin.command: "{catchup}"
          changed_when: false
        - name: the writes resume
          ansible.builtin.include_role:
            name: sophia.migrate.data_migration
            tasks_from: freeze.yml
          vars:
            _data_migration_freeze_action: end
      rescue:
        - name: the writes resume (rescue)
          ansible.builtin.include_role:
            name: sophia.migrate.data_migration
            tasks_from: freeze.yml
          vars:
            _data_migration_freeze_action: end
        - name: stop here
          ansible.builtin.fail:
            msg: the catch-up failed
"""


PROXY_SECONDS = 2  # after the start command, the port accepts and closes connections (docker-proxy, app starting)


def _variables(splitter, hold: bool, park: bool = True, end: list[str] | None = None) -> dict:
    compose = splitter["compose"]
    freeze = {"start": compose.command("stop"), "end": end or compose.command("start", str(PROXY_SECONDS))}
    if hold:
        freeze["hold"] = {"runtime_api": splitter["socket"], "routes": [ROUTE], "ready_timeout": 30}
        if park:
            freeze["hold"]["park"] = f"127.0.0.1:{free_port()}"
    return {"data_migration_write_freeze": freeze, "traffic_shift_routes": [splitter["route"]],
            "traffic_shift_splitter_bind": "127.0.0.1"}


def _freeze_under_load(splitter, tmp_path, hold: bool, park: bool = True, down: int = DOWN_SECONDS):
    load = Load(splitter["work"], f"http://127.0.0.1:{splitter['port']}/api/context/x", connections=20, rate=200)
    load.argv[load.argv.index("--timeout") + 1] = "30"  # a client that waits longer than the freeze
    load.start()
    res = run_play(tmp_path, PLAY.format(catchup=f"sleep {down}"), _variables(splitter, hold, park), timeout=180)
    time.sleep(1.5)
    return load.stop(), res


def test_a_held_freeze_fails_no_request_and_sends_none_to_k3s(splitter, tmp_path):
    """Production's settings: hold with park; the service stops (SIGTERM), stays down 5 s, and its port then
    accepts-and-closes for 2 s (docker-proxy while the app starts) before the service listens."""
    pid_before = splitter["compose"].pid()
    k3s_before = splitter["k3s"].requests()
    result, res = _freeze_under_load(splitter, tmp_path, hold=True)
    print(f"\nheld freeze ({DOWN_SECONDS}s down, {PROXY_SECONDS}s docker-proxy): {summary(result)}, "
          f"p99 {result['p99_ms']:.0f} ms")
    assert res.returncode == 0, res.stdout[-4000:]
    assert splitter["compose"].pid() != pid_before  # the service was really stopped and started again
    assert result["requests"] > 200, result["raw"]  # the load ran (held requests slow it down)
    assert result["failed"] == 0, result["raw"]
    assert result["p99_ms"] >= 1000 * (DOWN_SECONDS - 1), result["raw"]  # requests were held through the stop
    # nothing went to the K3s side (not even a health check): its one request since is the /metrics read above
    assert splitter["k3s"].requests() == k3s_before + 1
    assert splitter["compose"].requests() > 0  # the restarted service answers
    server = splitter["api"].servers(BACKEND)["compose1"]
    assert (server["health"], server["operational"], server["address"]) == \
        ("enabled", "RUNNING", splitter["route"]["compose"][0]), server  # back home, checked
    out = res.stdout
    held = r"hold the routes' requests in the splitter.*\n(changed|ok): \[localhost\] => \(item=www-api-context"
    assert re.search(held, out), out[-4000:]
    assert f"www-api-context: http://{splitter['route']['compose'][0]}/api/context/health" in out


def test_without_park_the_docker_proxy_window_fails_held_requests(splitter, tmp_path):
    """The hold alone holds refused connections; a port that accepts and then closes (docker-proxy while the app
    starts) is no connection failure for HAProxy: 502, not retried. Parking is what holds those."""
    result, res = _freeze_under_load(splitter, tmp_path, hold=True, park=False, down=1)
    print(f"\nheld freeze without park (1s down, {PROXY_SECONDS}s docker-proxy): {summary(result)}")
    assert res.returncode == 0, res.stdout[-4000:]
    assert result["failed"] > 0, result["raw"]


def test_without_the_hold_the_same_freeze_fails_requests(splitter, tmp_path):
    result, res = _freeze_under_load(splitter, tmp_path, hold=False, down=1)
    print(f"\nfreeze without a hold (1s down): {summary(result)}")
    assert res.returncode == 0, res.stdout[-4000:]
    assert result["failed"] > 0, result["raw"]


def test_a_failed_freeze_ends_the_hold(splitter, tmp_path):
    """The catch-up fails and the service does not come back (its start command fails): the rescue ends the freeze,
    the hold is released anyway, and HAProxy's health checks then mark the stopped server DOWN."""
    variables = _variables(splitter, hold=True, end=["false"])  # parked too: it goes back to its address
    res = run_play(tmp_path, PLAY.format(catchup="false"), variables, timeout=180)
    assert res.returncode != 0
    assert "rescued=1" in res.stdout, res.stdout[-4000:]  # the catch-up failed, the rescue ended the freeze
    assert re.search(r"release the splitter's hold.*\n(changed|ok): \[localhost\] => \(item=www-api-context",
                     res.stdout), res.stdout[-4000:]
    server = splitter["api"].servers(BACKEND)["compose1"]
    assert (server["health"], server["address"]) == ("enabled", splitter["route"]["compose"][0]), server
    deadline = time.monotonic() + 10
    while splitter["api"].servers(BACKEND)["compose1"]["operational"] == "RUNNING":
        assert time.monotonic() < deadline, "the stopped server is never marked DOWN: its checks are not running"
        time.sleep(0.2)
