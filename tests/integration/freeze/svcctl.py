"""`docker start` / `docker stop` for a lab_service.py process, as the freeze commands of the tests run them.

    svcctl.py start <state-dir>   starts lab_service.py in the background (environment from <state-dir>/env.json),
                                  writes its pid to <state-dir>/pid and returns at once (docker start does not wait
                                  for the service to be ready either)
    svcctl.py stop <state-dir>    sends SIGTERM and returns once the process is gone (docker stop --time 30: SIGKILL
                                  after 30 s)
"""

from __future__ import annotations

import json
import os
import signal
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


def start(state: str) -> None:
    with open(os.path.join(state, "env.json")) as handle:
        env = {**os.environ, **json.load(handle)}
    with open(os.path.join(state, "service.log"), "a") as log:
        proc = subprocess.Popen([sys.executable, LAB_SERVICE], env=env, stdout=log, stderr=subprocess.STDOUT,
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


if __name__ == "__main__":
    {"start": start, "stop": stop}[sys.argv[1]](sys.argv[2])
