"""nginx_routes: the Sophia nginx-proxy config and real-world configs parsed into the route list."""

from __future__ import annotations

import os
import re

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_ingress, _nginx_parse, _nginx_routes
from ansible_collections.sophia.migrate.plugins.modules import nginx_routes
from support.modules import run_module

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "nginx")
SOPHIA = os.path.join(FIXTURES, "sophia", "nginx.conf")


@pytest.fixture(scope="module")
def sophia():
    return _nginx_routes.parse_routes(SOPHIA)


def by_name(result):
    return {r["name"]: r for r in result["routes"]}


def test_sophia_routes_and_keys(sophia):
    routes = by_name(sophia)
    assert set(routes) == {"www-root", "www-api-research", "www-api-context", "www-api-memory", "www-api-mcp",
                           "www-api-orchestrator", "api-root", "api-v1-embeddings"}
    research = routes["www-api-research"]
    assert research["host"] == "www.sophia-intel.ai" and research["path"] == "/api/research"
    assert research["tls"] is True and research["upstreams"] == ["mcp-research:8080"]
    assert research["websocket"] is False and research["client_max_body_size"] == "10m"
    assert research["timeouts"] == {"read": "300s", "send": "300s", "connect": "5s"}
    assert sophia["hosts"] == ["api.sophia-intel.ai", "www.sophia-intel.ai"]
    for route in sophia["routes"]:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", route["name"]) and len(route["name"]) <= 63


def test_dashboard_websocket_and_inheritance(sophia):
    routes = by_name(sophia)
    assert routes["www-root"]["upstreams"] == ["sophia-dashboard:3000"] and routes["www-root"]["websocket"] is True
    assert routes["www-api-mcp"]["websocket"] is True and routes["www-api-mcp"]["buffering"] is False
    assert routes["www-api-mcp"]["upstreams"] == ["mcp-gateway-1:8090", "mcp-gateway-2:8090"]
    assert routes["www-api-context"]["client_max_body_size"] == "50m"
    assert routes["www-api-memory"]["timeouts"]["read"] == "3600s" and routes["www-api-memory"]["upstream_path"] == "/"
    assert routes["api-root"]["client_max_body_size"] == "100m"
    assert routes["api-v1-embeddings"]["timeouts"]["connect"] == "2s"
    assert routes["api-v1-embeddings"]["upstreams"] == ["mcp-embeddings:8085"]


def test_plain_http_twin_is_redirect_and_acme_is_handled(sophia):
    assert all(r["tls"] for r in sophia["routes"])
    assert any(r["code"] == 301 and "www.sophia-intel.ai" in r["hosts"] for r in sophia["redirects"])
    assert sophia["handled"][0]["location"] == "/.well-known/acme-challenge/"
    certs = {s["names"][0]: s["ssl_certificate"] for s in sophia["servers"] if s["tls"]}
    assert certs["www.sophia-intel.ai"].endswith("www.sophia-intel.ai/fullchain.pem")


def test_unsupported_reported_with_file_line_context(sophia):
    found = {(os.path.basename(u["file"]), u["directive"].split()[0]) for u in sophia["unsupported"]}
    assert ("sophia-www.conf", "sub_filter") in found
    assert ("sophia-www.conf", "add_header") in found
    assert ("sophia-www.conf", "location") in found  # regex location and the return-only healthz
    assert ("sophia-api.conf", "proxy_set_header") in found  # custom header X-Api-Client
    sub = next(u for u in sophia["unsupported"] if u["directive"].startswith("sub_filter"))
    assert sub["line"] == 82 and sub["context"] == "server www.sophia-intel.ai location /api/orchestrator"
    # Nothing translated is reported.
    translated = ("proxy_pass", "client_max_body_size", "listen")
    assert not any(u["directive"].startswith(translated) for u in sophia["unsupported"])


def test_grafana_snippet_websocket_and_default_server():
    result = _nginx_routes.parse_routes(os.path.join(FIXTURES, "realworld", "grafana.conf"))
    routes = by_name(result)
    assert routes["default-grafana-api-live"]["websocket"] is True
    assert routes["default-grafana"]["websocket"] is False and routes["default-grafana"]["host"] == ""
    assert routes["default-grafana"]["upstreams"] == ["localhost:3000"]
    assert routes["default-grafana"]["client_max_body_size"] == "1m"  # nginx default


def test_jenkins_numbers_without_units_and_unsupported():
    result = _nginx_routes.parse_routes(os.path.join(FIXTURES, "realworld", "jenkins.conf"))
    (route,) = result["routes"]
    assert route["timeouts"] == {"read": "90s", "send": "90s", "connect": "90s"} and route["websocket"] is True
    directives = [u["directive"].split()[0] for u in result["unsupported"]]
    assert "if" in directives and "proxy_request_buffering" in directives and "ignore_invalid_headers" in directives


