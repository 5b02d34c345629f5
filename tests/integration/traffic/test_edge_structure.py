"""nginx_edge on a real nginx (Debian) in the real-world layout, with a real HAProxy as the splitter: the backend
sees exactly the same request line and headers before and after the edit.

Layout: nginx.conf including conf.d/*.conf; upstream blocks; TLS; `proxy_pass` with a URI part (strips the location
prefix) and without; a regex location; `rewrite ... break`. The echo backend records what it receives; HAProxy
forwards each route's port to it and adds the X-Sophia-Backend header the module's verification looks for. Before
the structural edit existed, the regex edit of this layout found no route (nothing reached the splitter) and, on the
included file, dropped the URI part so /api/context/items reached the backend as /api/context/items, not /items.
"""

from __future__ import annotations

import http.server
import json
import pathlib
import ssl
import subprocess
import textwrap
import threading
import urllib.request

import pytest
from traffic_support import Nginx, free_port, wait_port

from ansible_collections.sophia.migrate.plugins.modules import nginx_edge
from support.modules import run_module

REQUESTS = [
    ("/api/context/items?q=1&x=%2F", {"X-Test": "a"}),
    ("/api/research/search/deep?page=2", {"X-Test": "b"}),
    ("/api/research", {"X-Test": "c"}),
    ("/api/agents/run/7?verbose", {"X-Test": "d"}),
    ("/old/thing?keep=yes", {"X-Test": "e"}),
    ("/dashboard/page", {"X-Test": "f"}),
]
ROUTES = [("www-root", "/", None), ("ctx", "/api/context", None), ("research", "/api/research", None),
          ("agents", None, "~ ^/api/agents/(.*)$"), ("old", "/old", None)]


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "test": self.headers.get("X-Test"), "host": self.headers.get("Host"),
                           "forwarded": self.headers.get("X-Forwarded-Proto")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stack(tmp_path):
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    backend = echo.server_address[1]
    https = free_port()
    splitters = {name: free_port() for name, _path, _location in ROUTES}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=www.sophia-intel.ai", "-addext", "subjectAltName=DNS:www.sophia-intel.ai",
                    "-keyout", tmp_path / "key.pem", "-out", tmp_path / "cert.pem"], check=True, capture_output=True)
    edge = Nginx(str(tmp_path), "edge", "include conf.d/*.conf;", [https])
    conf = pathlib.Path(edge.dir)
    (conf / "conf.d").mkdir()
    (conf / "conf.d" / "www.conf").write_text(textwrap.dedent(f"""\
        upstream dash_up {{ server 127.0.0.1:{backend}; }}
        upstream ctx_up {{ server 127.0.0.1:{backend}; keepalive 4; }}
        upstream research_up {{ server 127.0.0.1:{backend}; }}
        server {{
            listen 127.0.0.1:{https} ssl;
            server_name www.sophia-intel.ai;
            ssl_certificate {tmp_path}/cert.pem;
            ssl_certificate_key {tmp_path}/key.pem;
            client_max_body_size 20m;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-Proto $scheme;
            location / {{ proxy_pass http://dash_up; }}
            location /api/context/ {{
                proxy_http_version 1.1;
                proxy_set_header Connection "";
                proxy_set_header Host $host;
                proxy_set_header X-Forwarded-Proto $scheme;
                proxy_pass http://ctx_up/;
            }}
            location /api/research {{ proxy_pass http://research_up; }}
            location ~ ^/api/agents/(.*)$ {{ proxy_pass http://127.0.0.1:{backend}; }}
            location /old/ {{
                rewrite ^/old/(.*)$ /new/$1 break;
                proxy_pass http://127.0.0.1:{backend}/ignored/;
            }}
        }}
        """))
    edge.start()
    frontends = "".join(f"""
        frontend {name}
            bind 127.0.0.1:{port}
            default_backend {name}_b
        backend {name}_b
            http-response set-header X-Sophia-Backend compose1
            server compose1 127.0.0.1:{backend}
        """ for name, port in splitters.items())
    (tmp_path / "haproxy.cfg").write_text(textwrap.dedent("""\
        defaults
            mode http
            timeout connect 2s
            timeout client 10s
            timeout server 10s
        """) + textwrap.dedent(frontends))
    haproxy = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")])
    try:
        for port in splitters.values():
            wait_port(port)
        yield {"dir": tmp_path, "conf": conf, "https": https, "splitters": splitters, "nginx": edge.command(),
               "edge": edge}
    finally:
        edge.stop()
        haproxy.terminate()
        haproxy.wait(10)
        echo.shutdown()


def edge_conf(stack) -> str:
    return str(stack["conf"] / "nginx.conf")


def seen(stack) -> list[tuple[dict, str]]:
    ctx = ssl.create_default_context(cafile=str(stack["dir"] / "cert.pem"))
    ctx.check_hostname = False
    out = []
    for path, headers in REQUESTS:
        req = urllib.request.Request(f"https://127.0.0.1:{stack['https']}{path}",
                                     headers={"Host": "www.sophia-intel.ai", **headers})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            out.append((json.loads(resp.read()), resp.headers.get("X-Sophia-Backend") or ""))
    return out


def test_backend_sees_the_same_requests_before_and_after_the_edit(stack, capsys):
    before = seen(stack)
    assert before[0][0]["path"] == "/items?q=1&x=%2F"  # the URI part strips the prefix
    assert before[4][0]["path"] == "/new/thing?keep=yes"  # rewrite ... break wins over the URI part
    assert all(via == "" for _body, via in before)
    routes = [{"name": name, "host": "www.sophia-intel.ai", "splitter": f"127.0.0.1:{stack['splitters'][name]}",
               **({"location": location} if location else {"path": path}),
               **({"verify_path": "/api/agents/x"} if name == "agents" else {})} for name, path, location in ROUTES]
    old = stack["edge"].workers()
    res = run_module(nginx_edge, {
        "config": edge_conf(stack), "routes": routes,
        "validate_command": [*stack["nginx"], "-t", "-q"], "reload_command": [*stack["nginx"], "-s", "reload"],
        "verify_url": f"https://127.0.0.1:{stack['https']}", "ca_path": str(stack["dir"] / "cert.pem"),
    }, capsys)
    assert res["changed"] and not res.get("failed"), res.get("msg")
    assert res["files"] == [str(stack["conf"] / "conf.d" / "www.conf")]
    assert set(res["verified"].values()) == {"compose1"}
    stack["edge"].wait_gone(old)  # the reload is complete: no worker with the old configuration takes a connection
    after = seen(stack)
    assert [body for body, _via in after] == [body for body, _via in before]
    assert all(via == "compose1" for _body, via in after), after


def test_verification_fails_when_the_edge_does_not_go_through_the_splitter(stack, capsys):
    """The file is edited and valid, but nginx is not reloaded: the edge still goes straight to the backend."""
    routes = [{"name": "ctx", "host": "www.sophia-intel.ai", "path": "/api/context",
               "splitter": f"127.0.0.1:{stack['splitters']['ctx']}", "verify_path": "/api/context/x"}]
    res = run_module(nginx_edge, {
        "config": edge_conf(stack), "routes": routes, "timeout": 1,
        "verify_url": f"https://127.0.0.1:{stack['https']}", "ca_path": str(stack["dir"] / "cert.pem"),
    }, capsys)
    assert res["failed"] and "does not send these routes through the splitter: ctx" in res["msg"]
    assert "without the X-Sophia-Backend header" in res["msg"]
