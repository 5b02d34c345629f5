"""nginx_edge: structural edits of the edge's locations across an include tree (the real-world conf.d layout).

The regex edit it replaces found 0 of 4 routes in this layout and returned ok; pointed at the included file it
dropped the URI part of `proxy_pass http://ctx_up/;` and skipped the regex location. Each case here failed then.
"""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_routes
from ansible_collections.sophia.migrate.plugins.modules import nginx_edge
from support.modules import run_module

MAIN = """\
user nginx;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    # every site lives in conf.d
    include conf.d/*.conf;
}
"""
SITE = """\
upstream mcp_context { server mcp-context:8080; keepalive 16; }
upstream mcp_research { server mcp-research:8080; }
map $http_upgrade $connection_upgrade { default upgrade; '' close; }

server {
    listen 80;
    server_name www.sophia-intel.ai;
    location /.well-known/acme-challenge/ { root /var/www/certbot; }
    location / { return 301 https://$host$request_uri; }
}

server {
    listen 443 ssl;
    server_name www.sophia-intel.ai;
    client_max_body_size 50m;
    location / {
        proxy_pass http://sophia-dashboard:3000;  # the dashboard
    }
    location /api/context/ {
        proxy_set_header Host $host;
        proxy_pass http://mcp_context/;
    }
    location /api/research {
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_pass http://mcp_research;
    }
    location ~ ^/api/agents/(.*)$ {
        proxy_pass http://mcp-agents:8007;
    }
}
"""
ROUTES = [
    {"name": "www-root", "host": "www.sophia-intel.ai", "path": "/", "splitter": "172.17.0.1:9101"},
    {"name": "www-api-context", "host": "www.sophia-intel.ai", "path": "/api/context", "splitter": "172.17.0.1:9103"},
    {"name": "www-api-research", "host": "www.sophia-intel.ai", "path": "/api/research", "splitter": "172.17.0.1:9102"},
    {"name": "www-api-agents", "host": "www.sophia-intel.ai", "location": "~ ^/api/agents/(.*)$",
     "splitter": "172.17.0.1:9108"},
]


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "nginx.conf").write_text(MAIN)
    (tmp_path / "conf.d" / "www.conf").write_text(SITE)
    (tmp_path / "conf.d" / "www.conf").chmod(0o640)
    return tmp_path


def edge(capsys, tree, routes=None, check_mode=False, **extra):
    return run_module(nginx_edge, {"config": str(tree / "nginx.conf"), "routes": routes or ROUTES, **extra}, capsys,
                      check_mode=check_mode)


def test_every_route_found_in_the_included_file_and_only_that_file_written(capsys, tree):
    res = edge(capsys, tree)
    assert res["changed"] and not res.get("failed"), res
    site = str(tree / "conf.d" / "www.conf")
    assert res["files"] == [site]
    assert (tree / "nginx.conf").read_text() == MAIN
    text = (tree / "conf.d" / "www.conf").read_text()
    # the URI part stays: the splitter receives the path the upstream received (prefix stripped for context)
    assert "proxy_pass http://172.17.0.1:9103/;" in text
    assert "proxy_pass http://172.17.0.1:9102;" in text and "proxy_pass http://172.17.0.1:9108;" in text
    assert "proxy_pass http://172.17.0.1:9101;  # the dashboard" in text
    # the old target is recorded once per location, indented like the proxy_pass
    assert "        set $sophia_migrate_compose_upstream http://mcp_context/;\n        proxy_pass" in text
    assert text.count("$sophia_migrate_compose_upstream") == 4
    # nothing else moved: removing the edits gives the original bytes back
    undone = text
    for route, old in (("9103/", "http://mcp_context/"), ("9102", "http://mcp_research"), ("9108", "http://mcp-agents:8007"),
                       ("9101", "http://sophia-dashboard:3000")):
        undone = undone.replace(f"        set $sophia_migrate_compose_upstream {old};\n", "")
        undone = undone.replace(f"http://172.17.0.1:{route}", old, 1)
    assert undone == SITE
    assert stat.S_IMODE(os.stat(site).st_mode) == 0o640
    assert {r["name"]: (r["before"], r["after"]) for r in res["routes"]}["www-api-context"] == (
        "http://mcp_context/", "http://172.17.0.1:9103/")
    assert list(res["backups"]) == [site] and Path(res["backups"][site]).read_text() == SITE


