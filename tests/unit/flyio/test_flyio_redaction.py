"""Secrets found in scanned repositories never leave the scan: redaction of each shape, the flyio_repo_scan result
and the report files (0600) of flyio_audit_report; the scan's bad inputs (non-UTF-8, unreadable) are reported skips.

The secret values are assembled at run time (no token-shaped literal is committed)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_redact, _flyio_report, _flyio_verdict
from ansible_collections.sophia.migrate.plugins.modules import flyio_audit_report, flyio_repo_scan
from support.modules import run_module

FIXTURE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "flyio", "repo"))
R = "REDACTED"  # _flyio_redact.REDACTED

# Fake secrets, built so that no committed line looks like a real token.
PASSWORD = "Hunter2-" + "pw-" + "7f3a9c"
QUERY_TOKEN = "qt" + "9Zk2Lm4Np6Qr8"
QUERY_SIG = "sg" + "0aa9bb8cc7dd6"
MACAROON = "fm2_" + "lJPECAAAAAAAAMSxQ8Qmz" + "/+=abc"
MACAROON_2 = "fm1r_" + "xQmzPw9Xc4"
BEARER = "bt" + ".4f9a2c.Zk2Lm4Np6Qr8"
GITHUB = "gh" + "p_" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"
GITHUB_PAT = "github" + "_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstu"
AWS = "AK" + "IA" + "QWERTYUIOPASDFGH"
AWS_SECRET = "wJalrXUtnFEMI" + "K7MDENGbPxRfiCY" + "zq81Lw"
JWT = "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0" + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlF"
API_KEY = "ak" + "-live-" + "8d7e6f5a4b"
PRIVATE_KEY = "pk" + "Q2xpZW50U2VjcmV0"
GENERIC = "Zq8" + "Wm2Lk9Xv3Bn7Tc5Rp1Yh6Ja4Ds0Fg2Hk8"
SECRETS = [
    PASSWORD,
    QUERY_TOKEN,
    QUERY_SIG,
    MACAROON,
    MACAROON_2,
    BEARER,
    GITHUB,
    GITHUB_PAT,
    AWS,
    AWS_SECRET,
    JWT,
    API_KEY,
    PRIVATE_KEY,
    GENERIC,
]


@pytest.mark.parametrize(
    ("line", "secret", "kept"),
    [
        (
            f"REDIS_URL=redis://default:{PASSWORD}@sophiaai-jobs-v2.internal:6379",
            PASSWORD,
            f"REDIS_URL=redis://default:{R}@sophiaai-jobs-v2.internal:6379",
        ),
        (
            f"BUSINESS = 'https://sophiaai-mcp-business-v2.fly.dev/api?token={QUERY_TOKEN}&page=2'",
            QUERY_TOKEN,
            f"BUSINESS = 'https://sophiaai-mcp-business-v2.fly.dev/api?token={R}&page=2'",
        ),
        (
            f"https://sophiaai-jobs-v2.fly.dev/x?X-Amz-Signature={QUERY_SIG}",
            QUERY_SIG,
            f"https://sophiaai-jobs-v2.fly.dev/x?X-Amz-Signature={R}",
        ),
        (f"https://a.fly.dev/?sig={QUERY_SIG}#top", QUERY_SIG, f"https://a.fly.dev/?sig={R}#top"),
        (f"auth = 'FlyV1 {MACAROON},{MACAROON_2}'", MACAROON_2, f"auth = 'FlyV1 {R}'"),
        (f"flyctl deploy -t {MACAROON} -a sophiaai-jobs-v2", MACAROON, f"flyctl deploy -t fm2_{R} -a sophiaai-jobs-v2"),
        (f"echo {MACAROON_2} | fly auth", MACAROON_2, f"echo fm1r_{R} | fly auth"),
        (
            f"flyctl deploy --access-token {MACAROON} -a sophiaai-mcp-research-v2",
            MACAROON,
            f"flyctl deploy --access-token {R} -a sophiaai-mcp-research-v2",
        ),
        (
            f"headers = {{'Authorization': 'Bearer {BEARER}'}}  # sophiaai-dashboard-v2.fly.dev",
            BEARER,
            f"headers = {{'Authorization': 'Bearer {R}'}}  # sophiaai-dashboard-v2.fly.dev",
        ),
        (f"curl -H 'Authorization: Basic {PASSWORD}=' https://a.fly.dev", PASSWORD, "Authorization: "),
        (f"curl -u deploy:{PASSWORD} https://a.fly.dev", PASSWORD, f"curl -u deploy:{R} https://a.fly.dev"),
        (f"GITHUB_REMOTE={GITHUB} # sophiaai-mcp-repo-v2", GITHUB, "GITHUB_REMOTE=ghp_"),
        (f"git clone https://{GITHUB}@github.com/sophia/x", GITHUB, f"https://ghp_{R}@github.com/sophia/x"),
        (f"pat: {GITHUB_PAT}", GITHUB_PAT, f"pat: github_pat_{R}"),
        (f"aws_access_key_id = {AWS}", AWS, "aws_access_key_id = AKIA"),
        (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} FLY_APP=x", AWS_SECRET, f"AWS_SECRET_ACCESS_KEY={R} FLY_APP=x"),
        (f"session={JWT}", JWT, f"session=eyJ{R}"),
        (f"const token = `{JWT}`", JWT, "const token = `"),
        (f"DB_PASSWORD={PASSWORD} FLY_APP_NAME=sophiaai-jobs-v2", PASSWORD, f"DB_PASSWORD={R} FLY_APP_NAME="),
        (f"export PGPASSWORD='{PASSWORD}'", PASSWORD, f"export PGPASSWORD='{R}'"),
        (f"  password: {PASSWORD} and more words  # note", PASSWORD, f"  password: {R}  # note"),
        (
            f'{{"apiKey": "{API_KEY}", "app": "sophiaai-jobs-v2"}}',
            API_KEY,
            f'{{"apiKey": "{R}", "app": "sophiaai-jobs-v2"}}',
        ),
        (f"API_KEY = {API_KEY}", API_KEY, f"API_KEY = {R}"),
        (f"PRIVATE_KEY={PRIVATE_KEY}", PRIVATE_KEY, f"PRIVATE_KEY={R}"),
        (f"ACCESS_KEY: {PRIVATE_KEY}", PRIVATE_KEY, f"ACCESS_KEY: {R}"),
        (f"SECRET={PRIVATE_KEY}", PRIVATE_KEY, f"SECRET={R}"),
        (f"DB_PASS={PRIVATE_KEY}", PRIVATE_KEY, f"DB_PASS={R}"),
        (f"some_token: '{PRIVATE_KEY}'", PRIVATE_KEY, f"some_token: '{R}'"),
        (f"blob = '{GENERIC}'", GENERIC, f"blob = '{R}'"),
    ],
)
def test_redaction_of_each_shape(line, secret, kept):
    out = _flyio_redact.redact_secrets(line)
    assert secret not in out
    assert kept in out, out
    assert _flyio_redact.redact_secrets(out) == out  # idempotent


@pytest.mark.parametrize(
    "line",
    [
        'app = "sophiaai-dashboard-v2"',
        "  image = 'registry.fly.io/sophiaai-dashboard-v2:deployment-01HQXYZABCDEF1234567890ABC'",
        'QDRANT_URL = "http://sophiaai-qdrant.internal:6333"',
        "REDIS_URL=redis://localhost:6379",
        "FLY_API_TOKEN: ${{ secrets.FLY_API_TOKEN }}",
        "FLY_API_TOKEN=$FLY_API_TOKEN",
        'token: "{{ vault_fly_api_token }}"',
        "SECRET_NAME=redis-url TOKEN_URL=https://auth.example/x",
        "registry.fly.io/app@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "the basic idea of bearer authentication",
        "https://sophiaai-mcp-research-v2.fly.dev:8443/health?page=2",
    ],
)
def test_what_is_not_a_secret_is_left_alone(line):
    assert _flyio_redact.redact_secrets(line) == line


def test_redact_value_walks_structures_and_keeps_keys():
    doc = {"password": f"x://u:{PASSWORD}@h", "list": [f"token={QUERY_TOKEN}", 3, None], "n": 1}
    out = _flyio_redact.redact_value(doc)
    assert PASSWORD not in json.dumps(out) and QUERY_TOKEN not in json.dumps(out)
    assert set(out) == {"password", "list", "n"} and out["list"][1:] == [3, None] and out["n"] == 1


# --- the module and the report on a repository holding secrets ----------------------------------------------
@pytest.fixture
def secret_tree(tmp_path):
    """The fixture repository plus files where a Fly reference shares its line with a secret."""
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    lines = {
        "deploy/.env.production": [
            f"REDIS_URL=redis://default:{PASSWORD}@sophiaai-jobs-v2.internal:6379",
            f"FLY_API_TOKEN={MACAROON}",
            f"DASHBOARD_URL=https://sophiaai-dashboard-v2.fly.dev/?token={QUERY_TOKEN}&sig={QUERY_SIG}",
            f"FLY_ACCESS_KEY={AWS} FLY_SECRET_ACCESS_KEY={AWS_SECRET}",
            f"FLY_API_KEY={API_KEY} FLY_PRIVATE_KEY={PRIVATE_KEY}",
            f"FLY_BLOB={GENERIC}",
        ],
        ".github/workflows/release.yml": [
            "jobs:",
            "  release:",
            "    steps:",
            f"      - run: flyctl deploy --access-token {MACAROON} -a sophiaai-mcp-research-v2",
            f"      - run: fly secrets set GITHUB_TOKEN={GITHUB} -a sophiaai-mcp-repo-v2",
            f"      - run: fly secrets set PAT={GITHUB_PAT} SESSION={JWT} -a sophiaai-mcp-repo-v2",
            f"      - run: curl -H 'Authorization: FlyV1 {MACAROON_2}' https://sophiaai-jobs-v2.fly.dev/",
            f"      - run: curl -H 'Authorization: Bearer {BEARER}' https://sophiaai-jobs-v2.fly.dev/",
        ],
        "src/sophia/legacy.py": [
            f'JOBS = {{"url": "https://sophiaai-jobs-v2.fly.dev", "password": "{PASSWORD}"}}',
        ],
    }
    for rel, content in lines.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("\n".join(content) + "\n")
    return root, lines


def test_scan_module_never_returns_a_secret(secret_tree, capsys):
    root, lines = secret_tree
    result = run_module(flyio_repo_scan, {"paths": [str(root)]}, capsys)
    assert not result.get("failed")
    text = json.dumps(result)
    for secret in SECRETS:
        assert secret not in text, secret
    # every line that holds a secret also holds a Fly reference: it is in the result, redacted, with its context
    for rel, content in lines.items():
        for number, line in enumerate(content, 1):
            if any(s in line for s in SECRETS):
                refs = [r for r in result["references"] if r["file"] == str(root / rel) and r["line"] == number]
                assert refs, f"{rel}:{number} not reported"
                assert R in refs[0]["text"]
    refs = {(os.path.relpath(r["file"], root), r["line"], r["kind"]): r for r in result["references"]}
    redis = refs[("deploy/.env.production", 1, "internal_hostname")]
    assert redis["text"] == f"REDIS_URL=redis://default:{R}@sophiaai-jobs-v2.internal:6379"
    assert redis["app"] == "sophiaai-jobs-v2"
    deploy = refs[(".github/workflows/release.yml", 4, "flyctl")]
    assert deploy["value"] == f"flyctl deploy --access-token {R} -a sophiaai-mcp-research-v2"
    assert deploy["app"] == "sophiaai-mcp-research-v2"  # the app is still told
    dash = refs[("deploy/.env.production", 3, "fly_dev_hostname")]
    assert dash["text"] == f"DASHBOARD_URL=https://sophiaai-dashboard-v2.fly.dev/?token={R}&sig={R}"


def test_report_files_hold_no_secret_and_are_0600(secret_tree, tmp_path, capsys):
    root, _lines = secret_tree
    scan = run_module(flyio_repo_scan, {"paths": [str(root)]}, capsys)
    args = {
        "apps": ["sophiaai-jobs-v2"],
        "scan": scan,
        "directory": str(tmp_path / "reports"),
        "run_id": "r1",
        "api": f"https://ops:{PASSWORD}@api.example/v1",
    }
    result = run_module(flyio_audit_report, {**args, "_ansible_diff": True}, capsys)
    assert result["changed"] is True and not result.get("failed")
    files = [tmp_path / "reports" / "r1" / "flyio_audit.json", tmp_path / "reports" / "r1" / "flyio_audit.md"]
    for path in files:
        body = path.read_text()
        assert "sophiaai-jobs-v2.internal" in body
        for secret in SECRETS:
            assert secret not in body, (path.name, secret)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    text = json.dumps({k: v for k, v in result.items() if k != "invocation"})
    assert not [s for s in SECRETS if s in text]


def test_an_unredacted_scan_given_to_the_report_is_redacted(tmp_path, capsys):
    scan = {
        "references": [
            {
                "file": "/r/.env",
                "line": 1,
                "location": "/r/.env:1",
                "kind": "internal_hostname",
                "value": "a.internal",
                "app": "a",
                "text": f"URL=redis://u:{PASSWORD}@a.internal",
            }
        ],
        "files_scanned": 1,
    }
    result = run_module(
        flyio_audit_report, {"apps": ["a"], "scan": scan, "directory": str(tmp_path), "run_id": "r"}, capsys
    )
    assert PASSWORD not in (tmp_path / "r" / "flyio_audit.json").read_text()
    assert PASSWORD not in json.dumps(result["verdicts"])


def test_existing_report_with_another_mode_is_set_to_0600(tmp_path, capsys):
    args = {"apps": ["a"], "scan": {"references": [], "files_scanned": 1}, "directory": str(tmp_path), "run_id": "r"}
    assert run_module(flyio_audit_report, args, capsys)["changed"] is True
    files = [tmp_path / "r" / "flyio_audit.json", tmp_path / "r" / "flyio_audit.md"]
    for path in files:
        path.chmod(0o644)
    texts = [p.read_text() for p in files]
    # check mode tells, changes nothing
    result = run_module(flyio_audit_report, args, capsys, check_mode=True)
    assert result["changed"] is True and all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in files)
    result = run_module(flyio_audit_report, args, capsys)
    assert result["changed"] is True and [p.read_text() for p in files] == texts
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    # 0640 is accepted as it is
    files[1].chmod(0o640)
    assert run_module(flyio_audit_report, args, capsys)["changed"] is False
    assert stat.S_IMODE(files[1].stat().st_mode) == 0o640


def test_rewriting_a_report_written_with_secrets_redacts_the_diff(tmp_path, capsys):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    old = {"written_at": "x", "scan": {"references": [{"text": f"P=redis://u:{PASSWORD}@a.internal"}]}}
    (run_dir / "flyio_audit.json").write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
    (run_dir / "flyio_audit.md").write_text(f"| `redis://u:{PASSWORD}@a.internal` |\n")
    args = {"apps": ["a"], "scan": {"files_scanned": 1}, "directory": str(tmp_path), "run_id": "r"}
    result = run_module(flyio_audit_report, {**args, "_ansible_diff": True}, capsys)
    assert result["changed"] is True
    assert PASSWORD not in json.dumps(result["diff"]) and R in result["diff"][0]["before"]
    assert PASSWORD not in (run_dir / "flyio_audit.json").read_text()


# --- bad inputs in a scanned tree: reported, never an exception ----------------------------------------------
def test_non_utf8_names_and_contents_are_scanned_and_reported(tmp_path, capsys):
    root = tmp_path / "repo"
    root.mkdir()
    name = os.path.join(os.fsencode(root), b"caf\xe9.env")
    with open(name, "wb") as handle:
        handle.write(b"OLD=https://sophiaai-jobs-v2.fly.dev\n")
    (root / "latin1.env").write_bytes(b"# r\xe9sum\xe9\nURL=https://sophiaai-mcp-repo-v2.fly.dev # caf\xe9\n")
    scan = run_module(flyio_repo_scan, {"paths": [str(root)]}, capsys)
    assert scan["files_scanned"] == 2 and scan["skipped_files"] == []
    assert scan["apps_referenced"] == ["sophiaai-jobs-v2", "sophiaai-mcp-repo-v2"]
    assert str(root / "caf\ufffd.env") in {r["file"] for r in scan["references"]}
    report = run_module(
        flyio_audit_report,
        {"apps": ["sophiaai-jobs-v2"], "scan": scan, "directory": str(tmp_path / "reports"), "run_id": "r"},
        capsys,
    )
    assert not report.get("failed"), report.get("msg")
    assert "caf\ufffd.env" in (tmp_path / "reports" / "r" / "flyio_audit.md").read_text(encoding="utf-8")


def _unreadable_directory(tmp_path):
    locked = tmp_path / "repo" / "locked"
    locked.mkdir(parents=True)
    (locked / "app.env").write_text("OLD=https://sophiaai-jobs-v2.fly.dev\n")
    locked.chmod(0)
    try:
        os.listdir(locked)
    except PermissionError:
        return str(tmp_path / "repo"), str(locked)
    locked.chmod(0o700)  # root reads through modes: use a directory of /proc that root may not list either
    for candidate in ("/proc/1/map_files", "/proc/1/fdinfo"):
        try:
            os.listdir(candidate)
        except PermissionError:
            return candidate, candidate
    pytest.fail("no directory this test can make unreadable")


def test_unreadable_directory_and_file_are_reported_and_block(tmp_path, capsys):
    root, locked = _unreadable_directory(tmp_path)
    # /proc/self/mem: a regular file that no one can read from its start (EIO)
    result = run_module(flyio_repo_scan, {"paths": [root, "/proc/self/mem"]}, capsys)
    assert not result.get("failed"), result.get("msg")
    reasons = {s["file"]: s["reason"] for s in result["skipped_files"]}
    assert reasons[locked].startswith("unreadable: ") and reasons["/proc/self/mem"].startswith("unreadable: ")
    judged = _flyio_verdict.judge_app(
        {"exists": True, "machines": [], "volumes": [], "incomplete": []},
        "a",
        _flyio_report.scan_for_report(result),
        None,
        {},
    )
    assert judged["verdict"] == "blocked" and any("could not be read" in r for r in judged["reasons"])
