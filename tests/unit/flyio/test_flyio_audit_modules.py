"""The flyio_repo_scan and flyio_audit_report modules in-process: results, check mode, idempotence, input checks."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_scan
from ansible_collections.sophia.migrate.plugins.modules import flyio_audit_report, flyio_repo_scan
from support.modules import run_module

FIXTURE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flyio", "repo"))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    (root / "assets").mkdir()
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0sophiaai-mcp-repo-v2.fly.dev\0FLY_APP")
    return root


def info(**kw):
    base = {
        "name": "a",
        "exists": True,
        "forbidden": False,
        "machines": [],
        "volumes": [],
        "certificates": [],
        "ips": [],
        "secret_names": [],
        "incomplete": [],
    }
    return {**base, **kw}


# --- flyio_repo_scan ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("check_mode", [False, True])
def test_scan_module_returns_what_scan_paths_finds(tree, capsys, check_mode):
    result = run_module(flyio_repo_scan, {"paths": [str(tree), str(tree / "nope")]}, capsys, check_mode=check_mode)
    assert result["changed"] is False and not result.get("failed")
    expected = _flyio_scan.scan_paths([str(tree), str(tree / "nope")])
    assert result["references"] == expected["references"]
    assert result["fly_tomls"] == expected["fly_tomls"]
    assert result["files_scanned"] == expected["files_scanned"] > 0
    assert result["apps_referenced"] == expected["apps_referenced"]
    assert result["missing_paths"] == [str(tree / "nope")]
    # 'skipped' would make Ansible show the task as skipped: the list comes back as skipped_files
    assert "skipped" not in result
    assert {"file": str(tree / "assets" / "logo.png"), "reason": "binary"} in result["skipped_files"]
    ref = next(r for r in result["references"] if r["kind"] == "fly_toml_app")
    assert set(ref) == {"file", "line", "location", "kind", "value", "app", "text"}
    assert ref["location"] == f"{ref['file']}:{ref['line']}"


def test_scan_module_max_file_size(tree, capsys):
    result = run_module(flyio_repo_scan, {"paths": [str(tree)], "max_file_size": 10}, capsys)
    assert result["references"] == [] and result["files_scanned"] == 0
    assert all(s["reason"] == "larger than 10 bytes" for s in result["skipped_files"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"paths": []}, "option 'paths': give at least one file or directory"),
        ({"paths": [""]}, "option 'paths': an empty path"),
        ({"paths": ["/tmp"], "max_file_size": 0}, "option 'max_file_size': must be a positive"),
        ({"paths": ["/tmp"], "max_line": -1}, "option 'max_line': must be a positive"),
        ({}, "missing required arguments: paths"),
        ({"paths": ["/tmp"], "max_file_size": "big"}, "max_file_size"),
    ],
)
def test_scan_module_rejects_bad_options(capsys, args, message):
    result = run_module(flyio_repo_scan, args, capsys)
    assert result["failed"] is True and message in result["msg"]


# --- flyio_audit_report ------------------------------------------------------------------------------------
SCAN = {"references": [], "files_scanned": 3, "missing_paths": []}


def report_args(tmp_path=None, **kw):
    args = {
        "apps": ["a", "b"],
        "infos": [info(), info(name="b", exists=False)],
        "scan": SCAN,
        "backups": {},
        "destroyed": [{"name": "a", "deleted": True, "msg": "app 'a' deleted"}, {"skipped": True}],
        "environment": "lab",
        "run_id": "r1",
        "api": "http://x",
        "destroy": True,
        "repo_paths": ["/repo"],
        "skipped_steps": ["", "DNS/HTTPS probes: flyio_audit_probe=false", ""],
    }
    if tmp_path is not None:
        args["directory"] = str(tmp_path / "reports")
    return {**args, **kw}


def test_report_module_without_directory_only_computes(capsys):
    result = run_module(flyio_audit_report, report_args(), capsys)
    assert result["changed"] is False and result["paths"] == {}
    assert [v["verdict"] for v in result["verdicts"]] == ["gone", "gone"]
    assert result["counts"] == {"gone": 2, "safe to destroy": 0, "blocked": 0}
    assert result["probes"] == []


def test_report_module_without_infos_blocks_every_app(capsys):
    args = report_args(infos=None, destroyed=[])
    result = run_module(flyio_audit_report, args, capsys)
    assert all(v["verdict"] == "blocked" and "no API evidence" in v["reasons"][0] for v in result["verdicts"])


def test_report_module_writes_then_is_idempotent(tmp_path, capsys):
    args = report_args(tmp_path)
    run_dir = tmp_path / "reports" / "r1"

    result = run_module(flyio_audit_report, args, capsys, check_mode=True)
    assert result["changed"] is True and not run_dir.exists()  # check mode: would write, writes nothing
    assert result["paths"]["json"] == str(run_dir / "flyio_audit.json")

    result = run_module(flyio_audit_report, args, capsys)
    assert result["changed"] is True
    doc = json.loads((run_dir / "flyio_audit.json").read_text())
    assert doc["counts"]["gone"] == 2 and doc["written_at"] == result["written_at"]
    assert doc["skipped_steps"] == ["DNS/HTTPS probes: flyio_audit_probe=false"]
    assert [d["name"] for d in doc["destroyed"]] == ["a"]
    md = (run_dir / "flyio_audit.md").read_text()
    assert "| a | **gone** |" in md and "Destroyed in this run" in md
    texts = {p.name: p.read_text() for p in run_dir.iterdir()}

    # same content (the time it is written aside): nothing changes, in check mode or not
    for check_mode in (True, False):
        result = run_module(flyio_audit_report, args, capsys, check_mode=check_mode)
        assert result["changed"] is False and result["written_at"] == doc["written_at"]
        assert {p.name: p.read_text() for p in run_dir.iterdir()} == texts

    # different content: check mode tells without writing, then the real run writes
    other = report_args(tmp_path, destroyed=[])
    result = run_module(flyio_audit_report, other, capsys, check_mode=True)
    assert result["changed"] is True and {p.name: p.read_text() for p in run_dir.iterdir()} == texts
    result = run_module(flyio_audit_report, other, capsys)
    assert result["changed"] is True
    assert json.loads((run_dir / "flyio_audit.json").read_text())["destroyed"] == []
    assert sorted(p.name for p in run_dir.iterdir()) == ["flyio_audit.json", "flyio_audit.md"]  # no .tmp left


def test_report_module_diff(tmp_path, capsys):
    args = {**report_args(tmp_path), "_ansible_diff": True}
    result = run_module(flyio_audit_report, args, capsys, check_mode=True)
    md_diff, json_diff = result["diff"]
    assert md_diff["before"] == "" and "| a | **gone** |" in md_diff["after"]
    assert md_diff["after_header"].endswith("flyio_audit.md") and json_diff["after_header"].endswith(".json")


def test_report_module_takes_a_registered_scan_result(tree, tmp_path, capsys):
    scan = run_module(flyio_repo_scan, {"paths": [str(tree)]}, capsys)
    registered = {**scan, "failed": False, "invocation": {"module_args": {"paths": [str(tree)]}}}
    result = run_module(
        flyio_audit_report,
        report_args(
            tmp_path, scan=registered, apps=["sophiaai-jobs-v2"], infos=[info(name="sophiaai-jobs-v2", exists=False)]
        ),
        capsys,
    )
    jobs = next(v for v in result["verdicts"] if v["app"] == "sophiaai-jobs-v2")
    assert jobs["verdict"] == "gone" and "reference(s) remain" in jobs["notes"][0]
    doc = json.loads((tmp_path / "reports" / "r1" / "flyio_audit.json").read_text())
    # the report's scan section is the scan_paths result, without the task result's keys
    assert doc["scan"] == _flyio_scan.scan_paths([str(tree)])


def test_report_module_empty_scan_blocks_safe_apps(capsys):
    result = run_module(flyio_audit_report, report_args(scan={}, destroyed=[]), capsys)
    a = result["verdicts"][0]
    assert a["verdict"] == "blocked" and "no repository scan" in " ".join(a["reasons"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"apps": ["Not_An_App"]}, "option 'apps': not a Fly app name: Not_An_App"),
        ({"infos": [{"exists": True}]}, "option 'infos': entry 0 has no 'name'"),
        ({"scan": {"references": "x"}}, "option 'scan': 'references' must be a list"),
        ({"scan": {"references": [{"file": "f"}]}}, "option 'scan': reference 0 lacks line, location, kind, value"),
        ({"scan": {"files_scanned": "many"}}, "option 'scan': 'files_scanned' must be a number"),
        ({"dns_results": [{"addresses": []}]}, "option 'dns_results': entry 0 has no 'host'"),
        ({"backups": {"a": 3}}, "option 'backups': a: must be a list of volume ids/names or a dict"),
        ({"backups": {"a": [1]}}, "option 'backups': a: the list must hold volume ids or names"),
        ({"run_id": "../escape"}, "option 'run_id': must be a single directory name"),
        ({"run_id": ".."}, "option 'run_id': must be a single directory name"),
        ({"directory": " "}, "option 'directory': empty"),
    ],
)
def test_report_module_rejects_bad_options(tmp_path, capsys, changes, message):
    result = run_module(flyio_audit_report, report_args(**changes), capsys)
    assert result["failed"] is True and message in result["msg"]
    assert not (tmp_path / "reports").exists()


def test_report_module_unwritable_directory_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "reports").write_text("a file, not a directory")
    result = run_module(flyio_audit_report, report_args(tmp_path), capsys)
    assert result["failed"] is True and "cannot" in result["msg"] and "reports" in result["msg"]
