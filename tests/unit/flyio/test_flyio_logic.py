"""Fly.io audit logic without a network: tokens, repository scan, verdicts, report, module input checks."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _flyio_api,
    _flyio_report,
    _flyio_scan,
    _flyio_verdict,
)
from ansible_collections.sophia.migrate.plugins.modules import flyio_app, flyio_app_info
from support.modules import run_module

FIXTURE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flyio", "repo"))


@pytest.mark.parametrize(
    ("token", "header"),
    [
        ("abc123", "Bearer abc123"),
        ("Bearer abc123", "Bearer abc123"),
        ("FlyV1 fm2_lJPECAAA,fm2_lJPE", "FlyV1 fm2_lJPECAAA,fm2_lJPE"),
        ("fm2_lJPECAAA", "FlyV1 fm2_lJPECAAA"),
        ("  abc123\n", "Bearer abc123"),
    ],
)
def test_auth_header_forms(token, header):
    assert _flyio_api.auth_header(token) == header


def test_empty_token_is_a_clear_error():
    with pytest.raises(_flyio_api.FlyError, match="api_token"):
        _flyio_api.auth_header("  ")


@pytest.fixture
def tree(tmp_path):
    """The fixture repository plus what git cannot hold: a .git directory and a binary file."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text('[remote "fly"]\n url = https://sophiaai-mcp-repo-v2.fly.dev/\n')
    (root / "assets").mkdir()
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0sophiaai-mcp-repo-v2.fly.dev\0FLY_APP")
    return root


def by_location(result):
    return {(os.path.relpath(r["file"], result["_root"]), r["line"], r["kind"]): r for r in result["references"]}


def test_scan_reports_every_reference_with_file_and_line(tree):
    result = _flyio_scan.scan_paths([str(tree)])
    result["_root"] = str(tree)
    refs = by_location(result)
    expected = {
        ("services/dashboard/fly.toml", 2, "fly_toml_app"): "sophiaai-dashboard-v2",
        ("services/dashboard/fly.toml", 6, "registry_image"): "sophiaai-dashboard-v2",
        ("services/mcp/research/fly.toml", 1, "fly_toml_app"): "sophiaai-mcp-research-v2",
        ("services/mcp/research/fly.toml", 5, "internal_hostname"): "sophiaai-qdrant",
        (".env.example", 3, "fly_dev_hostname"): "sophiaai-mcp-context-v2",
        (".github/workflows/deploy.yml", 14, "flyctl"): "sophiaai-mcp-research-v2",
        ("src/sophia/clients.py", 3, "fly_dev_hostname"): "sophiaai-mcp-business-v2",
        ("src/sophia/clients.py", 4, "internal_hostname"): "sophiaai-jobs-v2",
        ("src/sophia/clients.py", 5, "internal_hostname"): "sophiaai-mcp-hubspot-v2",
        ("src/sophia/clients.py", 6, "registry_image"): "sophiaai-mcp-lambda-v2",
        ("config/settings.yaml", 5, "fly_dev_hostname"): "sophiaai-mcp-research-v2",
    }
    for key, app in expected.items():
        assert key in refs, f"missing {key}"
        assert refs[key]["app"] == app
        assert refs[key]["location"].endswith(f"{key[0]}:{key[1]}")
    # flyctl steps and FLY_* variables
    assert refs[(".github/workflows/deploy.yml", 10, "flyctl")]["value"].startswith("superfly/flyctl-actions")
    assert refs[(".github/workflows/deploy.yml", 11, "flyctl")]["value"].startswith("flyctl deploy")
    assert refs[(".github/workflows/deploy.yml", 13, "fly_variable")]["value"] == "FLY_API_TOKEN"
    assert refs[(".env.example", 2, "fly_variable")]["value"] == "FLY_APP_NAME"
    # nested fly.toml files, including one without `app =`
    tomls = sorted(os.path.relpath(t["file"], tree) for t in result["fly_tomls"])
    assert tomls == [
        "services/dashboard/fly.toml",
        "services/mcp/context/deploy/fly.staging.toml",
        "services/mcp/research/fly.toml",
    ]
    assert "sophiaai-mcp-business-v2" in result["apps_referenced"]


