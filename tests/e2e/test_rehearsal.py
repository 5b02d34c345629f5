"""End-to-end rehearsal on the lab (real Docker engine, real nginx-proxy with TLS, real Redis,
the Qdrant stand-in, HAProxy installed by the role on the lab node, real iptables for the port handover):
phase2b brings every route to K3s, then phase2d (port handover, Compose stack retired) and the rollback run under
load. Phase 2B itself under load, and a failure injected at 25%, run on production's settings on the staging lab
(tests/e2e/test_staging.py); Phase 2D and the rollback move there next (docs/lab-staging.md).

Continuous load during every run: wrk (20 keep-alive connections, GETs and POSTs over four routes)
through the public port, and a writer posting items to mcp-context and mcp-research (Redis SET + Qdrant
upsert). At the end of each: 0 failed requests, every acknowledged write readable in the Redis and the
Qdrant that are primary then, every route served by the side it should be. Counts are printed.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import urllib.request

from conftest import EDGE, Writer, during_load, explain, ledger, playbook, primary, side_at

ROUTES = ["/api/context/x", "/api/research/y", "/", "/api/agents/z"]


def backend_of(path: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(EDGE + path, headers={"Host": "www.sophia-intel.ai"})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
        return resp.headers.get("X-Sophia-Backend", "")


def side_of(path: str) -> tuple[str, str]:
    return side_at(EDGE, path, timeout=5)


def service_of(path: str) -> str:
    return side_of(path)[0]


def run_under_load(tmp_path, label: str, *args: str, expect_rc: int | None = 0):
    """Runs a playbook while wrk and the writer go; returns (playbook result, wrk result, writer, lost)."""
    writer = Writer()
    res, result, lost = during_load(tmp_path, EDGE, ROUTES, writer, lambda: playbook(*args), f"rehearsal {label}")
    if expect_rc is not None:
        assert res.returncode == expect_rc, explain(res.stdout)
    assert result["failed"] == 0, result["raw"]
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []} and len(writer.acked) > 20
    return res, result, writer


def compose_running() -> set[str]:
    out = subprocess.run(["docker", "ps", "--filter", "label=com.docker.compose.project=sophia", "--format",
                          "{{.Label \"com.docker.compose.service\"}}"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_phase2d_then_rollback_under_load(lab, tmp_path):
    assert primary() == "compose"
    walk = playbook("playbooks/phase2b.yml")  # the data cutover, then every route to 100% (under load on staging)
    assert walk.returncode == 0, explain(walk.stdout)
    assert {backend_of(p) for p in ROUTES} == {"k3s1"}
    # every route reaches its own service (the splitter re-resolves the lab's container names; a remembered address
    # of a recreated container once sent /api/context to mcp-research)
    for name in ("research", "context", "github", "business", "lambda", "hubspot", "agents"):
        assert service_of(f"/api/{name}/x") == f"mcp-{name}"
    assert len(compose_running()) >= 10
    run_under_load(tmp_path, "phase2d (port handover, Compose stack retired)", "playbooks/phase2d.yml")
    assert compose_running() == set()
    # the public port now reaches the K3s ingress directly: every API answers from the K3s side
    for name in ("research", "context", "github", "business", "lambda", "hubspot", "agents"):
        assert side_of(f"/api/{name}/x") == (f"mcp-{name}", "k3s")
    entries = ledger()["entries"]
    backups = [e for e in entries if e["step"].startswith("backup/volume/") and e["status"] == "done"]
    assert {"backup/volume/sophia_redis-data", "backup/volume/sophia_qdrant-data"} <= {e["step"] for e in backups}
    assert all(len(e["data"]["sha256"]) == 64 and os.path.getsize(e["data"]["path"]) > 0 for e in backups)
    assert ledger()["state"]["traffic/edge"] == 100
    again = playbook("playbooks/phase2d.yml")
    # a second Phase 2D finds everything retired: nothing is stopped, removed or handed over again
    assert again.returncode == 0, explain(again.stdout)
    assert changed_tasks(again.stdout) <= {"record the phase in the ledger"}, explain(again.stdout)

    run_under_load(tmp_path, "rollback from phase2d", "playbooks/rollback.yml")
    assert len(compose_running()) >= 10
    assert primary() == "compose"
    for name in ("research", "context", "agents"):
        assert side_of(f"/api/{name}/x") == (f"mcp-{name}", "compose")
    assert ledger()["state"]["traffic/edge"] == 0
    again = playbook("playbooks/rollback.yml")
    # nothing is undone again; only the ledger notes that this run found nothing left to undo
    assert again.returncode == 0, explain(again.stdout)
    assert changed_tasks(again.stdout) <= {"record the phase in the ledger"}, explain(again.stdout)


def changed_tasks(out: str) -> set[str]:
    names, task = set(), ""
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line.split("] ", 1)[0].split(" : ", 1)[-1].split("|")[-1].strip(" *")
        elif line.startswith("changed:"):
            names.add(task)
    return names
