"""Production's own settings on the staging lab (inventories/staging): the GPU host is a node with its own Docker
engine and production's Compose project at /opt/sophia, nginx-proxy in the real-world layout (docs/lab-staging.md).

Phase 2A runs in check mode, then for real, then again (nothing changes); Phase 1 runs against the Fly.io stand-in
with the staging token; Phase 2B under load, a failure injected at 25% under load, Phase 2C twice, Phase 2D under
load and again, the rollback under load and again. Every run: no "Module failed", no generated secret in the output;
under load, 0 failed requests and 0 lost acknowledged writes.

Real: the node's Docker engine, Compose project (Redis with its password, nginx-proxy with TLS, Prometheus and node
exporter from Debian), dnsmasq answering the domain on the node's private address, systemd, sudo for user ubuntu,
the roles' Python modules on the node (host_python). Stand-ins: Qdrant (tests/standins/qdrant_server.py), the
services (roles/lab/files/lab_service.py), the Fly.io Machines API, the NVIDIA hook (no GPU), the K3s side on
production's NodePorts (roles/lab_staging/tasks/k3s_side.yml: ingress, Redis, Qdrant, the services' pods, a K3s
Prometheus scraping a stand-in of the ingress controller's metrics); absent: a K3s binary (K3s is staged, not
started), Grafana, Loki, cAdvisor (declared, no image here).

Names and ports differ from the lab's (sophia-staging-*, no port published on the controller but the Fly stand-in's),
so this module runs beside the lab in the same pytest session.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time

import pytest
import yaml
from conftest import ROOT, Stores, Writer, during_load, explain, playbook_env, recap_changed, side_at
from standins.fly_machines_standin import FlyMachinesStandin, seed_legacy

from support.figures import write_figure

NODE = "sophia-staging-node"
STATE = os.path.join(os.path.expanduser("~"), ".sophia-migrate", "staging")
SECRETS = os.path.join(STATE, "secrets")


def staging(*args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["ansible-playbook", "-i", "inventories/staging", *args], cwd=ROOT,
                          env={**playbook_env(), **(env or {})}, capture_output=True, text=True, timeout=timeout,
                          check=False)


def node(*argv: str) -> str:
    return subprocess.run(["docker", "exec", NODE, *argv], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def secret_values() -> list[str]:
    values = []
    for name in os.listdir(SECRETS):
        with open(os.path.join(SECRETS, name)) as handle:
            values.append(handle.read().split()[0])
    return values


def clean(res: subprocess.CompletedProcess) -> None:
    """The run passed, no module crashed and no generated secret is in its output."""
    out = res.stdout + res.stderr
    assert res.returncode == 0, explain(res.stdout)
    assert "Module failed" not in out, explain(res.stdout)
    leaked = [value[:4] + "..." for value in secret_values() if value in out]
    assert not leaked, f"secret values in the output: {leaked}"


def report(out: str) -> dict:
    match = re.search(r"Report: \S+\s+\(and\s+(\S+\.json)\)", out)  # -v wraps the message
    assert match, out[-3000:]
    with open(match.group(1)) as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def fly_token() -> str:
    """The staging Fly.io token: the one inventories/staging's password lookup reads (created here if missing)."""
    os.makedirs(SECRETS, mode=0o700, exist_ok=True)
    path = os.path.join(SECRETS, "fly-api-token")
    if not os.path.exists(path):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(24).replace("-", "x").replace("_", "y") + "\n")
    with open(path) as handle:
        return handle.read().split()[0]


@pytest.fixture(scope="module")
def stage(fly_token):
    built = staging("playbooks/lab-staging.yml")
    try:
        clean(built)
        yield built
    finally:
        removed = staging("playbooks/lab-staging.yml", "-e", "lab_state=absent")
        assert removed.returncode == 0, explain(removed.stdout)
        left = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={NODE}"], capture_output=True, text=True,
                              check=True).stdout
        assert left.strip() == ""


