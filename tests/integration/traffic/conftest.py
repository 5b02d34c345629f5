"""Fixtures for the traffic_shift tests (servers in traffic_support.py)."""

from __future__ import annotations

import os
import subprocess
import typing as t

import pytest
from traffic_support import Nginx, backends, edge, free_port, haproxy_available


@pytest.fixture
def stack(tmp_path) -> t.Iterator[dict[str, t.Any]]:
    if not haproxy_available():
        pytest.fail("haproxy, nginx, wrk and openssl are required (make setup installs them)")
    work = str(tmp_path)
    back, ports, health = backends(work)
    back.start()
    https_port, split_port = free_port(), free_port()
    front = edge(work, https_port, "/api/context", ports["compose"]).start()
    cfg, pid, sock = f"{work}/haproxy.cfg", f"{work}/haproxy.pid", f"{work}/admin.sock"
    reload = (f"sh -c 'if [ -s {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then kill -USR2 \"$(cat {pid})\"; "
              f"else haproxy -W -D -f {cfg} -p {pid}; fi'")
    variables = {
        "traffic_shift_routes": [{
            "name": "mcp-context", "host": "www.sophia-intel.ai", "path": "/api/context", "port": split_port,
            "compose": [f"127.0.0.1:{ports['compose']}"], "k3s": [f"127.0.0.1:{ports['k3s']}"],
        }],
        "traffic_shift_steps": [0, 5, 25, 50, 100],
        "traffic_shift_hold_seconds": 3,
        "traffic_shift_gate": {
            "probes": [{"name": "k3s", "type": "http", "url": f"http://127.0.0.1:{ports['k3s']}/health", "timeout": 2}],
            "interval": 0.5,
        },
        "traffic_shift_splitter_install": False,
        "traffic_shift_splitter_config": cfg,
        "traffic_shift_splitter_socket": sock,
        "traffic_shift_splitter_state_file": f"{work}/state/server-state",
        "traffic_shift_splitter_service": "",
        "traffic_shift_splitter_reload_command": reload,
        "traffic_shift_edge_config": front.conf,
        "traffic_shift_edge_validate_command": " ".join(front.command("-t", "-q")),
        "traffic_shift_edge_reload_command": " ".join(front.command("-s", "reload")),
        "traffic_shift_ledger_path": f"{work}/ledger.json",
    }
    yield {"work": work, "ports": ports, "health": health, "https": https_port, "split": split_port,
           "socket": sock, "vars": variables, "edge": front, "backends": back, "pid": pid}
    if os.path.exists(pid):
        subprocess.run(["sh", "-c", f"kill $(cat {pid})"], check=False, capture_output=True)
    front.stop()
    back.stop()


@pytest.fixture
def nginx_factory(tmp_path) -> t.Iterator[t.Callable[..., Nginx]]:
    made: list[Nginx] = []

    def make(name: str, body: str, ports: list[int]) -> Nginx:
        n = Nginx(str(tmp_path), name, body, ports).start()
        made.append(n)
        return n

    yield make
    for n in made:
        n.stop()
