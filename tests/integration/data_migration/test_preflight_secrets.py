"""data_migration's preflight at -vvv never prints a Redis password or a Qdrant API key.

The role runs through ansible-playbook at verbosity 3 (module arguments, results and loop items are shown)
against real servers: two Debian redis-servers that require a password and a Qdrant stand-in that requires an
API key. A connection that works and one that does not are both exercised, so the passing and the failing
results are printed; the secrets must appear in neither, and a failure still names the connection.
"""

from __future__ import annotations

import os
import sys

import pytest

from support.playbooks import role_play, run_play
from support.servers import RedisServer, free_port

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "standins"))

from qdrant_server import QdrantStandin

REDIS_PASSWORD = "S3cr3t-Redis-xyz"
QDRANT_KEY = "S3cr3t-Qdrant-key-abc"


@pytest.fixture
def vvv(monkeypatch):
    """ansible-playbook -vvv (run_play passes the environment on)."""
    monkeypatch.setenv("ANSIBLE_VERBOSITY", "3")


def base_vars(tmp_path):
    return {
        "data_migration_ledger_path": str(tmp_path / "ledger.json"),
        "data_migration_backup_dir": str(tmp_path / "backups"),
        "data_migration_report_dir": "",
        "data_migration_run_id": "run1",
    }


def redis_conn(port):
    return {"host": "127.0.0.1", "port": port, "password": REDIS_PASSWORD}


def assert_no_secret(res):
    out = res.stdout + res.stderr
    assert "<localhost> EXEC" in out or "ESTABLISH LOCAL CONNECTION" in out, "not run at -vvv:\n" + out[-2000:]
    for secret in (REDIS_PASSWORD, QDRANT_KEY):
        assert secret not in out, f"{secret} printed:\n" + "\n".join(
            line for line in out.splitlines() if secret in line
        )


def test_unreachable_redis_fails_readably_without_the_password(tmp_path, vvv):
    variables = {
        **base_vars(tmp_path),
        "data_migration_redis": {"source": redis_conn(free_port()), "target": redis_conn(free_port())},
    }
    res = run_play(tmp_path, role_play("data_migration"), variables)
    assert res.returncode != 0
    assert_no_secret(res)
    # the failure still says which connection and why
    assert "source" in res.stdout and "Connection refused" in res.stdout, res.stdout[-3000:]


def test_redis_and_qdrant_preflight_never_print_secrets(tmp_path, vvv):
    with RedisServer(password=REDIS_PASSWORD) as src, RedisServer(password=REDIS_PASSWORD) as dst:
        qdrant = QdrantStandin(str(tmp_path / "qdrant"), api_key=QDRANT_KEY).start()
        try:
            variables = {
                **base_vars(tmp_path),
                "data_migration_redis": {"source": redis_conn(src.port), "target": redis_conn(dst.port)},
                "data_migration_qdrant": {
                    "source": {"url": qdrant.url, "api_key": QDRANT_KEY},
                    # nothing listens there: the preflight stops at this connection
                    "target": {"url": f"http://127.0.0.1:{free_port()}", "api_key": QDRANT_KEY},
                    "collections": ["docs"],
                },
            }
            res = run_play(tmp_path, role_play("data_migration"), variables)
        finally:
            qdrant.stop()
    assert res.returncode != 0, res.stdout[-3000:]
    assert_no_secret(res)
    # the Redis answers were read (versions compared), the Qdrant source answered with the key
    assert "Preflight | Redis versions allow replication both ways" in res.stdout
    assert "GET /" in qdrant.requests, qdrant.requests
    # the failure names the Qdrant connection that did not answer, without its key
    assert "data_migration_qdrant.target" in res.stdout, res.stdout[-3000:]