def test_the_node_runs_production_compose_project(stage, routed):
    names = set(node("docker", "ps", "--format", "{{.Names}}").split())
    assert {"sophia-redis-1", "sophia-qdrant-1", "sophia-nginx-proxy-1", "sophia-mcp-context-1",
            "sophia-sophia-jobs-1", "sophia-prometheus-1", "sophia-node-exporter-1"} <= names, names
    assert not names & {"sophia-grafana-1", "sophia-loki-1", "sophia-cadvisor-1"}  # declared, no image here
    volumes = set(node("docker", "volume", "ls", "--format", "{{.Name}}").split())
    assert {f"sophia_{v}" for v in ("redis-data", "qdrant-data", "research-cache", "prometheus-data")} <= volumes
    compose = yaml.safe_load(node("cat", "/opt/sophia/docker-compose.yml"))
    with open(os.path.join(ROOT, "inventories", "production", "group_vars", "all", "k8s_services.yml")) as handle:
        production = yaml.safe_load(handle)["k8s_services_services"]
    assert set(compose["services"]) == {s["name"] for s in production}
    # Redis and Qdrant published on the private address, the apps on loopback, the secrets only in .env (0600)
    listening = node("ss", "-lnt")
    assert "10.213.255.20:6379" in listening and "10.213.255.20:6333" in listening
    assert "127.0.0.1:8002" in listening and "127.0.0.1:3000" in listening
    assert node("stat", "-c", "%a %U", "/opt/sophia/.env").split() == ["600", "root"]
    assert not [v for v in secret_values() if v in node("cat", "/opt/sophia/docker-compose.yml")]
    # production's edge validation command works as it is
    node("docker", "exec", "sophia-nginx-proxy-1", "nginx", "-t", "-q")
    # nginx-proxy serves certbot's lineage at production's paths (symlinks into archive/), issued by Pebble: a client
    # trusting Pebble's root only verifies it for the public name
    assert node("readlink", f"{LINEAGE}/fullchain.pem").startswith("../../archive/")
    sha, cert = TlsWatch().once()
    assert sha == issued_sha256()
    issuer = dict(pair[0] for pair in cert["issuer"])
    assert issuer["commonName"].startswith("Pebble Intermediate CA"), cert["issuer"]


SOLVER_TOKEN = "/.well-known/acme-challenge/sophia-lab-solver-token"  # on the K3s side only (k3s-ingress.conf.j2)
DOMAIN = "www.sophia-intel.ai"
# Pebble's root (roles/lab_staging, tasks/acme.yml): the only CA the rehearsal's TLS client trusts
ACME_ROOT = os.path.join(STATE, "lab", "acme-root.pem")
LINEAGE = f"/etc/letsencrypt/live/{DOMAIN}"


def issued_sha256() -> str:
    """SHA-256 of the certificate certbot got from Pebble for the public name (on the node)."""
    out = node("openssl", "x509", "-in", f"{LINEAGE}/cert.pem", "-noout", "-fingerprint", "-sha256")
    return out.strip().split("=", 1)[1].replace(":", "").lower()


