"""Fixtures for the write-freeze tests: the splitter (real HAProxy, configured by traffic_shift's template) in front
of two lab_service.py processes, the Compose side and the K3s side of one route."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import typing as t
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "traffic"))

from traffic_support import free_port, haproxy_available, wait_port

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import HaproxyError, RuntimeApi
from support.playbooks import ROOT

SVCCTL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "svcctl.py")
ROUTE = "www-api-context"
BACKEND = "route_www_api_context"

RENDER = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files:
    - {root}/roles/traffic_shift/defaults/main.yml
    - {work}/splitter-vars.json
  tasks:
    - name: the splitter's configuration, as traffic_shift renders it
      ansible.builtin.template:
        src: {root}/roles/traffic_shift/templates/haproxy.cfg.j2
        dest: {work}/haproxy.cfg
        mode: "0600"
"""


class Service:
    """One lab_service.py, started and stopped with svcctl.py as the freeze commands do."""

    def __init__(self, work: str, side: str, port: int):
        self.state = os.path.join(work, f"svc-{side}")
        os.makedirs(self.state, exist_ok=True)
        self.port = port
        with open(os.path.join(self.state, "env.json"), "w") as handle:
            json.dump({"SERVICE": "mcp-context", "SIDE": side, "PORT": str(port), "SHUTDOWN_TIMEOUT": "25"}, handle)

    def command(self, verb: str, *args: str) -> list[str]:
        return [sys.executable, SVCCTL, verb, self.state, *args]

    def start(self) -> Service:
        subprocess.run(self.command("start"), check=True)
        wait_port(self.port)
        return self

    def stop(self) -> None:
        subprocess.run(self.command("stop"), check=False, timeout=60)

    def pid(self) -> int:
        with open(os.path.join(self.state, "pid")) as handle:
            return int(handle.read())

    def requests(self) -> int:
        """sophia_requests_total of the running process (health checks included)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("sophia_requests_total{"):
                    return int(float(line.rsplit(" ", 1)[1]))
        raise AssertionError("no sophia_requests_total")


@pytest.fixture(scope="module")
def splitter_config(tmp_path_factory) -> dict[str, t.Any]:
    """The splitter's configuration rendered once for the module (ports chosen here, sockets in the test's dir)."""
    if not haproxy_available():
        pytest.fail("haproxy, nginx, wrk and openssl are required (make setup installs them)")
    work = str(tmp_path_factory.mktemp("splitter"))
    ports = {"compose": free_port(), "k3s": free_port(), "route": free_port()}
    sock = f"{work}/admin.sock"
    route = {"name": ROUTE, "host": "www.sophia-intel.ai", "path": "/api/context", "port": ports["route"],
             "health_path": "/api/context/health", "compose": [f"127.0.0.1:{ports['compose']}"],
             "k3s": [f"127.0.0.1:{ports['k3s']}"]}
    with open(f"{work}/splitter-vars.json", "w") as handle:
        json.dump({"traffic_shift_routes": [route], "traffic_shift_splitter_socket": sock,
                   "traffic_shift_splitter_state_file": f"{work}/server-state"}, handle)
    with open(f"{work}/render.yml", "w") as handle:
        handle.write(RENDER.format(root=ROOT, work=work))
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                          f"{work}/render.yml", "-e", f"ansible_python_interpreter={sys.executable}"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout[-3000:]
    return {"work": work, "ports": ports, "socket": sock, "route": route, "config": f"{work}/haproxy.cfg"}


@pytest.fixture
def splitter(tmp_path, splitter_config) -> t.Iterator[dict[str, t.Any]]:
    """Both services and HAProxy started anew for each test."""
    work, ports, sock = str(tmp_path), splitter_config["ports"], splitter_config["socket"]
    compose = Service(work, "compose", ports["compose"]).start()
    k3s = Service(work, "k3s", ports["k3s"]).start()
    if os.path.exists(sock):
        os.unlink(sock)
    proc = subprocess.Popen(["haproxy", "-db", "-f", splitter_config["config"]], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    api = RuntimeApi(sock, 2)
    deadline = time.monotonic() + 15
    while True:  # up, and the Compose server UP
        assert proc.poll() is None and time.monotonic() < deadline, "haproxy did not start with the compose side UP"
        try:
            if api.servers(BACKEND)["compose1"]["operational"] == "RUNNING":
                break
        except HaproxyError:
            pass
        time.sleep(0.1)
    wait_port(ports["route"])
    yield {"work": work, "port": ports["route"], "socket": sock, "api": api, "route": splitter_config["route"],
           "compose": compose, "k3s": k3s}
    proc.terminate()
    proc.wait(10)
    for service in (compose, k3s):
        service.stop()
