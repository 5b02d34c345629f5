"""Phase reports: Markdown + JSON per run, outcomes validated, check mode writes nothing."""

from __future__ import annotations

import json
import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.ledger_report import ledger_artifacts, ledger_done
from ansible_collections.sophia.migrate.plugins.modules import migration_report as mod
from support.modules import run_module

STEPS = [
    {"name": "host preparation", "outcome": "ran", "details": {"changed": 3}},
    {"name": "GPU Operator", "outcome": "skipped", "reason": "no GPU in the lab"},
    {"name": "manifests", "outcome": "staged", "details": {"files": ["a.yaml"]}},
]


def test_writes_json_and_markdown(tmp_path, capsys):
    res = run_module(
        mod,
        {
            "directory": str(tmp_path),
            "run_id": "r1",
            "phase": "phase2a",
            "environment": "lab",
            "steps": STEPS,
            "limitations": ["no K3s binary"],
            "artifacts": [{"name": "rdb", "path": "/b/dump.rdb", "size": 10, "sha256": "ab"}],
        },
        capsys,
    )
    assert not res["changed"]
    data = json.loads((tmp_path / "r1" / "phase2a.json").read_text())
    assert data["verdict"] == "passed" and [s["outcome"] for s in data["steps"]] == ["ran", "skipped", "staged"]
    md = (tmp_path / "r1" / "phase2a.md").read_text()
    assert "| GPU Operator | skipped | no GPU in the lab |" in md
    assert "## What this environment could not do" in md and "- no K3s binary" in md
    assert "`/b/dump.rdb`" in md


def test_failed_step_makes_failed_verdict(tmp_path, capsys):
    res = run_module(
        mod,
        {"directory": str(tmp_path), "run_id": "r", "phase": "p", "steps": [{"name": "x", "outcome": "failed"}]},
        capsys,
    )
    assert res["report"]["verdict"] == "failed"


def test_bad_outcome_is_a_clear_error(tmp_path, capsys):
    res = run_module(
        mod,
        {"directory": str(tmp_path), "run_id": "r", "phase": "p", "steps": [{"name": "x", "outcome": "done-ish"}]},
        capsys,
    )
    assert res["failed"] and "steps[0] (x): outcome 'done-ish'" in res["msg"]


def test_check_mode_writes_nothing(tmp_path, capsys):
    res = run_module(
        mod, {"directory": str(tmp_path), "run_id": "r", "phase": "p", "steps": STEPS}, capsys, check_mode=True
    )
    assert res["paths"]["json"].endswith("r/p.json") and not os.path.exists(tmp_path / "r")


def _entry(step, status="done"):
    return {"step": step, "status": status}


def test_ledger_done_keeps_finished_steps_and_drops_those_a_rollback_undid():
    entries = [
        _entry("redis/backup"),
        _entry("redis/replicate"),
        _entry("qdrant/backup"),
        _entry("redis/cutover"),
        _entry("redis/rollback"),
        _entry("redis/backup"),
        _entry("volume/embeddings/copy"),
        _entry("qdrant/restore", "started"),
    ]
    # the rollback of redis voids replicate and cutover; the backup taken after it stands; other groups untouched
    assert ledger_done(entries) == ["qdrant/backup", "redis/backup", "volume/embeddings/copy"]


def test_ledger_done_ignores_a_rollback_that_did_not_finish_and_rejects_bad_input():

    assert ledger_done([_entry("redis/cutover"), _entry("redis/rollback", "failed")]) == ["redis/cutover"]
    assert ledger_done([_entry("redis/cutover"), _entry("redis/cutover", "rolled_back")]) == []
    with pytest.raises(AnsibleFilterError, match="list of ledger entries"):
        ledger_done([{"status": "done"}])


def test_ledger_done_rollback_of_a_group_covers_its_subgroups():
    entries = [
        _entry("qdrant/sophia/backup"),
        _entry("qdrant/restore"),
        _entry("qdrant/rollback"),
        _entry("qdrantx/other"),
    ]
    assert ledger_done(entries) == ["qdrantx/other"]


def test_ledger_artifacts_lists_files_a_step_names_in_its_data():
    entries = [
        {
            "step": "qdrant/restore",
            "status": "done",
            "data": {
                "collections": [
                    {"collection": "sophia", "path": "/b/q.snapshot", "size": 7, "sha256": "ab"},
                    {"collection": "x", "path": "/b/x"},
                ]
            },
        },
        {"step": "redis/backup", "status": "rolled_back", "data": {"path": "/b/r.rdb", "sha256": "cd"}},
    ]
    assert ledger_artifacts(entries) == [
        {"name": "qdrant/restore/sophia", "path": "/b/q.snapshot", "size": 7, "sha256": "ab"}
    ]