def test_second_run_changes_nothing_and_a_new_splitter_keeps_the_first_record(capsys, tree):
    edge(capsys, tree)
    again = edge(capsys, tree)
    assert not again["changed"] and again["files"] == [] and "backups" not in again
    moved = [{**r, "splitter": "127.0.0.1:" + r["splitter"].split(":")[1]} for r in ROUTES]
    res = edge(capsys, tree, moved)
    text = (tree / "conf.d" / "www.conf").read_text()
    assert res["changed"] and text.count("$sophia_migrate_compose_upstream") == 4
    assert "set $sophia_migrate_compose_upstream http://mcp_context/;" in text and "http://127.0.0.1:9103/;" in text


def test_nginx_routes_reads_the_compose_upstream_back_after_the_edit(tree, capsys):
    before = _nginx_routes.parse_routes(str(tree / "nginx.conf"))
    edge(capsys, tree)
    after = _nginx_routes.parse_routes(str(tree / "nginx.conf"))
    assert _upstreams(after) == _upstreams(before)


def _upstreams(result):
    return {x["path"]: x["upstreams"] for x in result["routes"]}


def test_check_mode_writes_nothing_and_shows_the_diff(capsys, tree):
    res = run_module(nginx_edge, {"config": str(tree / "nginx.conf"), "routes": ROUTES, "_ansible_diff": True},
                     capsys, check_mode=True)
    assert res["changed"] and (tree / "conf.d" / "www.conf").read_text() == SITE
    assert res["diff"][0]["after"].count("172.17.0.1") == 4 and res["diff"][0]["before"] == SITE
    assert not [p for p in os.listdir(tree / "conf.d") if p != "www.conf"]


@pytest.mark.parametrize(("route", "needle"), [
    ({"name": "gone", "host": "www.sophia-intel.ai", "path": "/api/missing", "splitter": "h:1"}, "found 0 (none)"),
    ({"name": "other-host", "host": "api.sophia-intel.ai", "path": "/", "splitter": "h:1"}, "found 0"),
])
def test_a_route_not_found_refuses_everything_naming_route_and_files(capsys, tree, route, needle):
    res = edge(capsys, tree, [ROUTES[1], route])
    assert res["failed"] and needle in res["msg"] and route["name"] in res["msg"]
    assert str(tree / "conf.d" / "www.conf") in res["msg"] and str(tree / "nginx.conf") in res["msg"]
    assert (tree / "conf.d" / "www.conf").read_text() == SITE


def test_a_route_found_twice_is_refused(capsys, tree):
    (tree / "conf.d" / "copy.conf").write_text(SITE.split("server {", 1)[0].replace("upstream mcp_", "upstream x_")
                                               + "server { listen 8443; server_name www.sophia-intel.ai;"
                                               " location /api/context { proxy_pass http://x_context; } }\n")
    res = edge(capsys, tree, [ROUTES[1]])
    assert res["failed"] and "found 2" in res["msg"] and "copy.conf:" in res["msg"]
    assert (tree / "conf.d" / "www.conf").read_text() == SITE


@pytest.mark.parametrize(("target", "needle"), [
    ("$backend", "uses a variable"),
    ("http://unix:/run/app.sock:", "not an http(s) address"),
])
def test_targets_that_cannot_be_re_pointed_are_refused(capsys, tree, target, needle):
    (tree / "conf.d" / "www.conf").write_text(SITE.replace("http://mcp_context/", target))
    res = edge(capsys, tree, [ROUTES[1]])
    assert res["failed"] and needle in res["msg"] and "www.conf:" in res["msg"]


def test_failed_validation_puts_every_file_back_and_does_not_reload(capsys, tree):
    marker = tree / "reloaded"
    res = edge(capsys, tree, validate_command=["sh", "-c", "echo 'emerg: bad' >&2; exit 1"],
               reload_command=["touch", str(marker)])
    assert res["failed"] and "emerg: bad" in res["msg"] and "back as it was" in res["msg"]
    assert (tree / "conf.d" / "www.conf").read_text() == SITE and not marker.exists()


def test_validate_then_reload_once(capsys, tree):
    log = tree / "log"
    commands = {"validate_command": f"sh -c 'echo v >> {log}'", "reload_command": ["sh", "-c", f"echo r >> {log}"]}
    res = edge(capsys, tree, **commands)
    assert res["changed"] and log.read_text() == "v\nr\n"
    edge(capsys, tree, **commands)
    assert log.read_text() == "v\nr\n"  # nothing changed: neither validated nor reloaded again


