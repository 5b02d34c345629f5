"""Issuance through the public edge during coexistence, against a real ACME server (Debian's pebble and certbot).

Real: Pebble (Let's Encrypt's test ACME server, with pebble-challtestsrv as the DNS that points the public names at
this machine), certbot as the ACME client, Debian's nginx as nginx-proxy with production's :80 shape (certbot's webroot
for the challenge path, everything else redirected; tests/fixtures/nginx/production/conf.d/10-redirect.conf), and
sophia.migrate's nginx_edge and tls_check modules.

Stand-in: the K3s ingress with cert-manager's HTTP-01 solver (cert-manager cannot run here, docs/lab.md). An HTTP server
answers /.well-known/acme-challenge/<token> for the hosts it has a solver for, from the tokens the K3s side's ACME
client left for it, as the solver pod does; that client is certbot with its own account, placing the same ACME
order (new order, HTTP-01 authorisations, finalize, chain download) that cert-manager places for a Certificate.

What it proves, in order:
1. The Compose side gets its certificates from the ACME server through the edge (certbot webroot), and the edge serves
   them: tls_check, trusting only Pebble's root, passes for every public host.
2. Before nginx_edge's acme_challenge edit, the K3s side's order fails: Pebble's validation of its token reaches the
   edge, which answers from the webroot (404), never from K3s.
3. With the edit, the K3s side's order succeeds: Pebble's requests for its tokens travel through the edge's :80 to the
   K3s ingress, for every host; a renewal of the Compose side (certbot, webroot) still succeeds at the same time.
4. The K3s side's certificate chains to Pebble's root and is a different certificate than the Compose side's
   (expect_sha256 tells them apart); removing the edit gives the edge's file back byte for byte.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import ssl
import subprocess
import textwrap
import threading
import time
import typing as t
import urllib.request

import pytest

from ansible_collections.sophia.migrate.plugins.modules import nginx_edge, tls_check
from support.modules import run_module
from support.servers import K3sIngressStandIn, free_port, nginx_main_conf, require_binary, wait_port

HOSTS = ["www.sophia-intel.ai", "api.sophia-intel.ai"]
ACME = "/.well-known/acme-challenge/"


class K3sSolver(K3sIngressStandIn):
    """The K3s ingress with cert-manager's solver: a token is answered only for a host that has a solver."""

    tokens: t.ClassVar[str] = ""
    solved_hosts: t.ClassVar[set[str]] = set()
    seen: t.ClassVar[list[tuple[str, str]]] = []

    def answer(self):
        host = self.headers.get("Host", "").split(":")[0]
        K3sSolver.seen.append((host, self.path))
        path = os.path.join(K3sSolver.tokens, ".well-known", "acme-challenge", os.path.basename(self.path))
        if self.path.startswith(ACME) and host in K3sSolver.solved_hosts and os.path.isfile(path):
            with open(path, "rb") as handle:
                return handle.read()
        return None


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def lab(tmp_path):
    pebble, challtestsrv = require_binary("pebble"), require_binary("pebble-challtestsrv")
    nginx = require_binary("nginx")
    require_binary("certbot")
    ports = {name: free_port() for name in ("acme", "mgmt", "dns", "challmgmt", "http", "https", "tls01")}
    # Pebble's own API certificate (its test certificates are not in the Debian package)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=pebble", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", tmp_path / "api.key", "-out", tmp_path / "api.pem"], check=True, capture_output=True)
    (tmp_path / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{ports['acme']}", "managementListenAddress": f"127.0.0.1:{ports['mgmt']}",
        "certificate": str(tmp_path / "api.pem"), "privateKey": str(tmp_path / "api.key"),
        "httpPort": ports["http"], "tlsPort": ports["tls01"], "ocspResponderURL": "",
        "externalAccountBindingRequired": False}}))
    logs = (tmp_path / "challtestsrv.log").open("wb"), (tmp_path / "pebble.log").open("wb")
    procs = [subprocess.Popen([challtestsrv, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                               "-dns01", f"127.0.0.1:{ports['dns']}", "-http01", "", "-https01", "",
                               "-tlsalpn01", "", "-management", f"127.0.0.1:{ports['challmgmt']}"],
                              stdout=logs[0], stderr=subprocess.STDOUT)]
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
    procs.append(subprocess.Popen([pebble, "-config", str(tmp_path / "pebble.json"),
                                   "-dnsserver", f"127.0.0.1:{ports['dns']}"],
                                  stdout=logs[1], stderr=subprocess.STDOUT, env=env))
    k3s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), K3sSolver)
    threading.Thread(target=k3s.serve_forever, daemon=True).start()
    K3sSolver.tokens, K3sSolver.solved_hosts, K3sSolver.seen = str(tmp_path / "k3s-solver"), set(HOSTS), []
    webroot = tmp_path / "certbot-webroot"
    webroot.mkdir()
    conf = tmp_path / "edge"
    (conf / "conf.d").mkdir(parents=True)
    (conf / "logs").mkdir()
    (conf / "nginx.conf").write_text(nginx_main_conf(conf))
    # production's :80 server (tests/fixtures/nginx/production/conf.d/10-redirect.conf), at the lab's address
    (conf / "conf.d" / "10-redirect.conf").write_text(textwrap.dedent(f"""\
        server {{
            listen 127.0.0.1:{ports['http']} default_server;
            server_name {' '.join(HOSTS)};

            location /.well-known/acme-challenge/ {{
                root {webroot};
            }}

            location / {{
                return 301 https://$host$request_uri;
            }}
        }}
        """))
    command = [nginx, "-c", str(conf / "nginx.conf"), "-p", str(conf)]
    procs.append(subprocess.Popen([*command, "-g", "daemon off;"]))
    try:
        for port in (ports["http"], ports["acme"], ports["mgmt"], ports["challmgmt"]):
            wait_port(port)
        yield {"tmp": tmp_path, "ports": ports, "nginx": command, "conf": conf, "webroot": webroot,
               "k3s": k3s.server_address[1], "redirect": conf / "conf.d" / "10-redirect.conf",
               "logs": [tmp_path / "challtestsrv.log", tmp_path / "pebble.log"]}
    finally:
        k3s.shutdown()
        _stop(procs[2], signal.SIGQUIT)
        for proc in procs[:2]:
            _stop(proc)
        for handle in logs:
            handle.close()


