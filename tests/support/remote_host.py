"""A second inventory host for integration tests: a throwaway systemd container reached through community.docker.docker.

Production runs the Compose-host roles on a remote host while the migration ledger stays on the controller. A test
that runs everything on localhost cannot tell the two apart; this host has its own filesystem, so a file a module
writes there is not on the controller. Its Python is this venv's (mounted read-only at the same path, with the
interpreter it was made from), so the modules find the same libraries as on the controller. Extra read-only or
read-write mounts (the Docker socket, the Docker volumes) make the controller's Docker engine its engine.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import typing as t
import uuid

import docker

IMAGE = "local/debian-systemd:bookworm"


def _python_mounts() -> tuple[str, dict[str, dict[str, str]]]:
    """This venv's python (real path) and the read-only mounts it needs inside a container."""
    venv = os.path.realpath(sys.prefix)
    base = os.path.realpath(sys.base_prefix)
    python = os.path.join(venv, "bin", "python")
    return python, {venv: {"bind": venv, "mode": "ro"}, base: {"bind": base, "mode": "ro"}}


@contextlib.contextmanager
def remote_host(prefix: str = "ledgertest", mounts: dict[str, dict[str, str]] | None = None
                ) -> t.Iterator[dict[str, t.Any]]:
    """Start ``<prefix>-<random>`` (systemd as PID 1, as the lab's node), yield its name and python, remove it."""
    cli = docker.from_env()
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    python, volumes = _python_mounts()
    volumes.update({"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}, **(mounts or {})})
    container = cli.containers.run(
        IMAGE, ["/lib/systemd/systemd"], name=name, hostname=name, detach=True, stop_signal="SIGKILL",
        cap_add=["SYS_ADMIN", "NET_ADMIN"], security_opt=["seccomp=unconfined"],
        tmpfs={"/run": "", "/run/lock": ""}, cgroupns="host", volumes=volumes,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            code, _out = container.exec_run([python, "-c", "import docker, requests"])
            if code == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {python} cannot import docker and requests")
            time.sleep(0.5)
        yield {"name": name, "python": python, "container": container}
    finally:
        container.remove(force=True)


def run_in(host: dict[str, t.Any], argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` in the host; return its exit code and output."""
    code, out = host["container"].exec_run(argv)
    return code, out.decode(errors="replace")


def inventory(path: str, host: dict[str, t.Any], name: str = "compose_host") -> str:
    """Write an inventory with the controller (localhost, local) and ``name`` (the container); return its path."""
    doc = {"all": {"hosts": {
        "localhost": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        name: {"ansible_connection": "community.docker.docker", "ansible_host": host["name"],
               "ansible_python_interpreter": host["python"]},
    }}}
    with open(path, "w") as handle:
        json.dump(doc, handle)  # JSON is YAML
    return path


def ansible_playbook(argv: list[str], root: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(root, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), *argv], cwd=root,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
