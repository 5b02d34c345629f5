"""nginx_routes on the classes of real-world input of issue 24: variables, named locations, absolute and glob
includes, stream blocks, syntax errors nginx rejects, and the production nginx-proxy layout."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _nginx_parse, _nginx_routes
from ansible_collections.sophia.migrate.plugins.modules import nginx_routes
from support.modules import run_module

PRODUCTION = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "nginx", "production", "nginx.conf")


def parse(tmp_path, text, **kwargs):
    conf = tmp_path / "site.conf"
    conf.write_text(text)
    return _nginx_routes.parse_routes(str(conf), **kwargs)


def warnings_of(result):
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


# --- variables -------------------------------------------------------------------------------------------------

def test_proxy_pass_variables_set_statically_are_resolved(tmp_path):
    result = parse(tmp_path, """
        server { listen 443 ssl; server_name app.example.com;
            set $upstream_proto http;
            location / {
                set $upstream_app web; set $upstream_port 8080;
                proxy_pass $upstream_proto://$upstream_app:$upstream_port;
            }
            location /api/ { set $api http://api:9000; proxy_pass $api$request_uri; }
        }""")
    routes = {r["path"]: r for r in result["routes"]}
    assert routes["/"]["upstreams"] == ["web:8080"] and routes["/"]["upstream_path"] == ""
    assert routes["/api/"]["upstreams"] == ["api:9000"] and routes["/api/"]["upstream_path"] == ""
    assert result["unsupported"] == []  # the sets that resolve a proxy_pass are understood, not reported


def test_proxy_pass_variable_from_a_map_with_only_a_default(tmp_path):
    result = parse(tmp_path, """
        http {
            map $host $backend { default http://backend:3000; }
            map $host $chosen { default http://a:1; app.example.com http://b:2; }
            server { server_name app.example.com;
                location / { proxy_pass $backend; }
                location /b/ { proxy_pass $chosen; }
            }
        }""")
    assert [(r["path"], r["upstreams"]) for r in result["routes"]] == [("/", ["backend:3000"])]
    (problem,) = result["unsupported"]
    assert problem["directive"] == "proxy_pass $chosen" and "$chosen" in problem["reason"]


def test_proxy_pass_variables_without_a_static_value_are_reported(tmp_path):
    result = parse(tmp_path, """
        server { server_name app.example.com;
            location / { if ($arg_x) { set $u http://x:1; } set $u http://y:2; proxy_pass $u; }
            location /h/ { proxy_pass http://$host:8080; }
            location /p/ { set $u2 http://z:3/fixed; proxy_pass $u2; }
        }""")
    assert result["routes"] == []
    reasons = {u["directive"]: u.get("reason", "") for u in result["unsupported"]}
    assert "$u" in reasons["proxy_pass $u"] and "$host" in reasons["proxy_pass http://$host:8080"]
    assert "replaces the whole request URI" in reasons["proxy_pass $u2"]


def test_a_variable_holding_a_bad_host_never_becomes_an_upstream(tmp_path):
    result = parse(tmp_path, """
        server { server_name app.example.com;
            location / { set $u 'http://a"b:1'; proxy_pass $u; } }""")
    assert result["routes"] == []
    assert [r["kind"] for r in result["rejected"]] == ["proxy_pass"]


# --- named locations -------------------------------------------------------------------------------------------

def test_named_locations_reached_by_try_files_and_error_page_are_followed(tmp_path):
    result = parse(tmp_path, """
        server { listen 443 ssl; server_name app.example.com;
            location / { root /srv/www; try_files $uri $uri/ @app; }
            location /media/ { root /srv/media; error_page 404 = @fallback; }
            location @app { proxy_pass http://app:8000; proxy_read_timeout 120s;
                            proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }
            location @fallback { proxy_pass http://media:9000; }
            location @unused { proxy_pass http://nowhere:1; }
        }""")
    routes = {r["path"]: r for r in result["routes"]}
    assert routes["/"]["upstreams"] == ["app:8000"] and routes["/"]["timeouts"]["read"] == "120s"
    assert routes["/"]["websocket"] is True
    assert routes["/media/"]["upstreams"] == ["media:9000"]
    reasons = {u["directive"]: u.get("reason", "") for u in result["unsupported"]}
    assert "only the fallback @app" in reasons["try_files $uri $uri/ @app"]
    assert "@fallback" in reasons["error_page 404 = @fallback"]
    assert "not reached" in reasons["location @unused"]
    assert not any(u["directive"].startswith("location @app") for u in result["unsupported"])


# --- includes --------------------------------------------------------------------------------------------------

SITE_WITH_ABSOLUTE_INCLUDES = """
server { listen 443 ssl; server_name app.example.com;
    include /etc/letsencrypt/options-ssl-nginx.conf;
    include /config/nginx/proxy.conf;
    location / { proxy_pass http://app:8000; }
}
"""


def test_missing_absolute_includes_are_reported_and_the_rest_is_read(tmp_path):
    # (include_root: an empty copy, so that no file of the machine running the test is read)
    result = parse(tmp_path, SITE_WITH_ABSOLUTE_INCLUDES, include_root=str(tmp_path / "empty"))
    assert [r["upstreams"] for r in result["routes"]] == [["app:8000"]]
    assert [u["include"] for u in result["unresolved_includes"]] == [
        "/etc/letsencrypt/options-ssl-nginx.conf", "/config/nginx/proxy.conf"]
    assert all(u["line"] in (3, 4) and "include_root" in u["reason"] for u in result["unresolved_includes"])


def test_include_root_and_include_map_read_the_copy(tmp_path):
    copy = tmp_path / "hostcopy"
    (copy / "etc" / "letsencrypt").mkdir(parents=True)
    (copy / "etc" / "letsencrypt" / "options-ssl-nginx.conf").write_text("ssl_session_cache shared:le:1m;\n")
    mapped = tmp_path / "swag"
    mapped.mkdir()
    (mapped / "proxy.conf").write_text("client_max_body_size 0;\nadd_header X-Frame-Options SAMEORIGIN;\n")
    result = parse(tmp_path, SITE_WITH_ABSOLUTE_INCLUDES, include_root=str(copy),
                   include_map={"/config/nginx": str(mapped)})
    assert result["unresolved_includes"] == []
    assert result["routes"][0]["client_max_body_size"] == "0"
    (problem,) = result["unsupported"]
    assert problem["directive"].startswith("add_header") and problem["file"] == str(mapped / "proxy.conf")


def test_a_glob_include_that_matches_nothing_is_noted(tmp_path):
    result = parse(tmp_path, "http { include sites-enabled/*; server { location / { proxy_pass http://a:1; } } }")
    (note,) = result["unresolved_includes"]
    assert note["include"] == "sites-enabled/*" and "matches no file" in note["reason"] and note["line"] == 1


def test_module_warns_about_unresolved_includes_and_fails_on_them_when_asked(capsys, tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text(SITE_WITH_ABSOLUTE_INCLUDES)
    empty = str(tmp_path / "empty")
    result = run_module(nginx_routes, {"path": str(conf), "include_root": empty}, capsys)
    assert not result.get("failed") and len(result["routes"]) == 1
    assert sum("options-ssl-nginx.conf" in w for w in warnings_of(result)) == 1
    result = run_module(nginx_routes, {"path": str(conf), "include_root": empty, "fail_on_unsupported": True}, capsys)
    assert result["failed"] and "2 include(s) are unresolved" in result["msg"]
    result = run_module(nginx_routes, {"path": str(conf), "include_map": {"etc": "/x"}}, capsys)
    assert result["failed"] and "include_map" in result["msg"]


# --- stream ----------------------------------------------------------------------------------------------------

def test_stream_blocks_are_reported_with_their_ports(tmp_path, capsys):
    text = """
        stream {
            upstream pg { server db:5432; }
            server { listen 5432; proxy_pass pg; }
            server { listen 53 udp; proxy_pass dns:53; }
        }
        http { server { server_name app.example.com; location / { proxy_pass http://app:80; } } }"""
    result = parse(tmp_path, text)
    assert len(result["routes"]) == 1
    assert [(s["ports"], s["protocol"], s["upstreams"]) for s in result["streams"]] == [
        ([5432], "tcp", ["db:5432"]), ([53], "udp", ["dns:53"])]
    assert all("Ingress" in s["reason"] for s in result["streams"])
    result = run_module(nginx_routes, {"path": str(tmp_path / "site.conf")}, capsys)
    assert sum("stream proxy on tcp port(s) 5432" in w for w in warnings_of(result)) == 1
    # a file with only a stream block is not an empty success
    only = parse(tmp_path, "stream { server { listen 6379; proxy_pass redis:6379; } }")
    assert only["streams"][0]["ports"] == [6379] and only["unsupported"] == []


# --- syntax errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("server {\n location / {\n  proxy_pass http://a:1\n  proxy_set_header Host $host;\n }\n}",
     3, 'invalid number of arguments in "proxy_pass"'),
    ("server {\n listen 80\n server_name a.example;\n}", 2, 'invalid parameter "server_name"'),
    ("server {\n server_name a.example\n location / { proxy_pass http://a:1; }\n}", 2,
     'directive "server_name" is not terminated'),
    ("http;\n", 1, 'directive "http" has no opening'),
    ("server {\n location / { proxy_buffering of; proxy_pass http://a:1; }\n}", 2, 'invalid value "of"'),
    ("server {\n location / { set $x; proxy_pass http://a:1; }\n}", 2, 'arguments in "set"'),
    ("upstream u {\n server a:1 {\n }\n}", 2, 'directive "server" is not terminated'),
])
def test_syntax_errors_nginx_rejects_name_file_and_line(tmp_path, text, line, fragment):
    with pytest.raises(_nginx_parse.NginxConfigError, match=fragment) as err:
        parse(tmp_path, text)
    assert f"site.conf:{line}:" in str(err.value)


def test_module_fails_on_a_syntax_error_with_file_and_line(capsys, tmp_path):
    conf = tmp_path / "site.conf"
    conf.write_text("server {\n location / {\n  proxy_pass http://a:1\n  proxy_buffering off;\n }\n}\n")
    result = run_module(nginx_routes, {"path": str(conf)}, capsys)
    assert result["failed"] and "option 'path'" in result["msg"]
    assert "site.conf:3" in result["msg"] and 'invalid number of arguments in "proxy_pass"' in result["msg"]


# --- production layout -----------------------------------------------------------------------------------------

def test_production_nginx_proxy_layout():
    result = _nginx_routes.parse_routes(PRODUCTION)
    routes = {(r["host"], r["path"]): r for r in result["routes"]}
    assert set(routes) == {("www.sophia-intel.ai", "/"), ("www.sophia-intel.ai", "/api/context/"),
                           ("www.sophia-intel.ai", "/api/research/"), ("api.sophia-intel.ai", "/mcp/context/"),
                           ("api.sophia-intel.ai", "/mcp/research/")}
    assert all(r["tls"] for r in routes.values())
    root = routes[("www.sophia-intel.ai", "/")]
    assert root["upstreams"] == ["dashboard:3000"] and root["websocket"] and root["timeouts"]["read"] == "3600s"
    assert root["client_max_body_size"] == "20m"  # from http
    context = routes[("www.sophia-intel.ai", "/api/context/")]
    assert context["upstream_name"] == "mcp_context" and context["upstream_path"] == "/"  # prefix stripped
    assert context["client_max_body_size"] == "100m" and not context["websocket"]
    research = routes[("www.sophia-intel.ai", "/api/research/")]
    assert research["upstream_path"] == "" and research["buffering"] is False  # URI passed on as it came
    api = routes[("api.sophia-intel.ai", "/mcp/context/")]
    assert api["websocket"] and api["client_max_body_size"] == "50m" and api["upstreams"] == ["mcp-context:8081"]
    (redirect,) = result["redirects"]
    assert redirect["code"] == 301 and set(redirect["hosts"]) == {"www.sophia-intel.ai", "api.sophia-intel.ai"}
    assert [h["location"] for h in result["handled"]] == ["/.well-known/acme-challenge/"]
    (regex,) = result["unsupported"]
    assert regex["directive"].startswith("location ~*") and "http://dashboard" in regex["reason"]
    assert result["rejected"] == result["streams"] == result["unresolved_includes"] == []
    assert result["upstreams"] == {"dashboard": ["dashboard:3000"], "mcp_context": ["mcp-context:8081"],
                                   "mcp_research": ["mcp-research:8080"]}
    certs = {s["names"][0]: s["ssl_certificate"] for s in result["servers"] if s["tls"]}
    assert certs == {"www.sophia-intel.ai": "/etc/letsencrypt/live/www.sophia-intel.ai/fullchain.pem",
                     "api.sophia-intel.ai": "/etc/letsencrypt/live/api.sophia-intel.ai/fullchain.pem"}


# --- what nginx accepts must be read; a file with nothing to route is refused by name ---------------------------

def test_lua_blocks_and_escaped_characters_are_read_as_nginx_reads_them(tmp_path):
    result = parse(tmp_path, """
        http {
            init_by_lua_block { print("a brace in a string {") }
            server { server_name app.example.com;
                location /\\{x\\} { return 200; }
                location / { access_by_lua_block { if ngx.var.x then return end -- a } in a comment
                             }
                             proxy_pass http://app:80; }
            }
        }""")
    assert [r["upstreams"] for r in result["routes"]] == [["app:80"]]
    directives = [u["directive"] for u in result["unsupported"]]
    assert any(d.startswith("init_by_lua_block") for d in directives)
    assert any(d.startswith("access_by_lua_block") for d in directives)
    assert any(d == "location /\\{x\\}" for d in directives)


def test_a_configuration_without_server_blocks_is_refused_not_an_empty_success(tmp_path, capsys):
    conf = tmp_path / "site.conf"
    conf.write_text("http {\n map $a $b { default 1; }\n include /nonexistent-sophia-test/sites-enabled/*;\n}\n")
    with pytest.raises(_nginx_parse.NginxConfigError, match="no server block") as err:
        _nginx_routes.parse_routes(str(conf))
    assert "/nonexistent-sophia-test/sites-enabled/*" in str(err.value)
    result = run_module(nginx_routes, {"path": str(conf)}, capsys)
    assert result["failed"] and "nothing to route" in result["msg"] and "option 'path'" in result["msg"]


def test_a_regex_location_with_websocket_headers_says_so(tmp_path):
    result = parse(tmp_path, """
        server { server_name chat.example.com;
            location ~ /api/v[0-9]+/websocket$ { proxy_set_header Upgrade $http_upgrade;
                proxy_set_header Connection "upgrade"; proxy_pass http://backend:8065; }
            location / { proxy_pass http://backend:8065; } }""")
    (regex,) = result["unsupported"]
    assert "http://backend:8065 with websocket upgrade headers" in regex["reason"]
    assert result["routes"][0]["websocket"] is False  # the prefix route those requests fall to