class TlsWatch:
    """A TLS client of the public name that trusts Pebble's root only: it connects to the node's public address on
    443 (SNI and host-name check, as a browser) every ``interval`` seconds while it runs, and keeps the SHA-256 of every
    certificate it was served and each failure by kind: ``mismatch`` (host name), ``untrusted`` (any other
    verification failure: a default, self-signed or other CA's certificate) and ``handshake`` (no TLS session)."""

    def __init__(self, interval: float = 0.25):
        self.context = ssl.create_default_context(cafile=ACME_ROOT)  # cafile given: no system roots are loaded
        self.interval, self.served, self.failures, self.handshakes = interval, {}, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def once(self) -> tuple[str, dict]:
        with socket.create_connection((PUBLIC, 443), timeout=10) as raw, \
                self.context.wrap_socket(raw, server_hostname=DOMAIN) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest(), tls.getpeercert()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sha, _cert = self.once()
                self.served[sha] = self.served.get(sha, 0) + 1
            except ssl.SSLCertVerificationError as exc:
                kind = "mismatch" if exc.verify_code == 62 else "untrusted"  # X509_V_ERR_HOSTNAME_MISMATCH
                self.failures.append((time.strftime("%H:%M:%S"), kind, exc.verify_message))
            except OSError as exc:  # ssl.SSLError included: no session
                self.failures.append((time.strftime("%H:%M:%S"), "handshake", repr(exc)))
            self.handshakes += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> TlsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(15)

    def summary(self) -> str:
        kinds = {k: sum(f[1] == k for f in self.failures) for k in ("handshake", "mismatch", "untrusted")}
        return (f"TLS (Pebble's root only): {self.handshakes} handshakes, {kinds['handshake']} failed, "
                f"{kinds['mismatch']} host-name mismatches, {kinds['untrusted']} untrusted; certificates served "
                + ", ".join(f"{sha[:16]}... x{n}" for sha, n in self.served.items()))


def plain_http(path: str) -> tuple[int, str]:
    """(status, body) of ``path`` through nginx-proxy's public :80 (Host www.sophia-intel.ai), asked from the node, as
    Let's Encrypt asks for a token (no redirect followed)."""
    code = ("import http.client, sys\n"
            "c = http.client.HTTPConnection(sys.argv[1], 80, timeout=10)\n"
            "c.request('GET', sys.argv[2], headers={'Host': 'www.sophia-intel.ai'})\n"
            "r = c.getresponse()\nprint(r.status)\nprint(r.read().decode(), end='')\n")
    status, _newline, body = node("python3", "-c", code, PUBLIC, path).partition("\n")
    return int(status), body


def test_phase2a_check_then_real_then_nothing_changes(stage):
    edge_files = "cat /opt/sophia/nginx-proxy/conf.d/*.conf"
    # a token certbot left in its webroot (the Compose side's renewals): answered from there before and after
    node("sh", "-c", "mkdir -p /var/www/certbot/.well-known/acme-challenge && printf compose-side-token"
         " > /var/www/certbot/.well-known/acme-challenge/sophia-compose-token")
    compose_token = "/.well-known/acme-challenge/sophia-compose-token"
    assert plain_http(compose_token) == (200, "compose-side-token")
    if "@sophia_acme_k3s" not in node("sh", "-c", edge_files):  # a fresh lab: certbot's webroot answers, not K3s
        assert plain_http(SOLVER_TOKEN)[0] == 404
    clean(staging("playbooks/phase2a.yml", "--check"))
    first = staging("playbooks/phase2a.yml", "-v")
    clean(first)
    # HTTP-01 during coexistence: a token that only the K3s side has is fetched through the public :80, and
    # certbot's webroot location is still there for the Compose side's renewals
    assert plain_http(SOLVER_TOKEN) == (200, "sophia-lab-solver-token.k3s-solver")
    assert plain_http(compose_token) == (200, "compose-side-token")
    # continuity: the certificate nginx-proxy serves (Pebble's, read through certbot's symlinks) was imported
    imported = (rf"{re.escape(DOMAIN)}\s+\S+-tls\s+\S*{re.escape(LINEAGE)}/fullchain\.pem\s+\S+\s+"
                rf".*?Pebble Intermediate CA.*?{issued_sha256()}")  # -v folds long lines
    assert re.search(imported, first.stdout, re.S), explain(first.stdout)
    edge = node("sh", "-c", edge_files)
    assert "root /var/www/certbot;" in edge and edge.count("try_files $uri @sophia_acme_k3s;") == 1, edge
    # the DNS check ran on the node against the lab resolver and matched the public address
    dns_task = r"Issuance \| DNS of every TLS host.*?\n.*?ok: \[lambda-gpu-01\]"  # on the node, not delegated
    assert re.search(dns_task, first.stdout), explain(first.stdout)
    assert "matched: true" in first.stdout
    # routes were read from nginx.conf + conf.d/*.conf on the node: Ingresses staged in the node's K3s directory
    manifests = "/var/lib/rancher/k3s/server/manifests"
    ingresses = list(yaml.safe_load_all(node("cat", f"{manifests}/sophia-ingress-60-ingresses.yaml")))
    by_name = {i["metadata"]["name"]: i for i in ingresses if i and i.get("kind") == "Ingress"}
    assert {"www-root", "www-api-context", "www-api-research", "www-api-agents"} <= set(by_name), sorted(by_name)
    context = by_name["www-api-context"]
    assert "rewrite=/" in json.dumps(context["metadata"].get("annotations") or {})  # proxy_pass with a URI part
    # K3s staged on the node: configuration and token written (0600), the service not started
    assert node("stat", "-c", "%a", "/etc/rancher/k3s/token").strip() == "600"
    assert "disabled" in subprocess.run(["docker", "exec", NODE, "systemctl", "is-enabled", "k3s"],
                                        capture_output=True, text=True, check=False).stdout
    steps = report(first.stdout)["steps"]
    main = {s["name"].split(" ")[0]: s["outcome"] for s in steps if not s["name"].startswith("verify ")}
    assert main == {"k3s_gpu": "staged", "ingress_certs": "staged", "observability": "staged"}, steps
    # the post-deploy verification has no API server on staging: every check listed, skipped, with the reason
    verify = [s for s in steps if s["name"].startswith("verify ")]
    assert {s["name"].split(" ")[1] for s in verify} >= {"nodes_ready", "certificates"}, verify
    assert all(s["outcome"] == "skipped" and "K3s was staged, not started" in s["reason"] for s in verify), verify
    again = staging("playbooks/phase2a.yml")
    clean(again)
    assert recap_changed(again.stdout) == 0, explain(again.stdout)


