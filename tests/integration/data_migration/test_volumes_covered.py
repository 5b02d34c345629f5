"""data_migration: every named volume of the Compose project is migrated, carried by a store, or deliberately left.

What is real: the Docker engine and its volumes, labelled the way Compose labels them
(com.docker.compose.project / .volume); discovery goes through sophia.migrate.compose_project_info, as on the
Compose host. The role's check runs through ansible-playbook (include_role tasks_from volumes_covered).
"""

from __future__ import annotations

import uuid

import docker
import pytest

from support.playbooks import run_play

PLAY = """- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: sophia.migrate.data_migration
        tasks_from: volumes_covered
    - ansible.builtin.debug:
        var: data_migration_volumes_accounted
"""


@pytest.fixture(scope="module")
def project():
    cli = docker.from_env()
    name = f"dmvol{uuid.uuid4().hex[:6]}"
    made = []
    try:
        for vol in ("redis-data", "qdrant-data", "research-cache", "prometheus-data"):
            made.append(cli.volumes.create(f"{name}_{vol}", labels={
                "com.docker.compose.project": name, "com.docker.compose.volume": vol}))
        # a volume made before Compose labelled the volume name: the project prefix is taken off
        made.append(cli.volumes.create(f"{name}_legacy-cache", labels={"com.docker.compose.project": name}))
        yield name
    finally:
        for vol in made:
            vol.remove(force=True)


def _vars(name, **extra):
    base = {
        "data_migration_compose_project": name,
        "data_migration_redis": {"volume": "redis-data"},
        "data_migration_qdrant": {"volume": "qdrant-data"},
        "data_migration_volumes": [{"name": "research-cache", "source": "/nonexistent", "target": "/nonexistent2"}],
        "data_migration_volumes_left": {"prometheus-data": "metrics history restarts on K3s",
                                        "legacy-cache": "rebuilt on demand"},
    }
    base.update(extra)
    return base


def test_every_volume_accounted_for_passes_and_reports_what_stays(tmp_path, project):
    proc = run_play(tmp_path, PLAY, _vars(project))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "metrics history restarts on K3s" in proc.stdout and "research-cache" in proc.stdout


def test_an_unlisted_volume_is_refused_by_name(tmp_path, project):
    proc = run_play(tmp_path, PLAY, _vars(project, data_migration_volumes=[]))
    assert proc.returncode != 0
    out = proc.stdout
    assert "nothing migrates" in out and "research-cache" in out and f"{project}_research-cache" in out
    assert "prometheus-data (" not in out  # the listed ones are not named as unaccounted
    assert "Module failed" not in out


def test_an_unlabelled_volume_falls_back_to_its_docker_name(tmp_path, project):
    proc = run_play(tmp_path, PLAY, _vars(project, data_migration_volumes_left={"prometheus-data": "history"}))
    assert proc.returncode != 0
    assert "legacy-cache (Docker volume " in proc.stdout


def test_a_left_volume_needs_a_reason(tmp_path, project):
    left = {"prometheus-data": "", "legacy-cache": "rebuilt"}
    proc = run_play(tmp_path, PLAY, _vars(project, data_migration_volumes_left=left))
    assert proc.returncode != 0
    assert "needs a reason for each volume" in proc.stdout and "prometheus-data" in proc.stdout