def certbot(lab, account: str, webroot, *extra: str) -> subprocess.CompletedProcess:
    """certbot against Pebble, with its own configuration directory (an account) per side."""
    base = lab["tmp"] / account
    args = [require_binary("certbot"), "--non-interactive", "--agree-tos", "-m", "ops@sophia-intel.ai",
            "--server", f"https://127.0.0.1:{lab['ports']['acme']}/dir", "--config-dir", str(base / "config"),
            "--work-dir", str(base / "work"), "--logs-dir", str(base / "logs"), "--no-random-sleep-on-renew",
            *extra]
    if webroot is not None:
        args[1:1] = ["certonly", "--webroot", "-w", str(webroot), "--cert-name", "sophia",
                     *[x for host in HOSTS for x in ("-d", host)]]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(lab["tmp"] / "api.pem")}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)


def pebble_root(lab) -> str:
    context = ssl.create_default_context(cafile=str(lab["tmp"] / "api.pem"))
    with urllib.request.urlopen(f"https://127.0.0.1:{lab['ports']['mgmt']}/roots/0", context=context,
                                timeout=10) as answer:
        pem = answer.read().decode()
    path = lab["tmp"] / "pebble-root.pem"
    path.write_text(pem)
    return str(path)


def serve_https(lab, account: str) -> None:
    """The edge serves the certificate that side got (full chain), for every public host."""
    live = lab["tmp"] / account / "config" / "live" / "sophia"
    (lab["conf"] / "conf.d" / "20-tls.conf").write_text(textwrap.dedent(f"""\
        server {{
            listen 127.0.0.1:{lab['ports']['https']} ssl;
            server_name {' '.join(HOSTS)};
            ssl_certificate {live}/fullchain.pem;
            ssl_certificate_key {live}/privkey.pem;
            location / {{ return 200 "{account}\\n"; }}
        }}
        """))
    subprocess.run([*lab["nginx"], "-t", "-q"], check=True)
    subprocess.run([*lab["nginx"], "-s", "reload"], check=True)
    time.sleep(0.5)  # the reload replaces the workers


def check_tls(lab, capsys, root: str, **expect) -> dict:
    targets = [{"host": host, "address": "127.0.0.1", "port": lab["ports"]["https"], **expect} for host in HOSTS]
    return run_module(tls_check, {"targets": targets, "ca_bundle": root, "min_days": 14}, capsys)