def test_phase1_with_the_staging_token(stage, fly_token):
    with FlyMachinesStandin(token=fly_token, port=18470) as api:
        seed_legacy(api)
        env = {"SOPHIA_REPO_PATHS": os.path.join(ROOT, "tests", "fixtures", "flyio", "repo")}
        first = staging("playbooks/phase1.yml", env=env)
        clean(first)
        assert any(r["path"].startswith("/v1/apps") for r in api.requests)
        steps = {s["name"]: s for s in report(first.stdout)["steps"]}
        assert steps["flyio inventory (Machines API)"]["outcome"] == "ran"
        assert set(steps["verdicts"]["details"]) >= {"sophiaai-jobs-v2", "sophiaai-dashboard-v2"}
        assert set(api.apps) >= {"sophiaai-jobs-v2", "sophiaai-dashboard-v2"}  # nothing destroyed unasked
        again = staging("playbooks/phase1.yml", env=env)
        clean(again)
        assert recap_changed(again.stdout) == 0, explain(again.stdout)
        assert api.violations == [], api.violations


# --- Phase 2B under load, on production's settings ------------------------------------------------------------------
# The clients stand for the internet: they reach the node's public address (as users reach the Lambda host's) through
# a route on the controller to the node's container address; the data checks reach the private address likewise.
PUBLIC, PRIVATE = "10.213.255.10", "10.213.255.20"
STAGING_EDGE = f"https://{PUBLIC}"
ROUTES = ["/api/context/x", "/api/research/y", "/", "/api/agents/z"]


def secret(name: str) -> str:
    with open(os.path.join(SECRETS, name)) as handle:
        return handle.read().split()[0]


