"""health_gate against real local servers: a switchable HTTP server, Debian's redis-server and Prometheus.

The HTTP server is real (threaded, on a loopback port) and the test switches it between healthy,
500s, hanging past the timeout, flapping and slow.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module
from support.servers import RedisServer, free_port, prometheus_server

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class Switchable:
    """A real HTTP server whose behaviour the test switches: ok, error, hang, flap, slow."""

    def __init__(self):
        self.mode = "ok"
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 65536  # headers and body in one write: no delayed-ACK stall on keep-alive
            disable_nagle_algorithm = True

            def log_message(self, *a):
                return

            def do_GET(self):
                server.hits += 1
                mode = server.mode
                if mode == "hang":
                    time.sleep(3)
                if mode == "slow":
                    time.sleep(0.3)
                status = 500 if mode == "error" or (mode == "flap" and server.hits % 3 == 0) else 200
                body = json.dumps({"status": "ok" if status == 200 else "broken"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/health"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def target():
    server = Switchable()
    yield server
    server.close()


def http_probe(url, **extra):
    return {"name": "svc", "type": "http", "url": url, "timeout": 1, **extra}


def test_healthy_target_passes(target, capsys):
    res = run_module(
        health_gate,
        {
            "probes": [http_probe(target.url, json_path="status", json_value="ok")],
            "interval": 0.2,
            "count": 10,
            "consecutive_successes": 3,
        },
        capsys,
    )
    assert res["passed"] and res["verdict"] == "passed" and res["rounds"] == 3
    assert res["summary"]["p95_ms"] is not None and res["summary"]["error_ratio"] == 0


@pytest.mark.parametrize("mode", ["error", "hang"])
def test_failing_target_fails_in_time(target, mode, capsys):
    target.mode = mode
    interval, limit, timeout = 0.5, 3, 1
    start = time.monotonic()
    res = run_module(
        health_gate,
        {
            "probes": [http_probe(target.url)],
            "interval": interval,
            "count": 50,
            "failure_limit": limit,
            "consecutive_successes": 5,
        },
        capsys,
    )
    elapsed = time.monotonic() - start
    assert res["failed"] and res["verdict"] == "failed"
    assert ("HTTP 500" if mode == "error" else "no answer within 1") in res["msg"]
    # the documented bound, with scheduling jitter only (test_detection_time.py covers every kind of failure)
    bound = interval * limit + timeout
    assert elapsed <= bound + 0.3, f"took {elapsed:.2f}s, bound {bound:.2f}s"


def test_flapping_target_never_passes(target, capsys):
    target.mode = "flap"  # every third request fails
    res = run_module(
        health_gate,
        {
            "probes": [http_probe(target.url)],
            "interval": 0.05,
            "count": 12,
            "failure_limit": 99,
            "consecutive_successes": 3,
        },
        capsys,
    )
    assert res["failed"] and res["verdict"] == "failed"
    assert "consecutive successful rounds" in res["reason"]


def test_slow_target_fails_latency_condition(target, capsys):
    target.mode = "slow"
    res = run_module(
        health_gate,
        {
            "probes": [http_probe(target.url, success_condition={"max_latency_ms": 150})],
            "interval": 0.1,
            "count": 3,
            "fail_on_failure": False,
        },
        capsys,
    )
    assert not res["passed"] and "latency" in res["reason"]


def test_baseline_against_slower_candidate(capsys):
    fast, slow = Switchable(), Switchable()
    slow.mode = "slow"
    try:
        args = {
            "probes": [http_probe(slow.url, name="k3s")],
            "interval": 0.05,
            "count": 4,
            "consecutive_successes": 4,
            "baseline": {"candidate": "k3s", "probe": http_probe(fast.url, name="compose"), "latency_tolerance": 0.5},
            "fail_on_failure": False,
        }
        res = run_module(health_gate, args, capsys)
        assert res["verdict"] == "failed" and "compared with the baseline" in res["reason"]
        args["probes"] = [http_probe(fast.url, name="k3s")]
        args["baseline"]["probe"] = http_probe(fast.url, name="compose")
        args["baseline"]["latency_tolerance"] = 5.0  # two equal loopback servers: generous
        res = run_module(health_gate, args, capsys)
        assert res["verdict"] == "passed", res["reason"]
    finally:
        fast.close()
        slow.close()


def test_redis_tcp_and_wrong_password(capsys):
    with RedisServer(password="s3cret") as redis:
        ok = run_module(
            health_gate,
            {
                "probes": [
                    {"type": "redis", "url": f"redis://:s3cret@127.0.0.1:{redis.port}/0", "timeout": 1},
                    {"type": "tcp", "host": "127.0.0.1", "port": redis.port, "timeout": 1},
                ],
                "interval": 0.1,
                "count": 2,
            },
            capsys,
        )
        assert ok["passed"]
        bad = run_module(
            health_gate,
            {
                "probes": [{"type": "redis", "url": f"redis://:wrong@127.0.0.1:{redis.port}/0", "timeout": 1}],
                "count": 1,
            },
            capsys,
        )
        assert bad["failed"] and "refused the credentials" in bad["msg"]
        port = redis.port
    down = run_module(
        health_gate, {"probes": [{"type": "tcp", "host": "127.0.0.1", "port": port, "timeout": 1}], "count": 1}, capsys
    )
    assert down["failed"] and "connect to 127.0.0.1" in down["msg"]


def test_command_probe(capsys):
    ok = run_module(
        health_gate,
        {"probes": [{"type": "command", "argv": ["sh", "-c", "echo ready"], "stdout_regex": "^ready"}], "count": 1},
        capsys,
    )
    assert ok["passed"]
    bad = run_module(health_gate, {"probes": [{"type": "command", "cmd": "exit 3"}], "count": 1}, capsys)
    assert bad["failed"] and "exit code 3" in bad["msg"]


@pytest.fixture(scope="module")
def prometheus():
    """Debian's real Prometheus, scraping itself every second."""
    port = free_port()
    with prometheus_server({"self": [f"127.0.0.1:{port}"]}, port=port) as url:
        yield url