def forward(lab, capsys, state: str = "present") -> dict:
    return run_module(nginx_edge, {
        "config": str(lab["conf"] / "nginx.conf"),
        "acme_challenge": {"host": HOSTS[0], "target": f"127.0.0.1:{lab['k3s']}", "state": state,
                           "port": lab["ports"]["http"]},
        "validate_command": [*lab["nginx"], "-t", "-q"], "reload_command": [*lab["nginx"], "-s", "reload"]}, capsys)


def sha256_of(path) -> str:
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def test_both_sides_get_certificates_through_the_public_edge_during_coexistence(lab, capsys):
    (lab["tmp"] / "k3s-solver").mkdir()  # where the K3s side's client leaves tokens for the solver
    # 1. the Compose side, as production got its certificates: certbot through the edge's webroot
    compose = certbot(lab, "compose", lab["webroot"])
    assert compose.returncode == 0, compose.stdout + compose.stderr
    root = pebble_root(lab)
    serve_https(lab, "compose")
    verdicts = check_tls(lab, capsys, root)
    assert not verdicts.get("failed"), verdicts.get("msg")
    assert verdicts["passed"] and [r["host"] for r in verdicts["results"]] == HOSTS
    assert all(r["checks"]["chain"] and r["checks"]["hostname"] and not r["certificate"]["self_signed"]
               for r in verdicts["results"])
    assert all("Pebble Intermediate" in r["certificate"]["issuer"] for r in verdicts["results"]), verdicts["results"]
    compose_cert = lab["tmp"] / "compose" / "config" / "live" / "sophia" / "cert.pem"

    # 2. the K3s side's order before the edit: the validation reaches the edge's webroot, never K3s
    original = lab["redirect"].read_text()
    early = certbot(lab, "k3s", lab["tmp"] / "k3s-solver")
    assert early.returncode != 0
    assert "404" in early.stdout + early.stderr, early.stdout + early.stderr
    assert not [p for _h, p in K3sSolver.seen if p.startswith(ACME)]

    # 3. with the edit, the same order passes: every token travels through the edge's :80 to K3s
    res = forward(lab, capsys)
    assert res["changed"] and [c["action"] for c in res["acme_challenge"]] == ["added"], res.get("msg")
    time.sleep(0.5)
    k3s = certbot(lab, "k3s", lab["tmp"] / "k3s-solver")
    assert k3s.returncode == 0, k3s.stdout + k3s.stderr
    assert sorted({h for h, p in K3sSolver.seen if p.startswith(ACME)}) == sorted(HOSTS)
    renewal = certbot(lab, "compose", None, "renew", "--force-renewal")  # certbot's renewals go on meanwhile
    assert renewal.returncode == 0, renewal.stdout + renewal.stderr
    assert sha256_of(compose_cert) != sha256_of(lab["tmp"] / "compose" / "config" / "archive" / "sophia" / "cert1.pem")

    # 4. the K3s side's certificate chains to Pebble's root, and is told apart from the Compose side's
    k3s_cert = lab["tmp"] / "k3s" / "config" / "live" / "sophia" / "cert.pem"
    serve_https(lab, "k3s")
    verdicts = check_tls(lab, capsys, root, expect_sha256=sha256_of(k3s_cert))
    assert not verdicts.get("failed") and verdicts["passed"], verdicts
    assert all(r["checks"]["expected"] for r in verdicts["results"])
    wrong = check_tls(lab, capsys, root, expect_sha256=sha256_of(compose_cert))
    assert wrong["failed"] and wrong["failed_hosts"] == [f"{h}@127.0.0.1:{lab['ports']['https']}" for h in HOSTS]
    assert all(r["checks"]["expected"] is False and r["checks"]["chain"] for r in wrong["results"])
    gone = forward(lab, capsys, state="absent")
    assert gone["changed"] and lab["redirect"].read_text() == original


def test_a_certificate_from_an_untrusted_root_is_refused(lab, capsys, tmp_path):
    """tls_check trusts only the bundle it is given: the edge's Pebble certificate fails against another root."""
    compose = certbot(lab, "compose", lab["webroot"])
    assert compose.returncode == 0, compose.stdout + compose.stderr
    serve_https(lab, "compose")
    other = tmp_path / "other-root.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=another root", "-keyout", tmp_path / "other.key", "-out", other],
                   check=True, capture_output=True)
    verdicts = check_tls(lab, capsys, str(other))
    assert verdicts["failed"] and not verdicts["passed"] and len(verdicts["failed_hosts"]) == len(HOSTS)
    assert all(r["checks"]["chain"] is False for r in verdicts["results"]), verdicts["results"]