@pytest.fixture(scope="module")
def routed(stage):
    """The controller routes the node's public and private addresses to the node (removed at the end)."""
    address = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                              NODE], capture_output=True, text=True, check=True).stdout.strip()
    net = "10.213.255.0/24"
    subprocess.run(["ip", "route", "replace", net, "via", address], check=True)
    try:
        yield Stores(redis_at={"compose": (PRIVATE, 6379), "k3s": (PRIVATE, 30379)},
                     qdrant_at={"compose": f"http://{PRIVATE}:6333", "k3s": f"http://{PRIVATE}:30333"},
                     password=secret("redis-password"), api_key=secret("qdrant-api-key"))
    finally:
        subprocess.run(["ip", "route", "del", net], check=False)


def side_of(path: str, timeout: float = 10) -> tuple[str, str]:
    return side_at(STAGING_EDGE, path, timeout)


def under_load(tmp_path, stores: Stores, label: str, side: str, *args: str) -> tuple:
    """The playbook run ``args`` under load; every acknowledged write must then be in ``side``'s Redis and Qdrant
    (named, not inferred from the Redis roles: a broken way back must not read as lost writes, nor hide them).
    Before, during and after the run a TLS client trusting Pebble's root only connects to the public name: no
    handshake may fail, and every certificate served is the one certbot got from Pebble (nginx-proxy's, which Phase 2A
    imported for the K3s ingress): never a default, self-signed or other certificate."""
    writer = Writer(edge=STAGING_EDGE, stores=stores)
    expected = issued_sha256()
    with TlsWatch() as watch:
        time.sleep(1)  # before the run: the public name as it is served now
        res, result, lost = during_load(tmp_path, STAGING_EDGE, ROUTES, writer, lambda: staging(*args, timeout=1800),
                                        f"staging {label}", side=side, host=DOMAIN, client_timeout=60)
    line = f"staging {label}: {watch.summary()}"
    print(line)
    write_figure("rehearsal-tls-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:50], line)
    assert watch.failures == [] and set(watch.served) == {expected}, (line, watch.failures[:10], expected)
    assert watch.handshakes >= 20, line
    return res, result, writer, lost


def why_lost(writer: Writer, lost: dict[str, list[str]]) -> dict:
    """The writer's diagnosis (each side's Redis role, where a few lost items are), the data steps of the ledger and
    the node's containers with their start times: what a CI summary needs to tell a lost write from a wrong check."""
    found = writer.diagnosis(lost)
    try:
        found["ledger"] = [(e["step"], e["status"], e["at"]) for e in ledger()["entries"]
                           if e["step"].split("/")[0] in ("redis", "qdrant", "phase2b")]
        found["containers"] = node("docker", "ps", "-a", "--format", "{{.Names}} {{.Status}}").splitlines()
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        found["unavailable"] = repr(exc)
    return found


def test_phase2b_under_load_on_production_settings(routed, tmp_path):
    assert routed.primary() == "compose"
    # the one-time edge change first (the splitter in front of every route, every share 0): an nginx reload under
    # wrk's keep-alive load is measured in tests/integration/traffic, not here
    front = staging("playbooks/phase2b.yml", "--tags", "traffic_shift", "-e", "traffic_shift_target_weight=0")
    clean(front)
    res, result, writer, lost = under_load(tmp_path, routed, "phase2b (data cutover, then every route 0->100)",
                                           "k3s", "playbooks/phase2b.yml")
    clean(res)
    assert result["failed"] == 0, result["raw"]
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []} and len(writer.acked) > 20, why_lost(writer, lost)
    # the way back stands: the Compose Redis replicates from the K3s one (through the NodePort on the private address)
    way_back = routed.redis("compose").info("replication")
    link = (way_back["role"], way_back.get("master_port"), way_back.get("master_link_status"))
    assert link == ("slave", 30379, "up"), why_lost(writer, lost)
    assert routed.primary() == "k3s"
    for name in ("research", "context", "github", "business", "lambda", "hubspot", "agents"):
        assert side_of(f"/api/{name}/x") == (f"mcp-{name}", "k3s")
    # the seed's order: the stateless routes reached 100% before the data cutover, the stateful ones after it
    entries = [e for e in ledger()["entries"] if e["status"] == "done"]
    first = {e["step"]: e["seq"] for e in reversed(entries)}
    cutover = max(first["redis/cutover"], first["qdrant/restore"])
    assert first["traffic/www-root/100"] < cutover and first["traffic/www-api-github/100"] < cutover, first
    assert first["traffic/www-api-context/5"] > cutover and first["traffic/www-api-research/5"] > cutover, first
    again = staging("playbooks/phase2b.yml")
    clean(again)
    assert recap_changed(again.stdout) == 0, explain(again.stdout)
    # the status at any time: the splitter's live shares agree with the ledger, and every route's last gate passed
    status = staging("playbooks/status.yml")
    clean(status)
    with open(os.path.join(STATE, "reports", "status.json")) as handle:
        current = json.load(handle)
    routes = ("www-root", "www-api-research", "www-api-context", "www-api-github", "www-api-business",
              "www-api-lambda", "www-api-hubspot", "www-api-agents")
    shares = {r["route"]: (r["ledger_share"], r["live_share"]) for r in current["routes"]}
    assert shares == dict.fromkeys(routes, (100, 100))
    assert {g["route"]: (g["share"], g["verdict"]) for g in current["gates"]}["www-api-context"] == (100, "passed")