def test_certbot_include_and_limits():
    result = _nginx_routes.parse_routes(os.path.join(FIXTURES, "realworld", "certbot", "nginx.conf"))
    assert {r["path"] for r in result["routes"]} == {"/", "/api/", "/admin"}
    assert all(r["tls"] for r in result["routes"])
    directives = {u["directive"].split()[0] for u in result["unsupported"]}
    assert {"limit_req_zone", "limit_req", "auth_basic", "auth_basic_user_file", "if"} <= directives
    assert not any(u["directive"].startswith("ssl_") for u in result["unsupported"])  # from the included file


@pytest.mark.parametrize(("text", "fragment"), [
    ("server { listen 80;", "not closed"),
    ("server { listen 80; }}", "unexpected '}'"),
    ('server { server_name "a; }', "unterminated"),
    ("server { listen 80 }", "after directive 'listen'"),
])
def test_syntax_errors_name_file_and_line(tmp_path, text, fragment):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    with pytest.raises(_nginx_parse.NginxConfigError, match=fragment) as err:
        _nginx_routes.parse_routes(str(conf))
    assert "bad.conf" in str(err.value)


def test_include_missing_and_loop(tmp_path):
    (tmp_path / "a.conf").write_text("include b.conf;\n")
    (tmp_path / "b.conf").write_text("include a.conf;\n")
    with pytest.raises(_nginx_parse.NginxConfigError, match="include loop"):
        _nginx_routes.parse_routes(str(tmp_path / "a.conf"))
    (tmp_path / "c.conf").write_text("include nothere.conf;\n")
    with pytest.raises(_nginx_parse.NginxConfigError, match=r"nothere\.conf"):
        _nginx_routes.parse_routes(str(tmp_path / "c.conf"))


def test_route_names_unique_and_bounded(tmp_path):
    long = "/" + "x" * 80
    (tmp_path / "n.conf").write_text(
        "server { server_name a.example; location /api-x { proxy_pass http://u:1; }"
        " location /api/x { proxy_pass http://u:1; } location = /api/x { proxy_pass http://u:2; }"
        f" location {long} {{ proxy_pass https://u; }} }}")
    result = _nginx_routes.parse_routes(str(tmp_path / "n.conf"))
    names = [r["name"] for r in result["routes"]]
    assert len(names) == len(set(names)) == 4
    assert all(len(n) <= 63 for n in names)
    assert next(r for r in result["routes"] if r["path"] == long)["upstreams"] == ["u:443"]
    assert next(r for r in result["routes"] if r["path_type"] == "Exact")["upstreams"] == ["u:2"]


def test_module_filters_hosts_and_fails_cleanly(capsys, tmp_path):
    result = run_module(nginx_routes, {"path": SOPHIA, "hosts": ["api.sophia-intel.ai"]}, capsys)
    assert result["changed"] is False and {r["host"] for r in result["routes"]} == {"api.sophia-intel.ai"}
    result = run_module(nginx_routes, {"path": SOPHIA, "fail_on_unsupported": True}, capsys)
    assert result["failed"] and "not translated" in result["msg"] and result["unsupported"]
    result = run_module(nginx_routes, {"path": str(tmp_path / "missing.conf")}, capsys)
    assert result["failed"] and "option 'path'" in result["msg"] and "missing.conf" in result["msg"]


@pytest.mark.parametrize(("value", "expected"), [("90", 90), ("5s", 5), ("1h", 3600), ("1m30s", 90), ("500ms", 1),
                                                 ("bogus", 60)])
def test_seconds(value, expected):
    assert _nginx_ingress.seconds(value) == expected


def test_a_location_behind_the_splitter_is_read_from_its_recorded_target(tmp_path):
    before = ("server { listen 443 ssl; server_name www.example; location /api/context/ {"
              " proxy_set_header Host $host; proxy_pass http://mcp-context:8080; } }")
    # as traffic_shift's edge edit leaves it: the old target recorded, proxy_pass on the splitter
    after = before.replace("proxy_pass http://mcp-context:8080;",
                           "set $sophia_migrate_compose_upstream http://mcp-context:8080; proxy_pass http://127.0.0.1:9103;")
    routes = {}
    for name, text in (("before", before), ("after", after)):
        (tmp_path / f"{name}.conf").write_text(text)
        routes[name] = _nginx_routes.parse_routes(str(tmp_path / f"{name}.conf"))
    (b,), (a,) = routes["before"]["routes"], routes["after"]["routes"]
    assert a["upstreams"] == b["upstreams"] == ["mcp-context:8080"]
    assert (b["split_by"], a["split_by"]) == ("", "http://127.0.0.1:9103")
    assert {k: v for k, v in a.items() if k not in ("split_by", "source")} == \
        {k: v for k, v in b.items() if k not in ("split_by", "source")}
    assert routes["after"]["unsupported"] == []  # the record is understood, not reported
    # any other `set` is still reported
    (tmp_path / "other.conf").write_text(after.replace("$sophia_migrate_compose_upstream", "$other"))
    other = _nginx_routes.parse_routes(str(tmp_path / "other.conf"))
    assert other["routes"][0]["upstreams"] == ["127.0.0.1:9103"]
    assert other["unsupported"][0]["directive"].startswith("set $other")


