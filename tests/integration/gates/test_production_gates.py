"""The production traffic gate (inventories/production/group_vars/edge.yml) decides right against a real Prometheus.

Debian's Prometheus scrapes, every second, a stand-in for the F5 NGINX Ingress Controller's metrics endpoint that
serves exactly the names and label sets the controller exports (nginx/kubernetes-ingress @ 0eb3072d, chart 2.7.0):
- internal/metrics/collectors/latency.go: the histogram nginx_ingress_controller_upstream_server_response_latency_ms
  (millisecond buckets) with the labels upstream, server, code + service, resource_type, resource_name,
  resource_namespace (cmd/nginx-ingress/main.go) + pod_name, and the constant label class (the ingress class);
- nginx-prometheus-exporter's stub_status collector under nginx_ingress_nginx_ (http_requests_total, connections_*,
  up), which has no status code.
The counters grow at rates the test sets per scenario; each scenario gets its own Prometheus (an empty TSDB), so
the production queries run unchanged, 2-minute windows included (rate() then reads low, as the window holds
seconds of samples; ratios are exact). The probes are production's, read from edge.yml
and rendered by Ansible's templar with the Prometheus URL pointing at the test's; they run through the health_gate
module, one round each:
- healthy traffic passes; 5xx above 1% fails; no 5xx series at all reads an error ratio of 0 and passes;
- no requests fail: neither a controller that never proxied anything (no series) nor one whose counters stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import yaml

from ansible_collections.sophia.migrate.plugins.modules import health_gate
from support.modules import run_module
from support.servers import free_port, prometheus_server

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EDGE = os.path.join(ROOT, "inventories", "production", "group_vars", "edge.yml")
HISTOGRAM = "nginx_ingress_controller_upstream_server_response_latency_ms"
BUCKETS = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000, 20000,
           30000, 40000, 50000]  # latencyBucketsMilliSeconds in latency.go
LATENCY_MS = 15.0

_RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
value, variables = json.load(sys.stdin)
templar = Templar(loader=DataLoader(), variables=variables)
sys.stdout.write(templar.template(trust_as_template(json.dumps(value))))
"""


def production_probes(prometheus_url):
    """The production gate's probes, rendered as Ansible would (in a child process: importing the templar here
    would switch the in-process module runs to controller mode)."""
    with open(EDGE, encoding="utf-8") as handle:
        gate = yaml.safe_load(handle)["traffic_shift_gate"]
    with open(EDGE, encoding="utf-8") as handle:
        timing = yaml.safe_load(handle)["sophia_gate_timing"]  # production's: 2-minute windows
    variables = {"sophia_k3s_prometheus_url": prometheus_url,
                 "sophia_gate_timing": timing}
    res = subprocess.run([sys.executable, "-c", _RENDER], input=json.dumps([gate["probes"], variables]),
                         capture_output=True, text=True, check=True, timeout=120)
    return json.loads(res.stdout)


def labels(code, service="mcp-research", route="www-api-research", pod="mcp-research-7d9f8b6c4-x2x9q"):
    return {
        "class": "nginx",
        "code": code,
        "pod_name": pod,
        "resource_name": route,
        "resource_namespace": "sophia",
        "resource_type": "ingress",
        "server": "10.42.0.15:8080",
        "service": service,
        "upstream": f"sophia-{route}-www.sophia-intel.ai-{service}-8080",
    }


def render_labels(values, extra=None):
    items = {**values, **(extra or {})}
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(items.items())) + "}"


