"""The lab's claim (roles/lab/tasks/claim.yml) on the real Docker engine: a lab this state directory did not
make (no id, or another one) is removed with its volumes, the earlier state directory is kept aside, and
the lab this state directory made is left alone. Names are unique per test (their own Compose project and
K3s prefix), so the lab of the rehearsal is never touched.

Real: Docker engine, containers and volumes. Nothing is a stand-in.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import uuid

import docker
import pytest

from support.playbooks import run_play

IMAGE = "local/debian-systemd:bookworm"
PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: sophia.migrate.lab
        tasks_from: claim.yml
"""


@pytest.fixture
def lab(tmp_path):
    cli = docker.from_env()
    if not cli.images.list(name=IMAGE):
        pytest.fail(f"{IMAGE} is missing: run make setup")
    name = f"claimtest{uuid.uuid4().hex[:8]}"
    made = {"containers": [], "volumes": []}

    def container(cname: str, labels: dict[str, str], volume: str | None = None):
        if volume:
            made["volumes"].append(cli.volumes.create(volume, labels=labels if "_" in volume else {}).name)
        box = cli.containers.run(IMAGE, ["sleep", "infinity"], name=cname, labels=labels, detach=True,
                                 volumes={volume: {"bind": "/data", "mode": "rw"}} if volume else None)
        made["containers"].append(box.name)
        return box

    state = tmp_path / "lab-state"
    variables = {"lab_state_dir": str(state), "lab_compose_project": name, "lab_k3s_prefix": f"{name}-k3s",
                 "lab_node_name": f"{name}-node", "lab_image": IMAGE}  # the test's containers play lab containers
    yield name, state, variables, container, cli
    for cname in made["containers"]:
        with contextlib.suppress(docker.errors.NotFound):
            cli.containers.get(cname).remove(force=True)
    for vname in made["volumes"]:
        with contextlib.suppress(docker.errors.NotFound):
            cli.volumes.get(vname).remove(force=True)


def exists(cli, kind: str, name: str) -> bool:
    try:
        getattr(cli, kind).get(name)
        return True
    except docker.errors.NotFound:
        return False


def test_another_checkouts_lab_is_replaced_and_its_state_kept_aside(lab, tmp_path):
    name, state, variables, container, cli = lab
    compose = {"com.docker.compose.project": name}
    container(f"{name}_redis_1", compose, volume=f"{name}_redis-data")
    container(f"{name}-k3s-redis", {"org.sophia.lab.side": "k3s", "org.sophia.lab.id": "0" * 32},
              volume=f"{name}-k3s-redis-data")
    container(f"{name}-node", {"org.sophia.lab.side": "node"})
    # this state directory describes an earlier lab of its own, which the one above replaced
    state.mkdir()
    (state / "ledger.json").write_text(json.dumps({"format": 1, "entries": [{"step": "redis/cutover"}]}))

    res = run_play(tmp_path, PLAY, variables)
    assert res.returncode == 0, res.stdout[-3000:]
    for cname in (f"{name}_redis_1", f"{name}-k3s-redis", f"{name}-node"):
        assert not exists(cli, "containers", cname), cname
    for vname in (f"{name}_redis-data", f"{name}-k3s-redis-data"):
        assert not exists(cli, "volumes", vname), vname
    aside = glob.glob(f"{state}.replaced-*")
    assert len(aside) == 1
    with open(os.path.join(aside[0], "ledger.json")) as handle:
        assert "redis/cutover" in handle.read()
    assert "Replaced a lab this state directory did not make" in res.stdout and aside[0] in res.stdout
    lab_id = (state / "lab-id").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{32}", lab_id) and lab_id != "0" * 32
    assert not (state / "ledger.json").exists()


def test_the_lab_this_state_directory_made_is_left_alone(lab, tmp_path):
    name, state, variables, container, cli = lab
    state.mkdir()
    (state / "lab-id").write_text("ab" * 16 + "\n")
    (state / "ledger.json").write_text(json.dumps({"format": 1, "entries": []}))
    container(f"{name}_redis_1", {"com.docker.compose.project": name, "org.sophia.lab.id": "ab" * 16},
              volume=f"{name}_redis-data")
    container(f"{name}-k3s-redis", {"org.sophia.lab.side": "k3s", "org.sophia.lab.id": "ab" * 16})

    res = run_play(tmp_path, PLAY, variables)
    assert res.returncode == 0, res.stdout[-3000:]
    assert exists(cli, "containers", f"{name}_redis_1") and exists(cli, "containers", f"{name}-k3s-redis")
    assert exists(cli, "volumes", f"{name}_redis-data")
    assert (state / "lab-id").read_text().strip() == "ab" * 16 and (state / "ledger.json").exists()
    assert not glob.glob(f"{state}.replaced-*")
    assert "Replaced a lab" not in res.stdout


def test_told_not_to_replace_it_stops_and_names_the_other_lab(lab, tmp_path):
    name, _state, variables, container, cli = lab
    container(f"{name}_redis_1", {"com.docker.compose.project": name}, volume=f"{name}_redis-data")

    res = run_play(tmp_path, PLAY, {**variables, "lab_replace_foreign": False})
    assert res.returncode != 0
    assert "did not make" in res.stdout and f"{name}_redis_1" in res.stdout, res.stdout[-3000:]
    assert exists(cli, "containers", f"{name}_redis_1") and exists(cli, "volumes", f"{name}_redis-data")


def test_a_compose_project_that_is_not_a_lab_is_never_touched(lab, tmp_path):
    """On a machine that runs the real stack under the lab's project name, the claim removes nothing."""
    name, _state, variables, container, cli = lab
    container(f"{name}_redis_1", {"com.docker.compose.project": name}, volume=f"{name}_redis-data")

    res = run_play(tmp_path, PLAY, {**variables, "lab_image": "local/sophia-lab:bookworm"})
    assert res.returncode != 0
    assert "is not a lab" in res.stdout and f"{name}_redis_1" in res.stdout, res.stdout[-3000:]
    assert exists(cli, "containers", f"{name}_redis_1") and exists(cli, "volumes", f"{name}_redis-data")