def ledger() -> dict:
    with open(os.path.join(STATE, "ledger.json")) as handle:
        return json.load(handle)


def set_k3s_health(service: str, port: int, healthy: bool) -> None:
    """The K3s side's pod of ``service`` answers its health path with 503 (or 200 again): the injected failure."""
    body = json.dumps({"healthy": healthy})
    node("docker", "exec", f"k3s-standin_{service}_1", "curl", "-fsS", "-X", "POST", "-H",
         "Content-Type: application/json", "-d", body, f"http://127.0.0.1:{port}/admin/health")


def test_failure_at_25_steps_back_under_load(routed, tmp_path):
    only = ["-e", '{"traffic_shift_only": ["www-api-context"]}']
    reset = staging("playbooks/phase2b.yml", "--tags", "traffic_shift", "-e", "traffic_shift_target_weight=0", *only)
    clean(reset)
    assert ledger()["state"]["traffic/www-api-context"] == 0
    stop = threading.Event()

    def break_at_25():  # the K3s side of mcp-context turns unhealthy once it takes 25%
        while not stop.is_set():
            if ledger()["state"].get("traffic/www-api-context") == 25:
                set_k3s_health("mcp-context", 8002, False)
                return
            time.sleep(0.1)

    breaker = threading.Thread(target=break_at_25, daemon=True)
    breaker.start()
    try:
        res, result, writer, lost = under_load(tmp_path, routed, "failure at 25% (mcp-context's K3s side unhealthy)",
                                               "k3s", "playbooks/phase2b.yml", "--tags", "traffic_shift", *only)
    finally:
        stop.set()
        breaker.join(5)
        set_k3s_health("mcp-context", 8002, True)
    assert res.returncode != 0 and "Module failed" not in res.stdout + res.stderr
    assert "failed its gate at 25%" in res.stdout and "back at 0%" in res.stdout, explain(res.stdout)
    assert result["failed"] == 0, result["raw"]
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []}, why_lost(writer, lost)
    assert side_of("/api/context/x") == ("mcp-context", "compose")
    assert ledger()["state"]["traffic/www-api-context"] == 0


# --- Phase 2C, then Phase 2D and the rollback under load, on production's settings ---------------------------------
def test_phase2c_measures_and_a_rerun_changes_nothing(routed):
    """Phase 2C measures live data (uptime over a sliding window, latency): a verdict may change between two runs
    seconds apart, and then only the phase's ledger entry records the new verdicts; nothing else may change."""
    first = staging("playbooks/phase2c.yml")
    clean(first)
    before = [e for e in ledger()["entries"] if e["step"] == "phase2c"][-1]
    again = staging("playbooks/phase2c.yml")
    clean(again)
    after = [e for e in ledger()["entries"] if e["step"] == "phase2c"][-1]
    changed = changed_task_names(again.stdout)
    if (after["status"], after["data"]) == (before["status"], before["data"]):
        assert changed == set(), explain(again.stdout)
    else:
        assert changed == {"record the phase in the ledger"}, (before["data"], after["data"], explain(again.stdout))