def test_a_broken_record_of_the_edge_edit_is_reported_by_name(tmp_path):
    (tmp_path / "n.conf").write_text("server { server_name a.example; location /api/x {"
                                     " set $sophia_migrate_compose_upstream mcp-x-8080;"
                                     " proxy_pass http://127.0.0.1:9102; } }")
    result = _nginx_routes.parse_routes(str(tmp_path / "n.conf"))
    assert result["routes"] == []  # no route from a target that cannot be read, and not the splitter either
    (problem,) = result["unsupported"]
    assert problem["directive"].startswith("set $sophia_migrate_compose_upstream")
    assert "not understood" in problem["reason"]


HOSTILE = os.path.join(FIXTURES, "hostile", "nginx.conf")


def test_hostile_names_and_paths_never_become_routes():
    result = _nginx_routes.parse_routes(HOSTILE)
    assert {(r["host"], r["path"]) for r in result["routes"]} == {
        ("ok.example.com", "/"), ("ok.example.com", "/api/"), ("*.wild.example.com", "/")}
    assert result["hosts"] == ["*.wild.example.com", "ok.example.com"]
    rejected = {(r["kind"], r["value"]): r for r in result["rejected"]}
    injected = next(v for k, v in rejected if k == "server_name" and "\n" in v)
    assert "kube-dns" in injected and injected.startswith("www.example.com\n")
    assert {v for k, v in rejected if k == "server_name"} == {
        injected, "~^(?<tenant>.+)\\.example\\.net$", "app.*", ".example.org", "10.0.0.1"}
    assert {v for k, v in rejected if k == "location"} == {
        "/api/\tx", next(v for k, v in rejected if k == "location" and v.startswith("/admin\n"))}
    assert [v for k, v in rejected if k == "proxy_pass"] == ['http://app:8000/x" injected: "y']
    # each names file, line and server
    regex = rejected[("server_name", "~^(?<tenant>.+)\\.example\\.net$")]
    assert regex["file"] == os.path.abspath(HOSTILE) and regex["line"] == 24
    assert "regular-expression" in regex["reason"]
    assert rejected[("location", "/api/\tx")]["line"] == 13
    assert rejected[("location", "/api/\tx")]["server"].startswith('server "www.example.com\\n')
    assert "leading '*.'" in rejected[("server_name", "app.*")]["reason"]
    assert "IP address" in rejected[("server_name", "10.0.0.1")]["reason"]
    # nothing of the injected text reaches any route field
    assert "kube-dns" not in repr(result["routes"]) and "injected" not in repr(result["routes"])


@pytest.mark.parametrize(("name", "host"), [
    ("_", ""), ("", ""), ("www.example.com", "www.example.com"), ("WWW.Example.COM", "www.example.com"),
    ("*.example.com", "*.example.com"), ("localhost", "localhost"), ("a" * 63 + ".example", "a" * 63 + ".example"),
])
def test_valid_server_names(name, host):
    assert _nginx_ingress.ingress_host(name) == (host, "")


@pytest.mark.parametrize("name", [
    "~^www\\.example\\.com$", "app.*", "www.*.example.com", "*", "*.", "**.example.com", "www.example.com.",
    ".example.com", "$host", "10.0.0.1", "::1", "a b.example", "a\nb", "a\x00b", "under_score.example",
    "-lead.example", "trail-.example", "a" * 64 + ".example", ".".join(["a" * 60] * 5), "exämple.com", "a..b",
])
def test_invalid_server_names(name):
    host, problem = _nginx_ingress.ingress_host(name)
    assert host == "" and problem


@pytest.mark.parametrize("path", ["/", "/api/", "/api/v1", "/a-b_c.d~e", "/%20x", "/$1", "/a:b@c"])
def test_valid_ingress_paths(path):
    assert _nginx_ingress.ingress_path_problem(path) == ""


@pytest.mark.parametrize("path", ["api", "", "/a b", "/a\tb", "/a\nb", "/a\rb", "/a\x07b", "/a\x7fb", "/é",
                                  "/a{b", "/a}b", "/a;b", "/a\\b", '/a"b', "/a'b", "//a", "/a/./b", "/a/../b",
                                  "/a%2fb", "/a%2Fb", "/a/.", "/a/..", "/a\u2028b"])
def test_invalid_ingress_paths(path):
    assert _nginx_ingress.ingress_path_problem(path)


def test_module_warns_about_and_fails_on_rejected(capsys):
    result = run_module(nginx_routes, {"path": HOSTILE}, capsys)
    assert not result.get("failed") and len(result["rejected"]) == 8
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]
    assert len(warnings) == 8
    assert any('server_name "app.*" is not carried over' in w and "hostile/nginx.conf:24" in w for w in warnings)
    assert all("\n" not in w for w in warnings)  # values JSON-quoted
    result = run_module(nginx_routes, {"path": HOSTILE, "fail_on_unsupported": True}, capsys)
    assert result["failed"] and "8 host name(s) or path(s) are rejected" in result["msg"]
    result = run_module(nginx_routes, {"path": HOSTILE, "hosts": ["OK.example.com"]}, capsys)
    assert {r["host"] for r in result["routes"]} == {"ok.example.com"}