def test_prometheus_threshold_and_no_data(prometheus, capsys):
    up = {
        "type": "prometheus",
        "url": prometheus,
        "query": 'max(up{job="self"})',
        "success_condition": {"min_value": 1},
    }
    res = run_module(
        health_gate,
        {"probes": [up], "interval": 1, "count": 10, "consecutive_successes": 2, "failure_limit": 8},
        capsys,
    )  # the first scrape may not have happened yet
    assert res["passed"], res.get("msg")
    too_strict = dict(up, success_condition={"min_value": 2})
    res = run_module(health_gate, {"probes": [too_strict], "count": 1}, capsys)
    assert res["failed"] and "value 1.0 < 2" in res["msg"]
    nodata = {
        "type": "prometheus",
        "url": prometheus,
        "query": "absent_metric_xyz",
        "success_condition": {"max_value": 1},
    }
    for policy, verdict in (("fail", "failed"), ("inconclusive", "inconclusive"), ("pass", "passed")):
        res = run_module(
            health_gate,
            {
                "probes": [dict(nodata, on_no_data=policy)],
                "count": 1,
                "inconclusive_limit": 1,
                "fail_on_failure": False,
            },
            capsys,
        )
        assert res["verdict"] == verdict


def test_through_ansible_playbook_and_check_mode(target, tmp_path):
    """The packaged module path (AnsiballZ) works, also in check mode, and gates a weight change."""
    (tmp_path / "play.yml").write_text(
        textwrap.dedent(f"""\
        - hosts: localhost
          connection: local
          gather_facts: false
          tasks:
            - name: gate
              sophia.migrate.health_gate:
                probes: [{{name: k3s, type: http, url: "{target.url}", timeout: 1}}]
                interval: 0.1
                count: 5
                consecutive_successes: 2
              register: gate
            - name: the weight would change only after a passed gate
              ansible.builtin.assert:
                that: [gate.passed, gate.verdict == 'passed', gate.rounds == 2]
        """)
    )
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg")}
    python = os.path.join(ROOT, ".venv", "bin", "python")
    for extra in ([], ["--check"]):
        proc = subprocess.run(
            [
                os.path.join(ROOT, ".venv", "bin", "ansible-playbook"),
                "-i",
                "localhost,",
                "-e",
                f"ansible_python_interpreter={python}",
                str(tmp_path / "play.yml"),
                *extra,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout[-2000:]
