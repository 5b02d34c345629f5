"""The ACME HTTP-01 challenge path routed to K3s during coexistence, on a real nginx (Debian) as the public edge.

A stand-in for the K3s ingress answers /.well-known/acme-challenge/<token> with the key authorisation only for the
Host it was given (as cert-manager's solver Ingress does). Before the edit the edge's :80 server answers the token
path with its HTTPS redirect (the ACME server would fail the challenge); after nginx_edge's acme_challenge operation
the token is fetched through the edge's :80 for that host; after its removal it is not, and the file is as before.
"""

from __future__ import annotations

import http.client
import http.server
import signal
import subprocess
import textwrap
import threading
import time
import typing as t

import pytest

from ansible_collections.sophia.migrate.plugins.modules import nginx_edge
from support.modules import run_module
from support.servers import K3sIngressStandIn, free_port, nginx_main_conf, require_binary, wait_port

WWW, API = "www.sophia-intel.ai", "api.sophia-intel.ai"
TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTH = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"


class K3sIngress(K3sIngressStandIn):
    """Answers the challenge of WWW only (the solver's Ingress is for that host); records the Host headers."""

    seen: t.ClassVar[list[str]] = []

    def answer(self):
        K3sIngress.seen.append(self.headers.get("Host", ""))
        if self.path == f"/.well-known/acme-challenge/{TOKEN}" and self.headers.get("Host") == WWW:
            return KEY_AUTH.encode()
        return None


@pytest.fixture
def edge(tmp_path):
    nginx = require_binary("nginx")
    k3s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), K3sIngress)
    threading.Thread(target=k3s.serve_forever, daemon=True).start()
    K3sIngress.seen = []
    http_port, https_port = free_port(), free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", f"/CN={WWW}", "-keyout", tmp_path / "key.pem", "-out",
                    tmp_path / "cert.pem"], check=True, capture_output=True)
    conf = tmp_path / "edge"
    (conf / "conf.d").mkdir(parents=True)
    (conf / "logs").mkdir()
    (conf / "nginx.conf").write_text(nginx_main_conf(conf))
    (conf / "conf.d" / "sites.conf").write_text(textwrap.dedent(f"""\
        # the Compose edge: plain HTTP redirects to HTTPS
        server {{
            listen 127.0.0.1:{http_port};
            server_name {WWW} sophia-intel.ai;
            location = /healthz {{ return 200 "ok\\n"; }}
            location / {{ return 301 https://$host$request_uri; }}
        }}
        server {{
            listen 127.0.0.1:{http_port};
            server_name {API};
            location / {{ return 301 https://$host$request_uri; }}
        }}
        server {{
            listen 127.0.0.1:{https_port} ssl;
            server_name {WWW};
            ssl_certificate {tmp_path}/cert.pem;
            ssl_certificate_key {tmp_path}/key.pem;
            location / {{ return 200 "compose\\n"; }}
        }}
        """))
    command = [nginx, "-c", str(conf / "nginx.conf"), "-p", str(conf)]
    subprocess.run([*command, "-t", "-q"], check=True)
    proc = subprocess.Popen([*command, "-g", "daemon off;"])
    try:
        wait_port(http_port)
        yield {"conf": conf, "http": http_port, "k3s": k3s.server_address[1], "nginx": command,
               "sites": conf / "conf.d" / "sites.conf"}
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        k3s.shutdown()