class ControllerStandIn:
    """The controller's /metrics: `series` maps a label set (code, service, ...) to requests per second; the
    histogram counters are rate x seconds since start (frozen at `frozen` when set)."""

    def __init__(self, series, frozen=False):
        self.series = series
        self.start = time.time() - 60  # as if the controller had been counting for a minute already
        self.frozen_at = time.time() if frozen else None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                return

            def do_GET(self):
                body = stand_in.exposition().encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # Prometheus stopping mid-scrape
                    self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.target = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def exposition(self):
        elapsed = (self.frozen_at or time.time()) - self.start
        lines = [
            "# HELP nginx_ingress_nginx_http_requests_total Total http requests",
            "# TYPE nginx_ingress_nginx_http_requests_total counter",
            # stub_status counts every request, the readiness probe's and its own scrapes' too: never zero
            f'nginx_ingress_nginx_http_requests_total{{class="nginx"}} {int(elapsed * 2)}',
            "# HELP nginx_ingress_nginx_up Status of the last metric scrape",
            "# TYPE nginx_ingress_nginx_up gauge",
            'nginx_ingress_nginx_up{class="nginx"} 1',
            "# HELP nginx_ingress_nginx_connections_active Active client connections",
            "# TYPE nginx_ingress_nginx_connections_active gauge",
            'nginx_ingress_nginx_connections_active{class="nginx"} 1',
        ]
        if self.series:
            lines += [
                f"# HELP {HISTOGRAM} Bucketed response times from when NGINX establishes a connection to an upstream "
                "server to when the last byte of the response body is received by NGINX",
                f"# TYPE {HISTOGRAM} histogram",
            ]
        for series, per_second in self.series:
            count = round(per_second * elapsed, 3)  # not rounded to whole requests: exact rates in a few seconds
            for le in BUCKETS:
                lines.append(f"{HISTOGRAM}_bucket{render_labels(series, {'le': str(le)})} "
                             f"{count if le >= LATENCY_MS else 0}")
            lines.append(f"{HISTOGRAM}_bucket{render_labels(series, {'le': '+Inf'})} {count}")
            lines.append(f"{HISTOGRAM}_sum{render_labels(series)} {count * LATENCY_MS}")
            lines.append(f"{HISTOGRAM}_count{render_labels(series)} {count}")
        return "\n".join(lines) + "\n"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def gate(series, capsys, frozen=False):
    """Production's probes, one round, against a fresh Prometheus scraping the stand-in; the module's result and
    what each query read."""
    stand_in = ControllerStandIn(series, frozen=frozen)
    port = free_port()
    try:
        with prometheus_server({"ingress-controller": [stand_in.target]}, port=port) as url:
            # rate() needs two samples in its window: wait for three scrapes of the controller
            deadline = time.monotonic() + 30
            while True:
                got = requests.get(f"{url}/api/v1/query", timeout=5, params={
                    "query": 'count_over_time(nginx_ingress_nginx_up{job="ingress-controller"}[2m])'}).json()
                if got["data"]["result"] and float(got["data"]["result"][0]["value"][1]) >= 3:
                    break
                assert time.monotonic() < deadline, "Prometheus did not scrape the stand-in three times in 30 s"
                time.sleep(0.3)
            probes = production_probes(url)
            read = {}
            for probe in probes:
                result = requests.get(f"{url}/api/v1/query", params={"query": probe["query"]}, timeout=5).json()
                read[probe["name"]] = [float(r["value"][1]) for r in result["data"]["result"]]
            res = run_module(health_gate, {"probes": probes, "count": 1, "interval": 0, "fail_on_failure": False},
                             capsys)
    finally:
        stand_in.close()
    return res, read


def outcomes(res):
    return {s["probe"]: s["outcome"] for s in res["samples"]}


def test_the_production_gate_has_an_explicit_no_data_policy_per_probe():
    probes = production_probes("http://127.0.0.1:1")
    assert probes and all(p["type"] == "prometheus" and p["url"] == "http://127.0.0.1:1" for p in probes)
    assert {p["name"]: p["on_no_data"] for p in probes} == {"k3s-requests": "fail", "k3s-errors": "fail"}
    for probe in probes:
        assert HISTOGRAM + "_count" in probe["query"]


@pytest.mark.slow
def test_healthy_traffic_passes(capsys):
    res, read = gate([(labels("200"), 20.0), (labels("200", "mcp-context", "www-api-context"), 5.0),
                      (labels("503"), 0.1)], capsys)  # 0.1 of 25.1 per second: 0.4% errors
    assert res["passed"] and res["verdict"] == "passed", res
    # a fresh Prometheus holds seconds of the 2-minute window, and rate() divides by the window: the rate reads
    # low here (well above the probe's minimum), the ratio does not
    assert read["k3s-requests"][0] > 0.05
    assert read["k3s-errors"] == [pytest.approx(0.1 / 25.1, rel=0.1)]


@pytest.mark.slow
def test_5xx_above_the_threshold_fails(capsys):
    res, read = gate([(labels("200"), 20.0), (labels("502"), 1.0), (labels("504"), 1.0)], capsys)  # 9% errors
    assert res["verdict"] == "failed", res
    assert outcomes(res) == {"k3s-requests": "success", "k3s-errors": "failure"}
    assert read["k3s-errors"] == [pytest.approx(2 / 22, rel=0.1)]
    assert "> 0.01" in json.dumps(res["samples"])


@pytest.mark.slow
def test_no_errors_at_all_reads_zero_and_passes(capsys):
    res, read = gate([(labels("200"), 10.0), (labels("404"), 1.0)], capsys)  # no 5xx series exists at all
    assert read["k3s-errors"] == [0.0]
    assert res["passed"], res


@pytest.mark.slow
def test_no_requests_ever_fails(capsys):
    res, read = gate([], capsys)  # the controller is scraped, but it never proxied a request: no histogram series
    assert read == {"k3s-requests": [], "k3s-errors": []}
    assert res["verdict"] == "failed", res
    assert outcomes(res)["k3s-requests"] == "failure"
    assert "no data (on_no_data=fail)" in json.dumps(res["samples"])


@pytest.mark.slow
def test_requests_stopped_fails(capsys):
    res, read = gate([(labels("200"), 10.0)], capsys, frozen=True)  # series exist, counters no longer move
    assert read["k3s-requests"] == [0.0]
    assert [math.isnan(v) for v in read["k3s-errors"]] == [True]  # 0 / 0 is NaN, which the probe takes as no data
    assert res["verdict"] == "failed", res
    assert outcomes(res) == {"k3s-requests": "failure", "k3s-errors": "failure"}