def test_absolute_includes_through_the_path_map(capsys, tmp_path):
    (tmp_path / "sites").mkdir()
    (tmp_path / "nginx.conf").write_text(MAIN.replace("include conf.d/*.conf;", "include /etc/nginx/sites/*.conf;"))
    (tmp_path / "sites" / "www.conf").write_text(SITE)
    missing = edge(capsys, tmp_path, [ROUTES[1]])
    assert missing["failed"] and "found 0" in missing["msg"]
    res = edge(capsys, tmp_path, [ROUTES[1]], path_map={"/etc/nginx": str(tmp_path)})
    assert res["changed"] and res["files"] == [str(tmp_path / "sites" / "www.conf")]


@pytest.mark.parametrize(("routes", "needle"), [
    ([{"name": "x", "path": "/", "splitter": "no-port"}], "not HOST:PORT"),
    ([{"name": "x", "path": "/", "splitter": "h:70000"}], "not HOST:PORT"),
    ([{"name": "x", "splitter": "h:1"}], "give path or location"),
])
def test_bad_options_are_clean_errors(capsys, tree, routes, needle):
    res = edge(capsys, tree, routes)
    assert res["failed"] and needle in res["msg"] and "Module failed" not in res["msg"]


def test_syntax_errors_name_file_and_line(capsys, tree):
    (tree / "conf.d" / "www.conf").write_text(textwrap.dedent("""\
        server {
            server_name www.sophia-intel.ai;
            location /api/context { proxy_pass http://x }
        }
        """))
    res = edge(capsys, tree, [ROUTES[1]])
    assert res["failed"] and "www.conf:3" in res["msg"] and "not terminated" in res["msg"]


def test_each_route_says_how_its_k3s_side_gets_the_client_path_back(capsys, tree):
    """The context location strips /api/context/ (URI part /): the K3s side needs it back; the others strip nothing.
    The same answer in check mode (traffic_shift reads it before it sets up the splitter) and after the edit."""
    for check_mode in (True, False, False):
        res = edge(capsys, tree, check_mode=check_mode)
        got = {r["name"]: (r["k3s_rewrite"], r["k3s_problem"]) for r in res["routes"]}
        assert got == {"www-root": (None, ""), "www-api-context": ({"from": "/", "to": "/api/context/"}, ""),
                       "www-api-research": (None, ""), "www-api-agents": (None, "")}, got


@pytest.mark.parametrize(("location", "target", "rewrite", "problem"), [
    ("/api/context", "http://ctx/", {"from": "/", "to": "/api/context"}, ""),
    ("/api/v1/", "http://ctx/v2/", {"from": "/v2/", "to": "/api/v1/"}, ""),
    ("= /api/ping", "http://ctx/ping", {"from": "/ping", "to": "/api/ping"}, ""),
    ("^~ /api/same/", "http://ctx/api/same/", None, ""),
    ("/api/plain", "http://ctx", None, ""),
])
def test_the_k3s_path_of_each_kind_of_location(capsys, tmp_path, location, target, rewrite, problem):
    server = f"server {{ listen 80; server_name x; location {location} {{ proxy_pass {target}; }} }}"
    (tmp_path / "nginx.conf").write_text("events {}\nhttp { " + server + " }\n")
    route = {"name": "r", "host": "x", "splitter": "127.0.0.1:9", **(
        {"location": location} if " " in location else {"path": location})}
    res = run_module(nginx_edge, {"config": str(tmp_path / "nginx.conf"), "routes": [route]}, capsys, check_mode=True)
    assert not res.get("failed"), res
    assert (res["routes"][0]["k3s_rewrite"], res["routes"][0]["k3s_problem"]) == (rewrite, problem)


def test_a_rewrite_in_the_location_is_named_as_a_problem(capsys, tmp_path):
    (tmp_path / "nginx.conf").write_text(
        "events {}\nhttp { server { listen 80; server_name x;\n"
        "  location /old/ { rewrite ^/old/(.*)$ /new/$1 break; proxy_pass http://up; } } }\n")
    res = run_module(nginx_edge, {"config": str(tmp_path / "nginx.conf"),
                                  "routes": [{"name": "old", "path": "/old", "splitter": "127.0.0.1:9"}]},
                     capsys, check_mode=True)
    entry = res["routes"][0]
    assert entry["k3s_rewrite"] is None
    assert "nginx.conf:3: the location rewrites the path (^/old/(.*)$ /new/$1 break)" in entry["k3s_problem"]
