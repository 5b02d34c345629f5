"""usage_report against a real Prometheus (Debian's package) scraping real exporters started here.

- Debian's prometheus-node-exporter (real) proves the scrape path.
- A small exporter written in this test publishes cAdvisor metric names (container_cpu_usage_seconds_total,
  container_memory_working_set_bytes) and DCGM exporter metric names (DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED,
  DCGM_FI_DEV_FB_FREE) with known loads, because there is no GPU and no kubelet here. The recommendations are
  checked against those known loads.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.module_utils import _usage
from ansible_collections.sophia.migrate.plugins.module_utils._prometheus import Prometheus, PrometheusError
from ansible_collections.sophia.migrate.plugins.modules import success_criteria, usage_report
from support.modules import run_module
from support.servers import free_port, free_ports, prometheus_server, require_binary, wait_port

MIB = 1024 * 1024
# workload -> (cores used, memory bytes, GPU util %, GPU memory used MiB); total GPU memory 24 GiB
LOADS = {
    "mcp-research": (0.5, 200 * MIB, 75.0, 18000),
    "mcp-context": (0.1, 64 * MIB, 10.0, 1000),
    "dashboard": (0.02, 32 * MIB, None, None),
}
GPU_TOTAL_MIB = 24576


class SyntheticExporter:
    def __init__(self):
        self.t0 = time.monotonic()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                return

            def do_GET(self):
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the kernel picks a free port
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def render(self) -> str:
        elapsed = time.monotonic() - self.t0
        out = [
            "# TYPE container_cpu_usage_seconds_total counter",
            "# TYPE container_memory_working_set_bytes gauge",
            "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
            "# TYPE DCGM_FI_DEV_FB_USED gauge",
            "# TYPE DCGM_FI_DEV_FB_FREE gauge",
        ]
        for i, (name, (cores, mem, util, fb)) in enumerate(sorted(LOADS.items())):
            lab = f'namespace="sophia",pod="{name}-0",container="{name}"'
            out.append(f"container_cpu_usage_seconds_total{{{lab}}} {cores * elapsed:.6f}")
            out.append(f"container_memory_working_set_bytes{{{lab}}} {mem}")
            if util is not None:
                gpu = f'gpu="{i}",UUID="GPU-{i:04d}",modelName="NVIDIA A10",Hostname="lambda",{lab}'
                out.append(f"DCGM_FI_DEV_GPU_UTIL{{{gpu}}} {util}")
                out.append(f"DCGM_FI_DEV_FB_USED{{{gpu}}} {fb}")
                out.append(f"DCGM_FI_DEV_FB_FREE{{{gpu}}} {GPU_TOTAL_MIB - fb}")
        # 100 requests/s for mcp-research: 90% under 100 ms, all under 250 ms -> p95 = 0.175 s
        n = 100 * elapsed
        for le, share in (("0.05", 0.0), ("0.1", 0.9), ("0.25", 1.0), ("+Inf", 1.0)):
            out.append(f'sophia_request_duration_seconds_bucket{{service="mcp-research",le="{le}"}} {n * share:.3f}')
        return "\n".join(out) + "\n"

    def stop(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def prometheus():
    exporter = SyntheticExporter()
    node_port, prom_port = free_ports(2)
    node = subprocess.Popen(
        [require_binary("prometheus-node-exporter"), f"--web.listen-address=127.0.0.1:{node_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(node_port, timeout=30)
        jobs = {"node": [f"127.0.0.1:{node_port}"], "gpu-and-containers": [f"127.0.0.1:{exporter.port}"]}
        with prometheus_server(jobs, port=prom_port) as url:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait for 15 s of samples from both targets
                reply = requests.get(f"{url}/api/v1/query", params={"query": "count_over_time(up[30s])"}, timeout=5)
                reply.raise_for_status()
                counts = [float(x["value"][1]) for x in reply.json()["data"]["result"]]
                if len(counts) == 2 and min(counts) >= 15:
                    break
                time.sleep(1)
            else:
                pytest.fail("Prometheus did not collect 15 s of samples in 60 s")
            yield url
    finally:
        node.terminate()
        node.wait(10)
        exporter.stop()


def test_real_node_exporter_is_scraped(prometheus):
    rows = Prometheus(prometheus).query('up{job="node"}')
    assert rows and rows[0]["value"] == 1.0
    assert Prometheus(prometheus).query("node_cpu_seconds_total")  # a real node metric


def test_recommendations_match_known_loads(prometheus, capsys):
    res = run_module(
        usage_report,
        {
            "prometheus_url": prometheus,
            "namespace": "sophia",
            "window": "12s",
            "step": "1s",
            "rate_window": "4s",
            "workloads": ["mcp-research", "mcp-context", "dashboard", "mcp-agents"],
        },
        capsys,
    )
    assert not res.get("failed"), res
    research = res["workloads"]["mcp-research"]
    cpu_req = int(research["resources"]["requests"]["cpu"].rstrip("m"))
    assert 560 <= cpu_req <= 640  # 0.5 cores x 1.2
    assert research["resources"]["requests"]["memory"] == "240Mi"  # 200 MiB x 1.2
    assert int(research["resources"]["limits"]["cpu"].rstrip("m")) == 2 * cpu_req
    assert research["gpu"]["sharing_candidate"] is False
    assert res["workloads"]["mcp-context"]["gpu"]["sharing_candidate"] is True
    assert res["sharing_candidates"] == ["mcp-context"]
    assert res["insufficient_data"] == ["mcp-agents"] and "resources" not in res["workloads"]["mcp-agents"]
    assert res["gpu_util_average_percent"] == pytest.approx(42.5, abs=0.5)
    assert res["gpu_util_target_met"] is True
    assert {h["metadata"]["name"] for h in res["hpa_manifests"]} == {"mcp-research", "mcp-context", "dashboard"}
    assert all(v["spec"]["updatePolicy"]["updateMode"] == "Off" for v in res["vpa_manifests"])
    assert "| mcp-agents | no data |" in res["markdown"]


def test_manifests_pass_schema_validation(prometheus):
    result = _usage.report(Prometheus(prometheus), namespace="sophia", window="12s", step="1s", rate_window="4s")
    docs = [("hpa", d) for d in result["hpa_manifests"]]
    summary = kv.validate_documents(docs, kv.Schemas([]))
    assert summary["valid"] and summary["documents"] == 3, summary["errors"]


def test_bad_options_and_unreachable_server(prometheus, capsys):
    res = run_module(usage_report, {"prometheus_url": prometheus, "window": "1 hour"}, capsys)
    assert res["failed"] and "option 'window' must be a Prometheus duration" in res["msg"]
    res = run_module(usage_report, {"prometheus_url": f"http://127.0.0.1:{free_port()}", "timeout": 1}, capsys)
    assert res["failed"] and "cannot reach the server" in res["msg"]
    with pytest.raises(PrometheusError, match="error"):
        Prometheus(prometheus).query("sum(")


def _ledger(tmp_path, entries):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps({"format": 1, "entries": entries, "state": {}}))
    return str(path)


def test_success_criteria_measured_and_judged(prometheus, tmp_path, capsys):
    ledger = _ledger(
        tmp_path,
        [
            {"step": "redis/cutover", "status": "done", "data": {"lost_writes": 0}},
            {"step": "qdrant/restore", "status": "done", "data": {"digest_equal": True}},
        ],
    )
    args = {
        "prometheus_url": prometheus,
        "window": "10s",
        "latency_selectors": {"mcp-research": '{service="mcp-research"}'},
        "latency_baseline": {"mcp-research": 0.2},
        "ledger_path": ledger,
    }
    res = run_module(success_criteria, args, capsys)
    by = {c["name"]: c for c in res["criteria"]}
    assert by["all services healthy"]["passed"] is True and by["all services healthy"]["measured"].startswith("2/2")
    assert by["GPU utilisation optimised"]["passed"] is True and by["GPU utilisation optimised"]["measured"] == "42.5%"
    assert by["response times maintained or improved"]["measured"]["mcp-research"] == pytest.approx(0.175, abs=0.01)
    assert by["zero data loss"]["passed"] is True and res["all_passed"] is True
    res = run_module(success_criteria, {**args, "latency_baseline": {"mcp-research": 0.1}}, capsys)
    by = {c["name"]: c for c in res["criteria"]}
    assert by["response times maintained or improved"]["passed"] is False and res["all_passed"] is False


def test_success_criteria_never_passes_without_data(prometheus, tmp_path, capsys):
    ledger = _ledger(tmp_path, [{"step": "redis/cutover", "status": "started", "data": {}}])
    res = run_module(
        success_criteria,
        {"prometheus_url": prometheus, "window": "10s", "up_selector": '{job="nope"}', "ledger_path": ledger},
        capsys,
    )
    by = {c["name"]: c for c in res["criteria"]}
    assert by["all services healthy"]["passed"] is None
    assert by["response times maintained or improved"]["passed"] is None
    assert by["zero data loss"]["passed"] is False
    assert res["all_passed"] is False


def test_success_criteria_takes_the_ledger_as_data(prometheus, tmp_path, capsys):
    """Phase 2C measures on the K3s server while the ledger file is on the controller: the ledger comes as data."""
    entries = [{"step": "redis/cutover", "status": "done", "data": {"verified": True}},
               {"step": "qdrant/restore", "status": "done", "data": {"verified": False}}]
    args = {"prometheus_url": prometheus, "window": "10s", "ledger": {"format": 1, "entries": entries, "state": {}}}
    res = run_module(success_criteria, args, capsys)
    loss = {c["name"]: c for c in res["criteria"]}["zero data loss"]
    assert loss["passed"] is False and "qdrant/restore (done, verified=False)" in loss["evidence"]
    bad = run_module(success_criteria, {**args, "ledger": {"entries": "nope"}}, capsys)
    assert bad["failed"] and "option 'ledger' is not a ledger" in bad["msg"]
    both = run_module(success_criteria, {**args, "ledger_path": str(tmp_path / "l.json")}, capsys)
    assert both["failed"] and "mutually exclusive" in both["msg"]
