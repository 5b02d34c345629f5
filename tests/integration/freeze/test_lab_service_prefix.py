"""lab_service.py with API_PREFIX (the staging lab) serves its API under exactly that prefix and answers 404 for any
other path, as a real service does, so a request the migration routes with the wrong path fails instead of being
acknowledged. Without it, mcp-context (served at its root behind a location that strips /api/context) accepted
/api/context/items as well, which hid a wrong path on the K3s side. Real process, real Redis.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

import pytest
import redis

from support.servers import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LAB_SERVICE = os.path.join(ROOT, "roles", "lab", "files", "lab_service.py")


@pytest.fixture
def start(redis_server):
    procs = []

    def run(prefix: str | None) -> int:
        port = free_port()
        env = {**os.environ, "SERVICE": "mcp-context", "SIDE": "k3s", "PORT": str(port), "REDIS_URL": redis_server.url}
        env.pop("API_PREFIX", None)
        if prefix is not None:
            env["API_PREFIX"] = prefix
        procs.append(subprocess.Popen([sys.executable, LAB_SERVICE], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        wait_port(port)
        return port

    yield run
    for proc in procs:
        proc.kill()
        proc.wait(5)


def _call(port: int, method: str, path: str, body: dict | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_a_service_at_its_root_refuses_the_prefixed_path(start, redis_server):
    port = start("")
    assert _call(port, "POST", "/api/context/items", {"id": "a", "value": "1"}) == 404
    assert _call(port, "GET", "/api/context/items/a") == 404
    assert _call(port, "POST", "/items", {"id": "b", "value": "2"}) == 201
    assert _call(port, "GET", "/items/b") == 200
    assert _call(port, "GET", "/health") == 200
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("sophia:item:a") is None and client.get("sophia:item:b") == b"2"


def test_a_service_under_a_prefix_refuses_other_paths(start):
    port = start("/api/research")
    assert _call(port, "POST", "/items", {"id": "c", "value": "3"}) == 404
    assert _call(port, "GET", "/api/other/thing") == 404
    assert _call(port, "GET", "/api/research/search?page=2") == 200
    assert _call(port, "POST", "/api/research/items", {"id": "d", "value": "4"}) == 201
    assert _call(port, "GET", "/api/research/health") == 200 and _call(port, "GET", "/health") == 200


def test_without_api_prefix_any_prefix_is_served(start):
    port = start(None)
    assert _call(port, "POST", "/api/context/items", {"id": "e", "value": "5"}) == 201
    assert _call(port, "POST", "/items", {"id": "f", "value": "6"}) == 201
