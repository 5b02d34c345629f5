"""nginx_edge's acme_challenge plan on configuration layouts: which servers get the location, and where."""

from __future__ import annotations

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