def fetch(edge, host, path=f"/.well-known/acme-challenge/{TOKEN}"):
    conn = http.client.HTTPConnection("127.0.0.1", edge["http"], timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def forward(capsys, edge, state="present", **extra):
    args = {"config": str(edge["conf"] / "nginx.conf"),
            "acme_challenge": {"host": WWW, "target": f"127.0.0.1:{edge['k3s']}", "state": state,
                               "port": edge["http"]},
            "validate_command": [*edge["nginx"], "-t", "-q"], "reload_command": [*edge["nginx"], "-s", "reload"],
            **extra}
    return run_module(nginx_edge, args, capsys)


def eventually(edge, host, want_status):
    """The reload replaces nginx's workers within moments."""
    deadline = time.monotonic() + 10
    while True:
        status, body = fetch(edge, host)
        if status == want_status or time.monotonic() > deadline:
            return status, body
        time.sleep(0.1)


def test_token_on_the_k3s_side_is_fetched_through_the_edge_and_not_after_removal(edge, capsys):
    original = edge["sites"].read_text()
    assert fetch(edge, WWW)[0] == 301  # today: the challenge would be redirected to HTTPS, never answered by K3s

    res = forward(capsys, edge)
    assert res["changed"] and not res.get("failed"), res.get("msg")
    assert res["files"] == [str(edge["sites"])]
    assert [c["action"] for c in res["acme_challenge"]] == ["added"]
    assert eventually(edge, WWW, 200) == (200, KEY_AUTH)
    assert K3sIngress.seen[-1] == WWW  # the Host reached the ingress as the client sent it
    # only that host's plain-HTTP server: the other host still redirects, other paths still redirect
    assert fetch(edge, API)[0] == 301 and fetch(edge, WWW, "/other")[0] == 301
    assert fetch(edge, WWW, "/healthz") == (200, "ok\n")
    text = edge["sites"].read_text()
    assert text.count("location ^~ /.well-known/acme-challenge/") == 1
    redirect = "    location / { return 301 https://$host$request_uri; }\n"
    assert text == original.replace(redirect, redirect[:-1] + textwrap.dedent(f"""
            # sophia.migrate: ACME HTTP-01 challenges answered by the K3s ingress (cert-manager)
            location ^~ /.well-known/acme-challenge/ {{
                proxy_set_header Host $host;
                proxy_pass http://127.0.0.1:{edge['k3s']};
            }}
        """).replace("\n", "\n    ").rstrip(" "), 1)  # inserted after the server's last directive, its indentation

    again = forward(capsys, edge)  # idempotent
    assert not again["changed"] and [c["action"] for c in again["acme_challenge"]] == ["unchanged"]
    assert edge["sites"].read_text() == text

    gone = forward(capsys, edge, state="absent")
    assert gone["changed"] and [c["action"] for c in gone["acme_challenge"]] == ["removed"]
    assert edge["sites"].read_text() == original  # byte for byte
    assert eventually(edge, WWW, 301)[0] == 301
    assert not forward(capsys, edge, state="absent")["changed"]


def test_check_mode_shows_the_diff_and_writes_nothing(edge, capsys):
    original = edge["sites"].read_text()
    res = run_module(nginx_edge, {"config": str(edge["conf"] / "nginx.conf"), "_ansible_diff": True,
                                  "acme_challenge": {"host": WWW, "target": f"127.0.0.1:{edge['k3s']}",
                                                     "port": edge["http"]}},
                     capsys, check_mode=True)
    assert res["changed"] and f"proxy_pass http://127.0.0.1:{edge['k3s']};" in res["diff"][0]["after"]
    assert edge["sites"].read_text() == original


def test_invalid_result_is_put_back_and_not_reloaded(edge, capsys):
    original = edge["sites"].read_text()
    res = forward(capsys, edge, validate_command=["sh", "-c", "echo broken >&2; exit 1"])
    assert res["failed"] and "every file is back as it was and nginx was not reloaded" in res["msg"]
    assert edge["sites"].read_text() == original and fetch(edge, WWW)[0] == 301
    assert res["backups"][str(edge["sites"])]  # the backup was taken before the write


def test_a_certbot_webroot_is_kept_and_only_the_tokens_it_lacks_go_to_k3s(edge, capsys, tmp_path):
    """Production's :80 server serves /.well-known/acme-challenge/ from certbot's webroot (its renewals). During
    coexistence both clients must pass: a token certbot put in the webroot is answered from there, any other one by
    the K3s ingress (cert-manager's solver); removal gives the file back byte for byte."""
    webroot = tmp_path / "certbot"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (webroot / ".well-known" / "acme-challenge" / "certbot-token").write_text("certbot-key-authorisation")
    text = edge["sites"].read_text().replace(
        '    location = /healthz', f'    location /.well-known/acme-challenge/ {{ root {webroot}; }}\n'
                                   '    location = /healthz', 1)
    edge["sites"].write_text(text)
    subprocess.run([*edge["nginx"], "-s", "reload"], check=True)
    assert eventually(edge, WWW, 404)[0] == 404  # today: a cert-manager token is answered by the webroot (404)

    res = forward(capsys, edge)
    assert res["changed"] and not res.get("failed"), res.get("msg")
    assert [c["action"] for c in res["acme_challenge"]] == ["added"]
    assert eventually(edge, WWW, 200) == (200, KEY_AUTH)  # not in the webroot: K3s answers
    assert fetch(edge, WWW, "/.well-known/acme-challenge/certbot-token") == (200, "certbot-key-authorisation")
    assert K3sIngress.seen[-1] == WWW
    changed = edge["sites"].read_text()
    assert changed.count("try_files $uri @sophia_acme_k3s;") == 1 and "location @sophia_acme_k3s {" in changed
    assert "location ^~ /.well-known/acme-challenge/" not in changed  # the webroot location is the one kept

    again = forward(capsys, edge)
    assert not again["changed"] and [c["action"] for c in again["acme_challenge"]] == ["unchanged"]
    moved = forward(capsys, edge, acme_challenge={"host": WWW, "target": "127.0.0.1:1", "port": edge["http"]})
    assert moved["changed"] and [c["action"] for c in moved["acme_challenge"]] == ["retargeted"]
    assert edge["sites"].read_text() == changed.replace(f"127.0.0.1:{edge['k3s']};", "127.0.0.1:1;")

    gone = forward(capsys, edge, state="absent")
    assert gone["changed"] and [c["action"] for c in gone["acme_challenge"]] == ["removed"]
    assert edge["sites"].read_text() == text  # byte for byte
    assert eventually(edge, WWW, 404)[0] == 404
    assert fetch(edge, WWW, "/.well-known/acme-challenge/certbot-token") == (200, "certbot-key-authorisation")


def test_a_challenge_location_of_another_shape_is_refused(edge, capsys):
    text = edge["sites"].read_text().replace(
        '    location = /healthz', '    location /.well-known/acme-challenge/ { proxy_pass http://127.0.0.1:9; }\n'
                                   '    location = /healthz')
    edge["sites"].write_text(text)
    res = forward(capsys, edge)
    assert res["failed"] and "already answers the challenge path itself: location /.well-known/acme-challenge/ " \
                             f"at {edge['sites']}:5, in a shape this module cannot share" in res["msg"], res["msg"]
    assert edge["sites"].read_text() == text


def test_unknown_host_and_bad_target_are_clean_failures(edge, capsys):
    res = run_module(nginx_edge, {"config": str(edge["conf"] / "nginx.conf"),
                                  "acme_challenge": {"host": "docs.sophia-intel.ai", "target": "127.0.0.1:1"}}, capsys)
    assert res["failed"] and "no server with server_name docs.sophia-intel.ai listening on plain-HTTP port 80" in \
        res["msg"]
    res = run_module(nginx_edge, {"config": str(edge["conf"] / "nginx.conf"),
                                  "acme_challenge": {"host": WWW, "target": "http://x/; evil"}}, capsys)
    assert res["failed"] and "acme_challenge.target 'http://x/; evil' must be HOST:PORT" in res["msg"]
    res = run_module(nginx_edge, {"config": str(edge["conf"] / "nginx.conf")}, capsys)
    assert res["failed"] and "one of the following is required: routes, acme_challenge" in res["msg"]
