"""data_migration endpoint.forward: Compose clients repointed to a K3s store behind a NodePort, on real Docker.

What is real: the Docker engine (a user network, its embedded DNS and network aliases, a port published on the
host), socat as the forwarder and redis-server / redis-cli. The role's endpoint tasks run through
ansible-playbook (community.docker.docker_container makes the forwarder). The "K3s" Redis is a container whose
port is published on the host (standing for the NodePort); the forwarder image is a local build
(local/dmfwd-socat:test, Debian + socat) standing in for the production default (alpine/socat), which cannot be
pulled here. The role runs socat with an explicit entrypoint and arguments, so both images behave the same.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import docker
import pytest

from support.playbooks import changed, role_play, run_play

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.dirname(sys.executable)
IMAGE = "local/dmfwd-socat:test"
BASE = "local/debian-systemd:bookworm"
REDIS = ["redis-server", "--port", "6379", "--protected-mode", "no", "--save", "", "--appendonly", "no"]


@pytest.fixture(scope="session")
def image():
    cli = docker.from_env()
    try:
        cli.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        try:
            cli.images.get(BASE)
        except docker.errors.ImageNotFound:  # a missing base image is a broken set-up, not a reason to skip
            pytest.fail(f"{BASE} is not built: run make setup")
        dockerfile = (
            f"FROM {BASE}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends socat redis-server redis-tools"
            " && rm -rf /var/lib/apt/lists/*\n"
        )
        subprocess.run(["docker", "build", "-q", "-t", IMAGE, "-"], input=dockerfile, text=True, check=True)
    return IMAGE


@pytest.fixture(scope="module")
def lab(image):
    cli = docker.from_env()
    prefix = f"dmfwd-{uuid.uuid4().hex[:6]}"
    net = cli.networks.create(prefix, driver="bridge")
    made = []
    try:
        gateway = cli.networks.get(net.id).attrs["IPAM"]["Config"][0]["Gateway"]

        def run(name, command, **kw):
            c = cli.containers.run(image, command, name=f"{prefix}-{name}", detach=True, stop_signal="SIGKILL", **kw)
            made.append(c)
            return c

        # the Compose Redis, holding the alias clients use
        source = run("src", REDIS, network=net.name)
        net.disconnect(source)
        net.connect(source, aliases=["store", "redis-extra"])
        # the "K3s" Redis: not on the clients' network, reached only through a published port (the NodePort)
        k3s = run("k3s", REDIS, ports={"6379/tcp": (gateway, None)})
        client = run("client", ["sleep", "infinity"], network=net.name)
        for _attempt in range(50):
            k3s.reload()
            ports = k3s.attrs["NetworkSettings"]["Ports"].get("6379/tcp")
            if ports and k3s.status == "running":
                break
            time.sleep(0.2)
        node_port = int(ports[0]["HostPort"])
        with socket.socket() as s:  # a port on the gateway address nothing listens on
            s.bind((gateway, 0))
            closed_port = s.getsockname()[1]
        yield {
            "cli": cli,
            "prefix": prefix,
            "network": net.name,
            "gateway": gateway,
            "node_port": node_port,
            "closed_port": closed_port,
            "source": source.name,
            "k3s": k3s.name,
            "client": client.name,
            "forwarder": f"{prefix}-fwd",
        }
    finally:
        for name in [f"{prefix}-fwd"] + [c.name for c in made]:
            with contextlib.suppress(docker.errors.NotFound):
                cli.containers.get(name).remove(force=True)
        net.remove()


def endpoint(lab, **forward):
    return {
        "network": lab["network"],
        "alias": "store",
        "source_container": lab["source"],
        "target_container": lab["forwarder"],
        "forward": {"host": lab["gateway"], "port": lab["node_port"], "image": IMAGE, "listen_port": 6379, **forward},
    }


def play(tmp_path, variables, check=False, role_main=False):
    if role_main:
        body = role_play("data_migration")
    else:
        body = textwrap.dedent("""\
            - hosts: localhost
              connection: local
              gather_facts: false
              tasks:
                - name: Endpoint tasks of data_migration
                  ansible.builtin.include_role:
                    name: sophia.migrate.data_migration
                    tasks_from: endpoint
            """)
    return run_play(tmp_path, body, {"data_migration_forward_retries": 2, **variables}, check=check)


def aliases(lab, name):
    try:
        c = lab["cli"].containers.get(name)
    except docker.errors.NotFound:
        return None
    return c.attrs["NetworkSettings"]["Networks"].get(lab["network"], {}).get("Aliases") or []


def redis(lab, container, *args, host="127.0.0.1"):
    out = lab["cli"].containers.get(container).exec_run(["redis-cli", "-h", host, *args])
    return out.output.decode().strip()


def move(lab, to="target", **forward):
    return {"_data_migration_endpoint": endpoint(lab, **forward), "_data_migration_endpoint_to": to}


# The tests below run in order on one lab: check mode, refusals, the move, idempotence, the way back.


def test_check_mode_reports_the_forwarder_and_the_move_but_makes_nothing(tmp_path, lab):
    res = play(tmp_path, move(lab), check=True)
    assert res.returncode == 0, res.stdout[-3000:]
    assert changed(res.stdout) >= 1 and f"no alias yet, towards {lab['gateway']}:{lab['node_port']}" in res.stdout
    assert aliases(lab, lab["forwarder"]) is None  # not made
    assert "store" in aliases(lab, lab["source"])


def test_preflight_names_a_bad_forward_key_before_anything_is_written(tmp_path, lab):
    ep = endpoint(lab)
    del ep["forward"]["port"]
    ep["forward"]["listen_port"] = 70000
    ledger = tmp_path / "ledger.json"
    res = play(
        tmp_path,
        {
            "data_migration_ledger_path": str(ledger),
            "data_migration_redis": {"source": {"port": 1}, "target": {"port": 2}, "endpoint": ep},
        },
        role_main=True,
    )
    assert res.returncode != 0
    assert "data_migration_redis.endpoint.forward.port is required" in res.stdout
    assert "data_migration_redis.endpoint.forward.listen_port must be a port number 1-65535, not 70000" in res.stdout
    assert not ledger.exists() and aliases(lab, lab["forwarder"]) is None


def test_an_existing_container_not_made_by_the_role_is_not_replaced(tmp_path, lab):
    variables = move(lab)
    variables["_data_migration_endpoint"]["target_container"] = lab["client"]
    res = play(tmp_path, variables)
    assert res.returncode != 0 and "is not a forwarder made by sophia.migrate" in res.stdout
    c = lab["cli"].containers.get(lab["client"])
    assert c.status == "running" and c.attrs["Config"]["Cmd"] == ["sleep", "infinity"]


def test_an_unreachable_forward_target_fails_naming_it_and_moves_nothing(tmp_path, lab):
    res = play(tmp_path, move(lab, port=lab["closed_port"]))
    assert res.returncode != 0
    assert f"cannot reach {lab['gateway']}:{lab['closed_port']}" in res.stdout
    assert "The alias store was not moved" in res.stdout
    assert "store" in aliases(lab, lab["source"]) and "store" not in aliases(lab, lab["forwarder"])


def test_the_alias_moves_to_the_forwarder_and_clients_reach_the_k3s_redis(tmp_path, lab):
    redis(lab, lab["source"], "SET", "before", "compose")
    res = play(tmp_path, move(lab))
    assert res.returncode == 0, res.stdout[-3000:]
    assert "store" in aliases(lab, lab["forwarder"])
    assert "store" not in aliases(lab, lab["source"]) and "redis-extra" in aliases(lab, lab["source"])  # others stay
    fwd = lab["cli"].containers.get(lab["forwarder"])
    assert fwd.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert fwd.attrs["Config"]["Labels"]["sophia.migrate.forwarder"] == "store"

    # a client on the Compose network writes by the name it always used: the write lands in the K3s Redis
    assert redis(lab, lab["client"], "SET", "written-by-client", "via-forwarder", host="store") == "OK"
    assert redis(lab, lab["client"], "GET", "before", host="store") == ""  # not the Compose Redis
    assert redis(lab, lab["k3s"], "GET", "written-by-client") == "via-forwarder"
    assert redis(lab, lab["source"], "GET", "written-by-client") == ""


def test_a_second_run_and_check_mode_change_nothing(tmp_path, lab):
    res = play(tmp_path, move(lab))
    assert res.returncode == 0 and changed(res.stdout) == 0, res.stdout[-3000:]
    res = play(tmp_path, move(lab), check=True)
    assert res.returncode == 0 and changed(res.stdout) == 0, res.stdout[-3000:]


def test_rollback_moves_the_alias_back_and_leaves_the_forwarder(tmp_path, lab):
    # the forward target need not answer for the way back
    res = play(tmp_path, move(lab, "source", port=lab["closed_port"]))
    assert res.returncode == 0, res.stdout[-3000:]
    assert "store" in aliases(lab, lab["source"]) and "store" not in aliases(lab, lab["forwarder"])
    assert lab["cli"].containers.get(lab["forwarder"]).status == "running"
    assert redis(lab, lab["client"], "GET", "before", host="store") == "compose"
    res = play(tmp_path, move(lab, "source"))
    assert res.returncode == 0 and changed(res.stdout) == 0, res.stdout[-3000:]
