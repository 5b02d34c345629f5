"""migration_status: where the migration stands, from a ledger the roles wrote (and hand-edited ones)."""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger
from ansible_collections.sophia.migrate.plugins.modules import migration_status
from support.modules import run_module


@pytest.fixture
def ledger(tmp_path):
    path = str(tmp_path / "ledger.json")
    _ledger.record(path, "phase2a", "done", "phase2a")
    for share in (25, 100):
        _ledger.record(path, f"traffic/www-root/{share}", "done", "phase2b",
                       {"share": share, "gate": {"verdict": "passed", "rounds": 4, "duration_s": 5.1}},
                       {"action": "traffic_share", "route": "www-root", "share": 0 if share == 25 else 25})
        _ledger.set_state(path, "traffic/www-root", share)
    _ledger.record(path, "traffic/www-api-context/25", "done", "phase2b",
                   {"share": 25, "gate": {"verdict": "passed", "rounds": 3, "duration_s": 5.0}},
                   {"action": "traffic_share", "route": "www-api-context", "share": 0})
    _ledger.set_state(path, "traffic/www-api-context", 25)
    _ledger.record(path, "redis/cutover", "done", "phase2b", {}, {"action": "redis_cutover_back"})
    _ledger.record(path, "backup/volume/sophia_redis-data", "done", "phase2d",
                   {"path": "/var/backups/sophia/redis.tar.gz", "sha256": "ab" * 32, "size": 1234})
    _ledger.record(path, "phase2b", "failed", "phase2b")
    return path


def test_status_from_the_ledger_and_live_readings(capsys, ledger, tmp_path):
    res = run_module(migration_status, {"ledger_path": ledger, "directory": str(tmp_path / "reports"),
                                        "environment": "staging",
                                        "live_shares": {"www-root": 100, "www-api-context": 5}}, capsys)
    status = res["status"]
    assert not res["changed"] and status["environment"] == "staging"
    assert [(p["phase"], p["status"]) for p in status["phases"]] == [("phase2a", "done"), ("phase2b", "failed")]
    assert status["last_step"]["step"] == "phase2b"
    routes = {r["route"]: r for r in status["routes"]}
    assert routes["www-root"]["agrees"] is True and routes["www-api-context"]["agrees"] is False
    assert status["disagreements"] == ["www-api-context"]
    assert {g["route"]: (g["share"], g["verdict"], g["rounds"]) for g in status["gates"]} == {
        "www-root": (100, "passed", 4), "www-api-context": (25, "passed", 3)}
    assert status["backups"][0]["sha256"] == "ab" * 32
    assert [u["step"] for u in status["pending_undo"]] == [
        "redis/cutover", "traffic/www-api-context/25", "traffic/www-root/100", "traffic/www-root/25"]
    text = (tmp_path / "reports" / "status.md").read_text()
    assert "| www-api-context | 25 | 5 | NO |" in text and "# sophia.migrate status (staging)" in text
    assert json.loads((tmp_path / "reports" / "status.json").read_text())["disagreements"] == ["www-api-context"]
    assert oct(os.stat(tmp_path / "reports" / "status.json").st_mode & 0o777) == "0o600"


def test_an_unreadable_live_share_never_counts_as_agreement(capsys, ledger):
    res = run_module(migration_status, {"ledger_path": ledger,
                                        "live_shares": {"www-root": "unreadable: no socket", "www-api-context": True}},
                     capsys)
    assert {r["route"]: r["agrees"] for r in res["status"]["routes"]} == {"www-root": None, "www-api-context": None}
    assert "unreadable: no socket" in res["markdown"]


def test_check_mode_writes_nothing_and_a_missing_ledger_is_empty(capsys, tmp_path):
    res = run_module(migration_status, {"ledger_path": str(tmp_path / "none.json"),
                                        "directory": str(tmp_path / "r")}, capsys, check_mode=True)
    assert res["status"]["phases"] == [] and "Nothing recorded yet." in res["markdown"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("document", [
    {"entries": [{"step": "phase2a", "status": "done", "data": "x", "undo": [1], "seq": "9"}, 7, {"step": 3}],
     "state": ["not", "a", "dict"]},
    {"entries": [{"step": "traffic/a/5", "data": {"gate": "pass"}, "status": "done", "undo": {"action": "x"}}],
     "state": {"traffic/a": 5}},
])
def test_hand_edited_ledgers_read_as_absent_never_a_crash(capsys, tmp_path, document):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(document))
    res = run_module(migration_status, {"ledger_path": str(path)}, capsys)
    assert not res.get("failed") and "Module failed" not in json.dumps(res)


@pytest.mark.parametrize(("content", "needle"), [("", "file is empty"), ("{", "not valid JSON"),
                                                 ('{"entries": [], "format": "2"}', "not a format number")])
def test_a_broken_ledger_is_a_clean_error(capsys, tmp_path, content, needle):
    path = tmp_path / "ledger.json"
    path.write_text(content)
    res = run_module(migration_status, {"ledger_path": str(path)}, capsys)
    assert res["failed"] and needle in res["msg"]
