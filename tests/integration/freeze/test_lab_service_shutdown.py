"""lab_service.py (the stand-in of every Sophia service in the lab and staging) stops on SIGTERM as uvicorn does:
it refuses new connections at once, closes its idle keep-alive connections, finishes the request in flight (answered
with "Connection: close") and exits 0.

Real process, real Redis (the write goes there). The request in flight is a write held by the service's own write
freeze for 2 s (POST /admin/writes with a ttl): SIGTERM arrives while it waits. Before the graceful shutdown the
process died at once on SIGTERM (status -15) and the write in flight got a reset instead of its 201.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import redis

from support.servers import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LAB_SERVICE = os.path.join(ROOT, "roles", "lab", "files", "lab_service.py")


@pytest.fixture
def service(redis_server):
    port = free_port()
    env = {**os.environ, "SERVICE": "mcp-context", "SIDE": "compose", "PORT": str(port),
           "REDIS_URL": redis_server.url, "SHUTDOWN_TIMEOUT": "20"}
    proc = subprocess.Popen([sys.executable, LAB_SERVICE], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    wait_port(port)
    yield proc, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(5)


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> http.client.HTTPResponse:
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    return conn.getresponse()


def test_sigterm_finishes_the_request_in_flight_refuses_new_connections_and_exits_0(service, redis_server):
    proc, port = service
    idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)  # a keep-alive connection, idle at SIGTERM
    idle.request("GET", "/api/context/x")
    first = idle.getresponse()
    assert first.status == 200 and first.getheader("Connection") is None
    first.read()
    admin = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    frozen = _post(admin, "/admin/writes", {"frozen": True, "ttl": 2})
    assert frozen.status == 200, frozen.read()
    frozen.read()
    admin.close()

    answer: dict = {}

    def write():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            resp = _post(conn, "/api/context/items", {"id": "held-1", "value": "v"})
            answer.update(status=resp.status, connection=resp.getheader("Connection"), body=resp.read())
        except OSError as exc:
            answer.update(error=repr(exc))

    writer = threading.Thread(target=write)
    writer.start()
    time.sleep(0.5)  # the write is held by the freeze (1.5 s more)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # stops accepting at once
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    # the idle keep-alive connection was closed by the server (EOF, no answer)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        idle.request("GET", "/api/context/y")
        idle.getresponse()
    writer.join(20)
    assert answer.get("status") == 201, answer  # the write in flight finished
    assert answer["connection"] == "close", answer
    status = proc.wait(20)
    out = proc.stdout.read() if proc.stdout else ""
    assert status == 0, out
    assert time.monotonic() - sent >= 1.0  # it waited for the write, it did not just exit
    assert redis.Redis.from_url(redis_server.url).get("sophia:item:held-1") == b"v"  # and it was written
