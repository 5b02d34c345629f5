"""nginx_edge's acme_challenge plan on configuration layouts: which servers get the location, and where."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_edge

WWW = "www.sophia-intel.ai"


def tree(tmp_path, body):
    (tmp_path / "nginx.conf").write_text("events {}\nhttp {\n" + textwrap.dedent(body) + "}\n")
    return _nginx_edge.Tree(str(tmp_path / "nginx.conf"))


def test_plain_http_servers_only_default_listen_and_ipv6_included(tmp_path):
    t = tree(tmp_path, f"""\
        server {{ server_name {WWW}; return 301 https://$host$request_uri; }}
        server {{
            listen [::]:80 default_server;
            server_name WWW.sophia-intel.ai;
        }}
        server {{ listen 443 ssl; server_name {WWW}; }}
        server {{ listen 8080; server_name {WWW}; }}
        server {{ listen 80; listen 443 ssl; server_name other.example.com {WWW}; }}
        """)
    texts, changes = _nginx_edge.acme_plan(t, WWW, 80, "10.0.0.1:30080", "present")
    assert [c.line for c in changes] == [3, 4, 10]
    assert [c.action for c in changes] == ["added"] * 3
    new = texts[str(tmp_path / "nginx.conf")]
    assert new.count("proxy_pass http://10.0.0.1:30080;") == 3
    # a server on one line gets the block after its last directive; a multi-line one at its own indentation
    assert "server_name WWW.sophia-intel.ai;\n    # sophia.migrate: ACME" in new
    (tmp_path / "nginx.conf").write_text(new)
    again = _nginx_edge.Tree(str(tmp_path / "nginx.conf"))
    assert _nginx_edge.acme_plan(again, WWW, 80, "10.0.0.1:30080", "present")[0] == {}
    moved, changes = _nginx_edge.acme_plan(again, WWW, 80, "10.0.0.2:30080", "present")
    assert [c.action for c in changes] == ["retargeted"] * 3 and "10.0.0.1" not in moved[str(tmp_path / "nginx.conf")]
    back, changes = _nginx_edge.acme_plan(again, WWW, 80, "", "absent")
    assert [c.action for c in changes] == ["removed"] * 3
    original = "events {}\nhttp {\n" + textwrap.dedent(f"""\
        server {{ server_name {WWW}; return 301 https://$host$request_uri; }}
        server {{
            listen [::]:80 default_server;
            server_name WWW.sophia-intel.ai;
        }}
        server {{ listen 443 ssl; server_name {WWW}; }}
        server {{ listen 8080; server_name {WWW}; }}
        server {{ listen 80; listen 443 ssl; server_name other.example.com {WWW}; }}
        """) + "}\n"
    assert back[str(tmp_path / "nginx.conf")] == original


def test_no_plain_http_server_for_the_host(tmp_path):
    t = tree(tmp_path, f"server {{ listen 443 ssl; server_name {WWW}; }}\n")
    pattern = r"no server with server_name www\.sophia-intel\.ai listening on plain-HTTP port 80"
    with pytest.raises(_nginx_edge.EdgeError, match=pattern):
        _nginx_edge.acme_plan(t, WWW, 80, "10.0.0.1:30080", "present")
    assert _nginx_edge.acme_plan(t, WWW, 80, "", "absent") == ({}, [])


def test_production_edge_keeps_its_certbot_webroot_and_sends_other_tokens_to_k3s(tmp_path):
    """Production's :80 server (tests/fixtures/nginx/production/conf.d/10-redirect.conf) answers the challenge path
    from certbot's webroot. The plan keeps that location (certbot's renewals go on) and adds a fallback for the
    tokens it lacks (cert-manager's), at the file's own indentation; removal gives back the same text."""
    production = pathlib.Path(__file__).parents[2] / "fixtures" / "nginx" / "production" / "conf.d" / "10-redirect.conf"
    body = production.read_text()
    t = tree(tmp_path, body)
    path = str(tmp_path / "nginx.conf")
    texts, changes = _nginx_edge.acme_plan(t, "api.sophia-intel.ai", 80, "10.0.0.1:30080", "present")
    assert [c.action for c in changes] == ["added"]
    new = texts[path]
    assert new == t.texts[path].replace(
        "        root /var/www/certbot;\n",
        "        root /var/www/certbot;\n"
        "        # sophia.migrate: a token not in this webroot goes to the K3s ingress (cert-manager)\n"
        "        try_files $uri @sophia_acme_k3s;\n").replace(
        "        return 301 https://$host$request_uri;\n    }\n",
        "        return 301 https://$host$request_uri;\n    }\n"
        "    # sophia.migrate: ACME HTTP-01 challenges answered by the K3s ingress (cert-manager)\n"
        "    location @sophia_acme_k3s {\n"
        "        proxy_set_header Host $host;\n"
        "        proxy_pass http://10.0.0.1:30080;\n"
        "    }\n")
    (tmp_path / "nginx.conf").write_text(new)
    again = _nginx_edge.Tree(path)
    assert _nginx_edge.acme_plan(again, WWW, 80, "10.0.0.1:30080", "present")[0] == {}  # the same server: in place
    back, changes = _nginx_edge.acme_plan(again, WWW, 80, "", "absent")
    assert [c.action for c in changes] == ["removed"] and back[path] == t.texts[path]


@pytest.mark.parametrize("location", [
    "location /.well-known/acme-challenge/ { root /var/www/certbot; try_files $uri =404; }",
    "location /.well-known/acme-challenge/ { alias /var/www/certbot/; }",
    "location /.well-known/acme-challenge/ { root /a; }\n    location = /.well-known/acme-challenge/x { return 200; }",
])
def test_a_challenge_location_that_is_not_a_plain_webroot_is_refused_unchanged(tmp_path, location):
    t = tree(tmp_path, f"server {{\n    listen 80;\n    server_name {WWW};\n    {location}\n}}\n")
    with pytest.raises(_nginx_edge.EdgeError, match="in a shape this module cannot share"):
        _nginx_edge.acme_plan(t, WWW, 80, "10.0.0.1:30080", "present")


def test_a_host_without_a_plain_http_server_gets_the_server_nginx_answers_it_with(tmp_path):
    """api.sophia-intel.ai has only a TLS server (tests/fixtures/nginx/sophia): on :80 nginx answers it with the port's
    default_server, or else the first server listening there, and that is where its challenges must be forwarded."""
    body = f"""\
        server {{ listen 80; server_name {WWW}; location / {{ return 301 https://$host$request_uri; }} }}
        server {{ listen 80 default_server; server_name _; return 444; }}
        server {{ listen 443 ssl; server_name api.sophia-intel.ai; }}
        """
    t = tree(tmp_path, body)
    texts, changes = _nginx_edge.acme_plan(t, "api.sophia-intel.ai", 80, "10.0.0.1:30080", "present")
    assert [(c.line, c.action) for c in changes] == [(4, "added")]  # the default_server, not www's
    assert "return 444;\n    # sophia.migrate: ACME" in texts[str(tmp_path / "nginx.conf")]
    first_only = tree(tmp_path, body.replace(" default_server", ""))
    _texts, changes = _nginx_edge.acme_plan(first_only, "api.sophia-intel.ai", 80, "10.0.0.1:30080", "present")
    assert [(c.line, c.action) for c in changes] == [(3, "added")]  # no default_server: the first on the port
