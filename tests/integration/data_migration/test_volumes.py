"""data_migration for file volumes, run through ansible-playbook with a real writer container.

A container (the local Debian image) appends a numbered line to a file in the source volume every
50 ms while the role backs up, copies, verifies, then freezes the writer, catches up and cuts over.
Afterwards every line the writer wrote is in the target: nothing written before the freeze is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

import docker
import pytest

from support.playbooks import role_play, run_play

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


@pytest.fixture
def volumes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "models" / "v1").mkdir(parents=True)
    dst.mkdir()
    (src / "models" / "v1" / "embeddings.bin").write_bytes(os.urandom(2_000_000))
    (src / "README").write_text("sophia embeddings\n")
    os.chmod(src / "README", 0o640)
    os.symlink("models/v1/embeddings.bin", src / "current")
    cli = docker.from_env()
    name = f"sophia-dm-writer-{uuid.uuid4().hex[:6]}"
    writer = cli.containers.run(
        "local/debian-systemd:bookworm",
        [
            "sh",
            "-c",
            "i=$(cat /data/writes.log 2>/dev/null | wc -l);"
            " while true; do i=$((i+1)); echo $i >> /data/writes.log; sleep 0.05; done",
        ],
        name=name,
        detach=True,
        volumes={str(src): {"bind": "/data", "mode": "rw"}},
        stop_signal="SIGKILL",
    )
    time.sleep(0.5)
    yield {"src": src, "dst": dst, "writer": name, "cli": cli}
    writer.remove(force=True)


def run(tmp_path, volumes, extra=None, action="migrate"):
    variables = {
        "data_migration_action": action,
        "data_migration_ledger_path": str(tmp_path / "ledger.json"),
        "data_migration_backup_dir": str(tmp_path / "backups"),
        "data_migration_report_dir": str(tmp_path / "reports"),
        "data_migration_run_id": "run1",
        "data_migration_volumes": [
            {"name": "embeddings", "source": str(volumes["src"]), "target": str(volumes["dst"])}
        ],
        "data_migration_freeze_containers": [volumes["writer"]],
        "data_migration_disk_reserve_bytes": 0,
        **(extra or {}),
    }
    return run_play(tmp_path, role_play("data_migration"), variables)


def entries(tmp_path):
    return json.loads((tmp_path / "ledger.json").read_text())["entries"]


def test_migrate_interrupted_resumed_and_rolled_back(tmp_path, volumes):
    # 1) interrupted at the cutover: a freeze limit no catch-up can meet
    res = run(tmp_path, volumes, {"data_migration_freeze_max_seconds": 0})
    assert res.returncode != 0 and "not cut over" in res.stdout
    done = {e["step"] for e in entries(tmp_path) if e["status"] == "done"}
    assert done == {"volume/embeddings/backup", "volume/embeddings/copy", "volume/embeddings/verify"}
    seqs = {e["step"]: e["seq"] for e in entries(tmp_path)}

    # 2) re-run: finishes without redoing the finished steps
    volumes["cli"].containers.get(volumes["writer"]).start()
    time.sleep(0.5)
    res = run(tmp_path, volumes)
    assert res.returncode == 0, res.stdout[-3000:]
    steps = [e["step"] for e in entries(tmp_path)]
    assert steps.count("volume/embeddings/backup") == 1 and steps.count("volume/embeddings/copy") == 1
    assert {e["step"]: e["seq"] for e in entries(tmp_path) if e["step"] in seqs} == seqs
    cutover = next(e for e in entries(tmp_path) if e["step"] == "volume/embeddings/cutover")
    assert cutover["status"] == "done" and cutover["data"]["verified"] is True
    assert 0 < cutover["data"]["freeze_seconds"] < 60
    assert volumes["cli"].containers.get(volumes["writer"]).status == "exited"  # writers stay frozen after the cutover

    # zero lost writes: every line the writer wrote is in the target, in order
    lines = (volumes["dst"] / "writes.log").read_text().split()
    assert lines == [str(i) for i in range(1, len(lines) + 1)] and len(lines) > 10
    assert (volumes["dst"] / "writes.log").read_bytes() == (volumes["src"] / "writes.log").read_bytes()
    assert os.readlink(volumes["dst"] / "current") == "models/v1/embeddings.bin"
    assert oct(os.stat(volumes["dst"] / "README").st_mode & 0o777) == "0o640"

    # the report lists the backup with path, size and sha256 that match the file
    report = json.loads((tmp_path / "reports" / "run1" / "data_migration.json").read_text())
    art = report["artifacts"][0]
    with open(art["path"], "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == art["sha256"]
    assert art["size"] == os.path.getsize(art["path"])

    # a second run changes nothing
    res = run(tmp_path, volumes)
    assert res.returncode == 0 and " changed=0 " in res.stdout.replace("changed=0", " changed=0 "), res.stdout[-2000:]

    # 3) rollback: what the new side wrote comes back, verified, and the writer runs again
    (volumes["dst"] / "written-on-k3s.txt").write_text("new side\n")
    res = run(tmp_path, volumes, action="rollback")
    assert res.returncode == 0, res.stdout[-3000:]
    assert (volumes["src"] / "written-on-k3s.txt").read_text() == "new side\n"
    assert volumes["cli"].containers.get(volumes["writer"]).status == "running"
    last = [e for e in entries(tmp_path) if e["step"] == "volume/embeddings/cutover"][-1]
    assert last["status"] == "rolled_back"


def test_preflight_refuses_when_backups_do_not_fit(tmp_path, volumes):
    res = run(tmp_path, volumes, {"data_migration_disk_reserve_bytes": 10**18})
    assert res.returncode != 0 and "the backups need about" in res.stdout and "are free in" in res.stdout
    assert not (tmp_path / "ledger.json").exists() or entries(tmp_path) == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"data_migration_qdrant": {"source": {"url": "http://127.0.0.1:1"}, "target": {"url": "http://127.0.0.1:1"}}},
         "a non-empty list of collections"),
        ({"data_migration_redis": {"source": {"host": "127.0.0.1"}}}, "data_migration_redis needs source and target"),
        ({"data_migration_redis": {"source": {}, "target": {}, "endpoint": {"network": "n", "aliass": "x"}}},
         "data_migration_redis.endpoint.aliass is not a known key"),
    ],
)
def test_preflight_names_a_malformed_redis_or_qdrant_option_and_changes_nothing(tmp_path, volumes, extra, message):
    res = run(tmp_path, volumes, extra)
    assert res.returncode != 0 and message in res.stdout, res.stdout[-3000:]
    assert not (tmp_path / "ledger.json").exists() and not (tmp_path / "backups").exists()


def test_preflight_refuses_an_unreachable_redis_before_any_backup(tmp_path, volumes):
    port = 1  # nothing listens there
    endpoint = {"host": "127.0.0.1", "port": port}
    res = run(tmp_path, volumes, {"data_migration_redis": {"source": endpoint, "target": dict(endpoint)}})
    assert res.returncode != 0 and "Redis source and target answer" in res.stdout, res.stdout[-3000:]
    assert "127.0.0.1:1" in res.stdout
    assert not (tmp_path / "ledger.json").exists() or entries(tmp_path) == []
    assert not list(tmp_path.glob("backups/redis-*"))
