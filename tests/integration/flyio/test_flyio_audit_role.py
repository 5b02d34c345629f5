"""The flyio_audit role through ansible-playbook, against the Machines API stand-in, a DNS stand-in and a local
HTTP server: verdicts, destroy of the safe and confirmed apps, a second run that reports them gone and changes
nothing, check mode that deletes nothing, and the token absent from the output at -vvv."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import TOKEN
from standins.dns_zone import DnsZoneServer
from standins.fly_machines_standin import machine, volume

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        return


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def world(fly, web, tmp_path):
    fly.delete_polls = 2
    fly.add_app("sophiaai-mcp-repo-v2", machines=[machine("0a8ed193b95089", state="stopped")])
    fly.add_app(
        "sophiaai-mcp-lambda-v2",
        machines=[machine("0b8ed193b95089", state="stopped")],
        volumes=[volume("vol_lambda01", "lambda_data", 1)],
        ips=[{"address": "2a09:8280:1::9", "type": "v6"}],
    )
    fly.add_app("sophiaai-jobs-v2", volumes=[volume("vol_jobs0001", "jobs_data", 10)])
    fly.add_app("sophiaai-dashboard-v2", machines=[machine("0c8ed193b95089", state="stopped")])
    fly.add_app("sophiaai-mcp-hubspot-v2")
    fly.forbidden.add("sophiaai-mcp-hubspot-v2")
    fly.add_app("sophia-legacy-worker", machines=[machine("0d8ed193b95089", state="started")])
    repo = tmp_path / "repo"
    (repo / "web").mkdir(parents=True)
    (repo / "web" / "app.env").write_text(
        "API=https://www.sophia-intel.ai\nOLD=https://sophiaai-dashboard-v2.fly.dev\n"
    )
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0sophiaai-jobs-v2.fly.dev\0")  # binary: not read
    with DnsZoneServer({"sophiaai-dashboard-v2.fly.dev": {"A": ["127.0.0.1"]}}) as dns:
        yield {"fly": fly, "repo": repo, "dns": dns, "web_port": web, "tmp": tmp_path}


def run(world, check=False, **extra):
    tmp = world["tmp"]
    playbook = tmp / "play.yml"
    playbook.write_text(
        textwrap.dedent("""\
        - hosts: localhost
          connection: local
          gather_facts: false
          roles:
            - role: sophia.migrate.flyio_audit
        """)
    )
    fly = world["fly"]
    variables = {
        "flyio_audit_api_token": TOKEN,
        "flyio_audit_api_url": fly.url,
        "flyio_audit_graphql_url": fly.graphql_url,
        "flyio_audit_api_backoff": 0.01,
        "flyio_audit_org": "sophia-ai",
        "flyio_audit_repo_paths": [str(world["repo"])],
        "flyio_audit_probe_nameservers": ["127.0.0.1"],
        "flyio_audit_probe_dns_port": world["dns"].port,
        "flyio_audit_probe_timeout": 2,
        "flyio_audit_probe_scheme": "http",
        "flyio_audit_probe_port": world["web_port"],
        "flyio_audit_probe_use_resolved_address": True,
        # lambda's only volume is named (by id, with where its data went); jobs only has free text, which names no
        # volume any more: jobs stays blocked
        "flyio_audit_backups": {
            "sophiaai-mcp-lambda-v2": {"vol_lambda01": "/var/backups/sophia/fly/lambda_data.tar.gz"},
            "sophiaai-jobs-v2": "/var/backups/sophia/fly/jobs_data.tar.gz",
        },
        "flyio_audit_destroy": True,
        "flyio_audit_destroy_confirm": ["sophiaai-mcp-repo-v2", "sophiaai-mcp-lambda-v2", "sophiaai-jobs-v2"],
        "flyio_audit_destroy_poll_interval": 0,
        "flyio_audit_report_dir": str(tmp / "reports"),
        "flyio_audit_run_id": "run1",
        "flyio_audit_environment": "test",
        **extra,
    }
    (tmp / "vars.json").write_text(json.dumps(variables))
    python = os.path.join(ROOT, ".venv", "bin", "python")
    argv = [
        os.path.join(ROOT, ".venv", "bin", "ansible-playbook"),
        "-i",
        "localhost,",
        str(playbook),
        "-vvv",
        "-e",
        f"@{tmp / 'vars.json'}",
        "-e",
        f"ansible_python_interpreter={python}",
    ]
    if check:
        argv.append("--check")
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run(argv, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert TOKEN not in output, "the API token appeared in the output"
    assert TOKEN[4:] not in output
    changed = int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", proc.stdout).group(1))
    report = json.loads((tmp / "reports" / "run1" / "flyio_audit.json").read_text()) if not check else None
    return changed, report, output


def verdicts(report):
    return {v["app"]: v for v in report["verdicts"]}


def test_audit_destroys_the_safe_apps_then_reports_them_gone(world):
    fly = world["fly"]
    changed, _u1, _u2 = run(world, check=True)
    assert fly.calls("DELETE") == [] and changed == 1  # check mode: the destroy task would change, deletes none
    assert not (world["tmp"] / "reports" / "run1").exists()

    changed, report, _u1 = run(world)
    assert changed == 1  # the destroy task (one loop, two apps)
    deleted = sorted(c["path"].rsplit("/", 1)[-1] for c in fly.calls("DELETE"))
    assert deleted == ["sophiaai-mcp-lambda-v2", "sophiaai-mcp-repo-v2"]
    v = verdicts(report)
    assert v["sophiaai-mcp-repo-v2"]["verdict"] == "gone" and v["sophiaai-mcp-lambda-v2"]["verdict"] == "gone"
    assert v["sophiaai-jobs-v2"]["verdict"] == "blocked"
    assert any(
        "vol_jobs0001" in r and "no declared backup" in r and "a text or true names no volume" in r
        for r in v["sophiaai-jobs-v2"]["reasons"]
    )
    dash = " ".join(v["sophiaai-dashboard-v2"]["reasons"])
    assert "answers HTTP 200" in dash and "app.env:2" in dash
    assert "403" in " ".join(v["sophiaai-mcp-hubspot-v2"]["reasons"])
    assert "started" in " ".join(v["sophia-legacy-worker"]["reasons"])
    assert v["sophiaai-mcp-research-v2"]["verdict"] == "gone"  # 404
    assert report["counts"] == {"gone": 5, "safe to destroy": 0, "blocked": 4}
    assert [d["name"] for d in report["destroyed"] if d["deleted"]] == [
        "sophiaai-mcp-repo-v2",
        "sophiaai-mcp-lambda-v2",
    ]
    md = (world["tmp"] / "reports" / "run1" / "flyio_audit.md").read_text()
    assert "| sophiaai-jobs-v2 | **blocked** |" in md and "jobs_data 10 GB" in md
    # the scan module's result goes into the report as the scan itself (the binary file listed as skipped)
    assert set(report["scan"]) == {
        "references",
        "fly_tomls",
        "files_scanned",
        "skipped",
        "missing_paths",
        "apps_referenced",
        "notes",
    }
    assert report["scan"]["notes"] == []  # nothing in the fixture repository is unreadable or missing
    assert report["scan"]["skipped"] == [{"file": str(world["repo"] / "logo.png"), "reason": "binary"}]
    assert report["scan"]["files_scanned"] == 1
    probes = {p["host"]: p for p in report["probes"]}
    assert probes["sophiaai-dashboard-v2.fly.dev"]["status"] == 200
    assert probes["sophiaai-jobs-v2.fly.dev"]["resolves"] is False

    changed, report, _u1 = run(world)
    assert changed == 0 and len(fly.calls("DELETE")) == 2
    v = verdicts(report)
    assert v["sophiaai-mcp-repo-v2"]["verdict"] == "gone" and v["sophiaai-mcp-lambda-v2"]["verdict"] == "gone"
    assert report["destroyed"] == []


def test_without_token_the_api_steps_are_skipped_with_a_message(world):
    changed, report, output = run(world, flyio_audit_api_token="", flyio_audit_probe=False)
    assert changed == 0 and world["fly"].requests == []
    assert "the API inventory and the destroy step are SKIPPED" in output
    assert all(v["verdict"] == "blocked" for v in report["verdicts"])
    assert "API inventory and destroy: no API token" in report["skipped_steps"]