def compose_containers() -> dict[str, str]:
    """The Compose project's containers on the node: service name -> state."""
    out = node("docker", "ps", "-a", "--filter", "label=com.docker.compose.project=sophia", "--format",
               '{{.Label "com.docker.compose.service"}} {{.State}}')
    return dict(line.split(" ", 1) for line in out.splitlines() if line.strip())


def changed_task_names(out: str) -> set[str]:
    names, task = set(), ""
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line.split("] ", 1)[0].split(" : ", 1)[-1].split("|")[-1].strip(" *")
        elif line.startswith("changed:"):
            names.add(task)
    return names


APIS = ("research", "context", "github", "business", "lambda", "hubspot", "agents")


def restart_node_counting(settle: float = 15, limit: float = 180) -> dict:
    """``docker restart`` of the node (systemd shuts down and boots again; its Docker engine restarts the K3s side;
    the Compose containers Phase 2D stopped stay stopped) while a client sends a GET through the public HTTPS port
    every 0.2 s, rotating over the APIs. The platform is back once every API has answered a request sent after the
    restart returned; requests sent from the restart until then are counted apart ("during": the node was down or
    booting). Requests sent from then on, for ``settle`` seconds ("after"), must all be answered, by the K3s side.
    Port 80 must answer too."""
    results: list[tuple[float, bool, str, str]] = []  # (sent at, answered, side, API)
    stop = threading.Event()

    def client():
        while not stop.is_set():
            api, sent = APIS[len(results) % len(APIS)], time.monotonic()
            try:
                results.append((sent, True, side_of(f"/api/{api}/x", timeout=5)[1], api))
            except (OSError, ValueError, KeyError):
                results.append((sent, False, "", api))
            time.sleep(0.2)

    def back_at(since: float) -> float | None:
        """When the last API answered for the first time a request sent after ``since`` (None: not all yet)."""
        first = {}
        for sent, answered, _side, api in list(results):
            if answered and sent >= since and api not in first:
                first[api] = sent
        return max(first.values()) if len(first) == len(APIS) else None

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    time.sleep(2)
    started = time.monotonic()
    subprocess.run(["docker", "restart", NODE], check=True, capture_output=True, timeout=limit)
    restarted = time.monotonic()
    address = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                              NODE], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["ip", "route", "replace", "10.213.255.0/24", "via", address], check=True)
    while (back := back_at(restarted)) is None:
        if time.monotonic() > restarted + limit:
            stop.set()
            raise AssertionError(f"not every API answered within {limit:g} s of the node's restart: "
                                 f"{[r for r in results if r[0] >= restarted][-len(APIS):]}")
        time.sleep(0.2)
    time.sleep(settle)
    stop.set()
    thread.join(10)
    during = [r for r in results if started <= r[0] < back]
    after = [r for r in results if r[0] >= back]
    plain = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: www.sophia-intel.ai",
                            f"http://{PUBLIC}/"], capture_output=True, text=True, timeout=20, check=False)
    assert plain.returncode == 0 and plain.stdout.strip() and int(plain.stdout) < 500, plain
    line = (f"staging node restart after phase2d: {len(during)} requests sent while it restarted and booted "
            f"({sum(not r[1] for r in during)} unanswered; every API answered again {back - started:.1f} s after the "
            f"restart began); {len(after)} requests after, failed {sum(not r[1] for r in after)}; "
            f"port 80 answered {plain.stdout}")
    return {"line": line, "during": len(during), "after": len(after), "after_failed": sum(not r[1] for r in after),
            "after_sides": {r[2] for r in after if r[1]}}


