"""data_migration on the lab while a writer runs: Redis (real, native replication), Qdrant (the stand-in)
and the embeddings volume move to the K3s side; the run is killed in the middle and resumed; then the
rollback brings the Compose side back as primary. Every acknowledged write must be found afterwards, in
Redis and in Qdrant of the side that is primary; every backup in the report must exist with its sha256.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import signal
import subprocess
import tempfile
import time

import redis
import requests
from conftest import QDRANT, REDIS, ROOT, Writer, explain, ledger, playbook, playbook_env, primary, recap_changed

from ansible_collections.sophia.migrate.plugins.filter.ledger_report import ledger_done


def sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def entries_since_rollback(group: str) -> list[dict]:
    entries = ledger()["entries"]
    last = max([i for i, e in enumerate(entries) if e["step"] == f"{group}/rollback"], default=-1)
    return entries[last + 1:]


def run_until_step_then_kill(step: str, timeout: float = 600) -> None:
    """Starts the data migration and kills it (SIGKILL, whole process group) once the ledger records ``step``."""
    with tempfile.TemporaryFile(mode="w+") as out:  # the run's output, shown when it ends before the step
        proc = subprocess.Popen(["ansible-playbook", "playbooks/phase2b.yml", "--tags", "data_migration"], cwd=ROOT,
                                env=playbook_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if any(e["step"] == step and e["status"] == "done" for e in entries_since_rollback("redis")):
                    return
                if proc.poll() is not None:
                    out.seek(0)
                    raise AssertionError(f"the run ended (rc {proc.returncode}) before recording {step}:\n"
                                         + explain(out.read()))
                time.sleep(0.2)
            raise AssertionError(f"{step} not recorded within {timeout}s")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_migrate_killed_midway_resumes_without_redoing_then_rolls_back(lab):
    assert primary() == "compose"
    writer = Writer()
    writer.start()
    try:
        time.sleep(3)
        # killed right after the Redis promotion, before the endpoint moved and Qdrant started
        run_until_step_then_kill("redis/promote")
        killed_at = {e["step"] for e in entries_since_rollback("redis") if e["status"] == "done"}
        assert {"redis/backup", "redis/replicate", "redis/promote"} <= killed_at
        assert "redis/cutover" not in killed_at and "qdrant/restore" not in killed_at
        resumed = playbook("playbooks/phase2b.yml", "--tags", "data_migration")
        assert resumed.returncode == 0, explain(resumed.stdout)
        time.sleep(2)
    finally:
        writer.stop()
    lost = writer.lost("k3s")
    print("\n" + writer.report("data migration killed after the Redis promotion, resumed", lost))
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []} and len(writer.acked) > 50, writer.diagnosis(lost)
    assert primary() == "k3s"
    replica = redis.Redis(port=REDIS["compose"]).info("replication")
    assert replica["role"] == "slave" and replica["master_link_status"] == "up"  # the way back stands

    # nothing finished before the kill was done again: one 'done' entry per step since the last rollback
    since = [e for e in entries_since_rollback("redis") if e["status"] == "done"]
    for step in ("redis/backup", "redis/replicate", "redis/promote"):
        assert [e["step"] for e in since].count(step) == 1, step
    done = ledger_done(ledger()["entries"])
    assert {"redis/cutover", "qdrant/restore", "qdrant/sophia/backup", "volume/embeddings/cutover"} <= set(done)

    restore = [e for e in ledger()["entries"] if e["step"] == "qdrant/restore"][-1]["data"]
    print(f"Qdrant write freeze: {restore['freeze_seconds']} s")
    assert restore["verified"] is True and 0 < restore["freeze_seconds"] <= 120
    digest = restore["collections"][0]["digest"]
    assert digest["source"] == digest["target"]

    # the report lists every backup with path, size and sha256, and each file is there with that sha256
    reports = sorted(glob.glob(os.path.join(ROOT, "reports", "*", "data_migration.json")), key=os.path.getmtime)
    with open(reports[-1]) as handle:
        artifacts = {a["name"]: a for a in json.load(handle)["artifacts"]}
    for name in ("redis/backup", "qdrant/sophia/backup", "qdrant/restore/sophia", "volume/embeddings/backup"):
        art = artifacts[name]
        assert os.path.getsize(art["path"]) == int(art["size"]) > 0 and sha256(art["path"]) == art["sha256"], name

    again = playbook("playbooks/phase2b.yml", "--tags", "data_migration")
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, explain(again.stdout)

    # rollback while writes go on: the Compose side is primary again and holds everything
    writer = Writer()
    writer.start()
    try:
        time.sleep(3)
        back = playbook("playbooks/phase2b.yml", "--tags", "data_migration", "-e", "data_migration_action=rollback")
        assert back.returncode == 0, explain(back.stdout)
        time.sleep(2)
    finally:
        writer.stop()
    lost = writer.lost("compose")
    print(writer.report("data rollback", lost))
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []} and len(writer.acked) > 20, writer.diagnosis(lost)
    assert primary() == "compose"
    steps = {e["step"]: e for e in ledger()["entries"]}
    assert steps["redis/rollback"]["data"]["verified"] is True
    assert steps["redis/cutover"]["status"] == "rolled_back" and steps["qdrant/restore"]["status"] == "rolled_back"
    # Qdrant has no way back by replication: the rollback proved equality under its freeze, and the
    # Compose side has taken the writes since
    digest = steps["qdrant/rollback"]["data"]["collections"][0]["digest"]
    assert digest["source"] == digest["target"]
    assert points_count(QDRANT["compose"]) >= digest["points_source"] > 0


def points_count(url: str) -> int:
    return requests.post(f"{url}/collections/sophia/points/count", json={"exact": True}, timeout=30).json()["result"][
        "count"
    ]
