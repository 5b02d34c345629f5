"""data_migration for file volumes, run through ansible-playbook with a real writer container.

A container (the local Debian image) appends a numbered line to a file in the source volume every
50 ms while the role backs up, copies, verifies, then freezes the writer, catches up and cuts over.
Afterwards every line the writer wrote is in the target: nothing written before the freeze is lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
import uuid

import docker
import pytest

from support.playbooks import role_play, run_play
from support.remote_host import ansible_playbook, inventory, remote_host, run_in

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


@pytest.fixture
def remote_volume_host():
    """A volume host that is a different inventory host than the controller, with a filesystem of its own.

    A throwaway systemd container with this machine's rsync (Debian bookworm, like the image; the image lacks its
    libpopt) and a directory that stands for the volume.
    """
    with remote_host("ledgertest") as host:
        ldd = subprocess.run(["ldd", "/usr/bin/rsync"], capture_output=True, text=True, check=True).stdout
        libs = [line.split("=>")[1].split()[0] for line in ldd.splitlines() if "libpopt" in line]
        for src, dest in [("/usr/bin/rsync", "/usr/local/bin/rsync")] + [(lib, "/usr/local/lib/") for lib in libs]:
            subprocess.run(["docker", "cp", "-L", src, f"{host['name']}:{dest}"], check=True, capture_output=True)
        assert run_in(host, ["ldconfig"])[0] == 0 and run_in(host, ["rsync", "--version"])[0] == 0
        fill = ("mkdir -p /srv/vol/src/models /srv/vol/dst && head -c 200000 /dev/urandom > /srv/vol/src/models/emb.bin"
                " && echo sophia > /srv/vol/src/README")
        assert run_in(host, ["sh", "-c", fill])[0] == 0
        yield host


def test_the_backup_is_recorded_in_the_controller_ledger_when_the_volume_host_is_remote(tmp_path, remote_volume_host):
    """Production's shape: the role runs on the Compose host, the ledger stays on the controller."""
    host = remote_volume_host
    backup_dir = f"/var/backups/{host['name']}"  # only on the volume host
    variables = {
        "data_migration_ledger_path": str(tmp_path / "ledger.json"),
        "data_migration_backup_dir": backup_dir,
        "data_migration_report_dir": str(tmp_path / "reports"),
        "data_migration_run_id": "run1",
        "data_migration_volumes": [{"name": "embeddings", "source": "/srv/vol/src", "target": "/srv/vol/dst"}],
        "data_migration_disk_reserve_bytes": 0,
    }
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    (tmp_path / "play.yml").write_text("- hosts: compose_host\n  gather_facts: false\n  roles:\n"
                                       "    - sophia.migrate.data_migration\n")
    argv = ["-i", inventory(str(tmp_path / "inventory.json"), host), str(tmp_path / "play.yml"),
            "-e", f"@{tmp_path / 'vars.json'}"]
    res = ansible_playbook(argv, ROOT)
    assert res.returncode == 0, res.stdout[-4000:]

    backups = [e for e in entries(tmp_path) if e["step"] == "volume/embeddings/backup"]
    assert [e["status"] for e in backups] == ["done"] and backups[0]["phase"] == "phase2b"
    record = backups[0]["data"]
    assert record["path"] == f"{backup_dir}/volume-embeddings.tar.gz" and record["source"] == "/srv/vol/src"
    assert not os.path.exists(backup_dir)  # a different filesystem: the archive is not on the controller
    code, out = run_in(host, ["sha256sum", record["path"]])
    assert code == 0 and out.split()[0] == record["sha256"]
    code, out = run_in(host, ["find", "/", "-xdev", "-name", "ledger.json*"])
    assert code == 0 and out.strip() == "", f"a ledger was written on the volume host: {out}"
    report = json.loads((tmp_path / "reports" / "run1" / "data_migration.json").read_text())
    assert [a["path"] for a in report["artifacts"]] == [record["path"]]
    assert {e["step"] for e in entries(tmp_path) if e["status"] == "done"} == {
        f"volume/embeddings/{s}" for s in ("backup", "copy", "verify", "cutover")}

    # a second run reuses the recorded backup (read from the controller's ledger) and changes nothing
    (tmp_path / "vars.json").write_text(json.dumps({**variables, "data_migration_run_id": "run2"}))
    res = ansible_playbook(argv, ROOT)
    assert res.returncode == 0, res.stdout[-4000:]
    assert re.search(r"^compose_host\s*:\s*ok=\d+\s+changed=0\s", res.stdout, re.M), res.stdout[-3000:]
    assert [e for e in entries(tmp_path) if e["step"] == "volume/embeddings/backup"] == backups
    code, out = run_in(host, ["sha256sum", record["path"]])
    assert out.split()[0] == record["sha256"]


def test_a_volume_with_write_freeze_is_caught_up_under_the_write_freeze(tmp_path, volumes):
    """write_freeze: true runs the catch-up under data_migration_write_freeze (here `docker stop`/`docker start` of the
    writer, as production's freeze of mcp-research does), and the writes resume after the cutover."""
    volume = {"name": "embeddings", "source": str(volumes["src"]), "target": str(volumes["dst"]), "write_freeze": True}
    refused = run(tmp_path, volumes, {"data_migration_volumes": [volume], "data_migration_freeze_containers": []})
    assert refused.returncode != 0 and "embeddings set write_freeze, but" in refused.stdout, refused.stdout[-3000:]
    assert not (tmp_path / "ledger.json").exists() or entries(tmp_path) == []  # nothing was changed

    freeze = {"start": ["docker", "stop", "--time", "1", volumes["writer"]],
              "end": ["docker", "start", volumes["writer"]]}
    res = run(tmp_path, volumes, {"data_migration_volumes": [volume], "data_migration_freeze_containers": [],
                                  "data_migration_write_freeze": freeze})
    assert res.returncode == 0, res.stdout[-3000:]
    by_step = {e["step"]: e for e in entries(tmp_path)}
    verify, cutover = by_step["volume/embeddings/verify"]["data"], by_step["volume/embeddings/cutover"]["data"]
    # the writer ran during the first verification: a difference there is the delta, not a failed verification
    assert "verified" not in verify and "equal_before_freeze" in verify, verify
    assert cutover["verified"] is True and cutover["write_freeze"] is True and cutover["writers_stopped"] == []
    assert volumes["cli"].containers.get(volumes["writer"]).status == "running"  # the freeze ended
    # every line written before the freeze is in the target, in order (the writer resumed on the source afterwards)
    target = (volumes["dst"] / "writes.log").read_text().split()
    source = (volumes["src"] / "writes.log").read_text().split()
    assert target == [str(i) for i in range(1, len(target) + 1)] and len(target) > 10
    assert source[: len(target)] == target