def test_phase2d_then_rollback_under_load(routed, tmp_path):
    # every route back at 100%, without load: the failure test left mcp-context at 0% and every other route where 2B
    # under load (above) put it, so only mcp-context's route walks again
    only = '{"traffic_shift_only": ["www-api-context"]}'
    walk = staging("playbooks/phase2b.yml", "--tags", "traffic_shift", "-e", only, timeout=1800)
    clean(walk)
    assert {side_of(f"/api/{name}/x") for name in APIS} == {(f"mcp-{name}", "k3s") for name in APIS}
    before = compose_containers()
    assert {"redis", "qdrant", "nginx-proxy", "mcp-context", "sophia-jobs", "prometheus"} <= set(before), before
    assert set(before.values()) == {"running"}, before

    res, result, writer, lost = under_load(tmp_path, routed, "phase2d (port handover, Compose stack retired)",
                                           "k3s", "playbooks/phase2d.yml")
    clean(res)
    assert result["failed"] == 0, result["raw"]
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []} and len(writer.acked) > 20, why_lost(writer, lost)
    # production's settings stop (not remove) every container, after a backup of its named volumes
    after = compose_containers()
    assert set(after) == set(before) and set(after.values()) == {"exited"}, after
    # grafana, loki and cadvisor are declared in production's Compose file but have no image here: named, not refused
    assert "cadvisor, grafana, loki declared in" in res.stdout and "never created: nothing to retire" in res.stdout
    # the public ports reach the K3s ingress directly (DNAT on the node): every API answers from the K3s side
    assert {side_of(f"/api/{name}/x") for name in APIS} == {(f"mcp-{name}", "k3s") for name in APIS}
    entries = ledger()["entries"]
    backups = {e["step"]: e["data"] for e in entries
               if e["step"].startswith("backup/volume/") and e["status"] == "done"}
    assert {"backup/volume/sophia_redis-data", "backup/volume/sophia_qdrant-data"} <= set(backups), sorted(backups)
    for data in backups.values():  # each archive is on the Compose host with the sha256 the ledger holds
        assert node("sha256sum", data["path"]).split()[0] == data["sha256"], data
    assert ledger()["state"]["traffic/edge"] == 100
    again = staging("playbooks/phase2d.yml")
    clean(again)  # a second Phase 2D finds everything retired: nothing is stopped or handed over again
    assert changed_task_names(again.stdout) <= {"record the phase in the ledger"}, explain(again.stdout)

    # a reboot after Phase 2D: the handover's DNAT rules come back from its boot unit, not from the run that made them
    assert node("systemctl", "is-enabled", "sophia-migrate-handover.service").strip() == "enabled"
    counts = restart_node_counting()
    write_figure("rehearsal-node-restart", counts["line"])
    print("\n" + counts["line"])
    assert counts["after"] >= 20 and counts["after_failed"] == 0, counts["line"]
    assert counts["after_sides"] == {"k3s"}, counts
    assert set(compose_containers().values()) == {"exited"}  # a reboot does not bring the retired stack back

    res, result, writer, lost = under_load(tmp_path, routed, "rollback from phase2d", "compose",
                                           "playbooks/rollback.yml")
    clean(res)
    assert result["failed"] == 0, result["raw"]
    assert writer.failed == 0 and lost == {"redis": [], "qdrant": []} and len(writer.acked) > 20, why_lost(writer, lost)
    assert set(compose_containers().values()) == {"running"}
    assert routed.primary() == "compose"
    assert {side_of(f"/api/{name}/x") for name in APIS} == {(f"mcp-{name}", "compose") for name in APIS}
    assert ledger()["state"]["traffic/edge"] == 0
    again = staging("playbooks/rollback.yml")
    clean(again)  # nothing is undone twice; only the ledger notes that this run found nothing left to undo
    assert changed_task_names(again.stdout) <= {"record the phase in the ledger"}, explain(again.stdout)