def test_scan_ignores_git_binary_and_non_fly_hosts(tree):
    result = _flyio_scan.scan_paths([str(tree)])
    files = {os.path.relpath(r["file"], tree) for r in result["references"]}
    assert not any(f.startswith(".git/") for f in files)
    assert "assets/logo.png" not in files
    assert {"file": str(tree / "assets" / "logo.png"), "reason": "binary"} in result["skipped"]
    assert "sophiaai-mcp-repo-v2" not in result["apps_referenced"]
    assert not any("docker.internal" in r["value"] for r in result["references"])
    assert not any("sophia-intel.ai" in r["value"] for r in result["references"])


def test_scan_lists_missing_paths(tmp_path):
    result = _flyio_scan.scan_paths([str(tmp_path / "nope")])
    assert result["missing_paths"] == [str(tmp_path / "nope")] and result["references"] == []


SCAN = {"references": [], "files_scanned": 3, "missing_paths": []}


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


@pytest.mark.parametrize(
    ("app_info", "scan", "probe", "backups", "verdict", "reason"),
    [
        (info(exists=False), SCAN, None, {}, "gone", None),
        (info(), SCAN, None, {}, "safe to destroy", None),
        (None, SCAN, None, {}, "blocked", "no API evidence"),
        (info(exists=None, forbidden=True, error="403"), SCAN, None, {}, "blocked", "403"),
        (info(machines=[{"id": "m1", "state": "started"}]), SCAN, None, {}, "blocked", "started"),
        (info(), SCAN, {"status": 200, "url": "https://a.fly.dev/"}, {}, "blocked", "answers HTTP 200"),
        (info(), SCAN, {"status": 502, "url": "https://a.fly.dev/"}, {}, "safe to destroy", None),
        (
            info(volumes=[{"id": "vol_1", "name": "data", "size_gb": 3}]),
            SCAN,
            None,
            {},
            "blocked",
            "no declared backup",
        ),
        (
            # free text names no volume: no longer a backup declaration for an app with volumes
            info(volumes=[{"id": "vol_1", "name": "data", "size_gb": 3}]),
            SCAN,
            None,
            {"a": "/backups/a.tar"},
            "blocked",
            "a text or true names no volume",
        ),
        (
            info(volumes=[{"id": "vol_1", "name": "data", "size_gb": 3}]),
            SCAN,
            None,
            {"a": {"vol_1": "/backups/a.tar"}},
            "safe to destroy",
            None,
        ),
        (info(volumes=None), SCAN, None, {}, "blocked", "volumes could not be listed"),
        (
            info(volumes=[{"id": "vol_1", "name": "data", "size_gb": 3}, {"id": "vol_2", "name": "x", "size_gb": 1}]),
            SCAN,
            None,
            {"a": ["vol_1"]},
            "blocked",
            "vol_2",
        ),
        (
            info(),
            {**SCAN, "references": [{"app": "a", "location": "f:1", "kind": "fly_dev_hostname", "value": "a.fly.dev"}]},
            None,
            {},
            "blocked",
            "f:1",
        ),
        (info(), {}, None, {}, "blocked", "no repository scan"),
        (info(), {**SCAN, "missing_paths": ["/x"]}, None, {}, "blocked", "not found"),
    ],
)
def test_verdicts(app_info, scan, probe, backups, verdict, reason):
    judged = _flyio_verdict.judge_app(app_info, "a", scan, probe, backups)
    assert judged["verdict"] == verdict
    if reason:
        assert any(reason in r for r in judged["reasons"]), judged["reasons"]
    else:
        assert judged["reasons"] == []


def test_gone_app_keeps_leftover_references_as_notes():
    scan = {**SCAN, "references": [{"app": "a", "location": "f:1", "kind": "k", "value": "v"}]}
    judged = _flyio_verdict.judge_app(info(exists=False), "a", scan, None, {})
    assert judged["verdict"] == "gone" and "1 reference(s) remain" in judged["notes"][0]


