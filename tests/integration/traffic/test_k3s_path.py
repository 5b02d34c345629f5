"""The K3s side of a route receives the client's path when the edge strips the location prefix (real nginx, real
HAProxy, the traffic_shift role).

nginx-proxy's `location /api/context/ { proxy_pass http://ctx/; }` strips `/api/context`: the Compose service and
now the splitter receive `/items`. The K3s ingress routes by the client's path, as F5 NGINX Ingress does for the
Ingresses ingress_certs renders (`nginx.org/rewrites: serviceName=mcp-context rewrite=/` on path `/api/context/`,
here written as the location that annotation produces), and its `/` Ingress is the dashboard. Before the splitter
put the prefix back, every request the walk sent to K3s reached the dashboard: on staging, acknowledged writes
were lost (docs/lab-staging.md). Each backend logs the request line it receives; the test compares them.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import urllib.request

import pytest
from traffic_support import Nginx, free_port, haproxy_available, recap, run_playbook

REQUESTS = ["/api/context/items?q=1&x=%2F", "/api/context/", "/api/research/search/deep?page=2"]


def _service(name: str, port: int, work: str, health: str) -> str:
    return f"""
        server {{
            listen 127.0.0.1:{port};
            location = {health} {{ access_log off; return 200 "ok\\n"; }}
            location / {{ access_log {work}/seen/{name}.log seen; default_type text/plain; return 200 "{name}\\n"; }}
        }}"""


@pytest.fixture
def stack(tmp_path):
    if not haproxy_available():
        pytest.fail("haproxy, nginx, wrk and openssl are required (make setup installs them)")
    work = str(tmp_path)
    os.makedirs(f"{work}/seen")
    p = {k: free_port() for k in ("c_ctx", "c_res", "k_ctx", "k_res", "k_dash", "ingress", "https", "s_ctx", "s_res")}
    services = "log_format seen '$request_uri';\n" + "".join([
        _service("compose-context", p["c_ctx"], work, "/health"),  # served at its root (the edge strips)
        _service("compose-research", p["c_res"], work, "/api/research/health"),
        _service("k3s-context", p["k_ctx"], work, "/health"),
        _service("k3s-research", p["k_res"], work, "/api/research/health"),
        _service("k3s-dashboard", p["k_dash"], work, "/health"),
    ])
    backends = Nginx(work, "services", services, [p[k] for k in ("c_ctx", "c_res", "k_ctx", "k_res", "k_dash")])
    ingress = Nginx(work, "ingress", f"""
        server {{
            listen 127.0.0.1:{p['ingress']};
            location /api/context/ {{ proxy_pass http://127.0.0.1:{p['k_ctx']}/; }}
            location /api/research {{ proxy_pass http://127.0.0.1:{p['k_res']}; }}
            location / {{ proxy_pass http://127.0.0.1:{p['k_dash']}; }}
        }}""", [p["ingress"]])
    tls = f"{work}/tls"
    os.makedirs(tls)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=www.sophia-intel.ai", "-keyout", f"{tls}/key.pem", "-out", f"{tls}/cert.pem"],
                   check=True, capture_output=True)
    edge = Nginx(work, "edge", f"""
        server {{
            listen 127.0.0.1:{p['https']} ssl;
            server_name www.sophia-intel.ai;
            ssl_certificate {tls}/cert.pem;
            ssl_certificate_key {tls}/key.pem;
            location /api/context/ {{ proxy_pass http://127.0.0.1:{p['c_ctx']}/; }}
            location /api/research {{ proxy_pass http://127.0.0.1:{p['c_res']}; }}
        }}""", [p["https"]])
    for server in (backends, ingress, edge):
        server.start()
    cfg, pid, sock = f"{work}/haproxy.cfg", f"{work}/haproxy.pid", f"{work}/admin.sock"
    variables = {
        "traffic_shift_routes": [
            {"name": "ctx", "host": "www.sophia-intel.ai", "path": "/api/context", "port": p["s_ctx"],
             "health_path": "/health", "compose": [f"127.0.0.1:{p['c_ctx']}"], "k3s": [f"127.0.0.1:{p['ingress']}"]},
            {"name": "res", "host": "www.sophia-intel.ai", "path": "/api/research", "port": p["s_res"],
             "health_path": "/api/research/health", "compose": [f"127.0.0.1:{p['c_res']}"],
             "k3s": [f"127.0.0.1:{p['ingress']}"]},
        ],
        "traffic_shift_steps": [0, 100],
        "traffic_shift_hold_seconds": 1,
        "traffic_shift_gate": {"interval": 0.5, "probes": [
            {"name": "ingress", "type": "http", "url": f"http://127.0.0.1:{p['ingress']}/api/context/health"}]},
        "traffic_shift_splitter_install": False,
        "traffic_shift_splitter_config": cfg,
        "traffic_shift_splitter_socket": sock,
        "traffic_shift_splitter_state_file": f"{work}/state/server-state",
        "traffic_shift_splitter_service": "",
        "traffic_shift_splitter_reload_command": (
            f"sh -c 'if [ -s {pid} ] && kill -0 \"$(cat {pid})\" 2>/dev/null; then kill -USR2 \"$(cat {pid})\"; "
            f"else haproxy -W -D -f {cfg} -p {pid}; fi'"),
        "traffic_shift_edge_config": edge.conf,
        "traffic_shift_edge_validate_command": " ".join(edge.command("-t", "-q")),
        "traffic_shift_edge_reload_command": " ".join(edge.command("-s", "reload")),
        "traffic_shift_ledger_path": f"{work}/ledger.json",
    }
    yield {"work": work, "ports": p, "vars": variables, "cfg": cfg, "edge": edge}
    if os.path.exists(pid):
        subprocess.run(["sh", "-c", f"kill $(cat {pid})"], check=False, capture_output=True)
    for server in (edge, ingress, backends):
        server.stop()


def _send(stack) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    for path in REQUESTS:
        req = urllib.request.Request(f"https://127.0.0.1:{stack['ports']['https']}{path}",
                                     headers={"Host": "www.sophia-intel.ai"})
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            assert resp.status == 200


def _seen(stack) -> dict[str, list[str]]:
    out = {}
    for name in ("compose-context", "compose-research", "k3s-context", "k3s-research", "k3s-dashboard"):
        path = f"{stack['work']}/seen/{name}.log"
        out[name] = []
        if os.path.exists(path):
            with open(path) as handle:
                out[name] = handle.read().split()
            os.unlink(path)
    for server in ("services",):
        subprocess.run(["sh", "-c", f"kill -USR1 $(cat {stack['work']}/{server}/nginx.pid)"], check=True)
    return out


def test_each_side_receives_the_path_it_expects(stack):
    res = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 0})
    assert res.returncode == 0, res.stdout[-4000:]
    with open(stack["cfg"]) as handle:
        config = handle.read()
    # the stripping route's K3s server goes through the hop that puts the prefix back; the other route's does not
    assert "listen route_ctx_k3s1" in config and "replace-path '^/(.*)' '/api/context/\\1'" in config
    assert "route_res_k3s1" not in config
    _send(stack)
    before = _seen(stack)
    assert before["compose-context"] == ["/items?q=1&x=%2F", "/"]
    assert before["compose-research"] == ["/api/research/search/deep?page=2"]

    res = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 100})
    assert res.returncode == 0, res.stdout[-4000:]
    _send(stack)
    after = _seen(stack)
    # K3s: the ingress received the client's path and routed it to the route's own service, which received the
    # path the Compose service received before; nothing reached the dashboard
    assert after["k3s-context"] == before["compose-context"], after
    assert after["k3s-research"] == before["compose-research"], after
    assert after["k3s-dashboard"] == [], after
    assert after["compose-context"] == after["compose-research"] == [], after
    # and a second run changes nothing
    again = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 100})
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-3000:]


def test_a_location_that_rewrites_the_path_is_refused_before_anything_changes(stack):
    with open(stack["edge"].conf) as handle:
        text = handle.read()
    with open(stack["edge"].conf, "w") as handle:
        handle.write(text.replace("location /api/research {", "location /api/research { rewrite ^/api/research/(.*)$ "
                                  "/v2/$1 break;"))
    res = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_target_weight": 0})
    assert res.returncode != 0
    assert "route res" in res.stdout and "rewrites the path" in res.stdout, res.stdout[-3000:]
    assert "nothing was changed" in res.stdout
    assert not os.path.exists(stack["cfg"])


def test_a_declared_k3s_rewrite_that_disagrees_with_the_edge_is_refused(stack):
    routes = [dict(r) for r in stack["vars"]["traffic_shift_routes"]]
    routes[0]["k3s_rewrite"] = {"from": "/", "to": "/api/ctx/"}
    res = run_playbook(stack["work"], {**stack["vars"], "traffic_shift_routes": routes,
                                       "traffic_shift_target_weight": 0})
    assert res.returncode != 0
    assert "disagrees with the edge" in res.stdout and "/api/context/" in res.stdout, res.stdout[-3000:]
    assert not os.path.exists(stack["cfg"])
