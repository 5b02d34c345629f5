"""`docker start` / `docker stop` for a lab_service.py process, as the freeze commands of the tests run them.

    svcctl.py start <state-dir> [N]
                                  starts lab_service.py in the background (environment from <state-dir>/env.json),
                                  writes its pid to <state-dir>/pid and returns at once (docker start does not wait
                                  for the service to be ready either). With N > 0, the port first behaves for N s as
                                  a port Docker publishes with docker-proxy (its default) while the container's
                                  service is not listening yet: every connection is accepted, then closed.
    svcctl.py stop <state-dir>    sends SIGTERM and returns once the process is gone (docker stop --time 30: SIGKILL
                                  after 30 s)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

LAB_SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "roles", "lab", "files",
                           "lab_service.py")


def _gone(pid: int) -> bool:
    """The process exited (a zombie waiting for its parent counts as gone: it holds no socket)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def docker_proxy_window(port: int, seconds: float) -> None:
    """Accept and close every connection on ``port`` for ``seconds``, then let the service take the port."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    listener.settimeout(0.05)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn, _addr = listener.accept()
        except TimeoutError:
            continue
        conn.close()
    listener.close()


def start(state: str, proxy_seconds: str = "0") -> None:
    with open(os.path.join(state, "env.json")) as handle:
        env = {**os.environ, **json.load(handle)}
    argv = [sys.executable, LAB_SERVICE]
    if float(proxy_seconds) > 0:  # the same process, so the pid file stays right
        argv = [sys.executable, os.path.abspath(__file__), "serve-after-proxy", state, proxy_seconds]
    with open(os.path.join(state, "service.log"), "a") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(state, "pid"), "w") as handle:
        handle.write(str(proc.pid))


def stop(state: str, grace: float = 30.0) -> None:
    with open(os.path.join(state, "pid")) as handle:
        pid = int(handle.read())
    if _gone(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def serve_after_proxy(state: str, proxy_seconds: str) -> None:
    docker_proxy_window(int(os.environ["PORT"]), float(proxy_seconds))
    os.execv(sys.executable, [sys.executable, LAB_SERVICE])  # noqa: S606 - the service replaces the window


if __name__ == "__main__":
    {"start": start, "stop": stop, "serve-after-proxy": serve_after_proxy}[sys.argv[1]](*sys.argv[2:])