def test_probes_are_assembled_from_dns_and_uri_results():
    dns = [
        {"host": "a.fly.dev", "addresses": ["66.241.124.1"], "errors": []},
        {"host": "b.fly.dev", "addresses": [], "errors": ["A: NXDOMAIN (the name does not exist)"]},
    ]
    http = [{"item": dns[0], "status": 301, "url": "https://a.fly.dev:443/"}, {"item": dns[1], "skipped": True}]
    probes = _flyio_verdict.assemble_probes(dns, http)
    assert probes[0] == {
        "app": "a",
        "host": "a.fly.dev",
        "resolves": True,
        "addresses": ["66.241.124.1"],
        "status": 301,
        "url": "https://a.fly.dev:443/",
        "detail": "",
    }
    assert probes[1]["resolves"] is False and probes[1]["status"] is None and "NXDOMAIN" in probes[1]["detail"]


def test_report_written_as_json_and_markdown(tmp_path):
    doc = _flyio_report.audit_report(
        ["a", "b"],
        [info(), info(name="b", exists=False)],
        SCAN,
        [],
        {},
        [{"name": "a", "deleted": True, "msg": "app 'a' deleted"}],
        "lab",
        "r1",
        "http://x",
        True,
        ["/repo"],
        [],
    )
    assert [v["verdict"] for v in doc["verdicts"]] == ["gone", "gone"]
    paths = _flyio_report.write_report(str(tmp_path), "r1", doc)
    with open(paths["json"], encoding="utf-8") as handle:
        assert json.load(handle)["counts"]["gone"] == 2
    with open(paths["markdown"], encoding="utf-8") as handle:
        text = handle.read()
    assert "| a | **gone** |" in text and "Destroyed in this run" in text
    assert _flyio_report.write_report(str(tmp_path / "other"), "r1", doc, check_mode=True)
    assert not (tmp_path / "other").exists()


def test_what_will_be_lost():
    lost = _flyio_verdict.what_will_be_lost(
        info(
            volumes=[{"id": "v", "name": "d", "size_gb": 5, "attached_machine_id": "m"}],
            certificates=[{"hostname": "x.example"}],
            ips=[{"address": "1.2.3.4"}],
            secret_names=["S"],
            incomplete=["ips/secrets: boom"],
        )
    )
    assert lost["volume_total_gb"] == 5 and lost["certificates"] == ["x.example"] and lost["ips"] == ["1.2.3.4"]
    assert lost["unknown"] == ["ips/secrets: boom"]


def test_flyio_app_refuses_without_matching_confirm(capsys):
    result = run_module(
        flyio_app,
        {
            "name": "sophiaai-jobs-v2",
            "confirm": "sophiaai-jobs",
            "api_token": "unit-token-xyz",
            "api_url": "http://127.0.0.1:9/v1",
        },
        capsys,
    )
    assert result["failed"] and "confirm" in result["msg"] and "nothing was deleted" in result["msg"]


def test_flyio_app_rejects_a_bad_name(capsys):
    result = run_module(flyio_app, {"name": "Bad_Name", "confirm": "Bad_Name", "api_token": "unit-token-xyz"}, capsys)
    assert result["failed"] and "'name'" in result["msg"]


def test_info_rejects_bad_app_names(capsys):
    result = run_module(flyio_app_info, {"apps": ["ok-app", "../etc"], "api_token": "unit-token-xyz"}, capsys)
    assert result["failed"] and "apps" in result["msg"] and "../etc" in result["msg"]


def test_unreachable_api_is_a_clear_error_without_the_token(capsys):
    result = run_module(
        flyio_app_info,
        {"apps": ["a"], "api_token": "sEcReT-unit", "api_url": "http://127.0.0.1:9/v1", "retries": 0},
        capsys,
    )
    assert result["failed"] and "cannot reach the server" in result["msg"]
    assert "sEcReT-unit" not in json.dumps(result)
