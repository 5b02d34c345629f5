"""Translation of the Compose Prometheus config and Grafana dashboards (tests/fixtures/observability)."""

from __future__ import annotations

import json
import os

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.modules import monitoring_translate as mod
from support.modules import run_module

FIX = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "observability")
SERVICES = {
    "mcp-research": "mcp-research",
    "mcp-context": "mcp-context",
    "mcp-agents": "mcp-agents",
    "sophia-dashboard": "dashboard",
    "localhost": "prometheus-operated",
}


def translate(capsys, **extra):
    return run_module(
        mod,
        {
            "prometheus_config": os.path.join(FIX, "prometheus.yml"),
            "dashboards_dir": os.path.join(FIX, "dashboards"),
            "namespace": "sophia",
            "services": SERVICES,
            "datasource_map": {"PBFA97CFB590B2093": "prometheus"},
            **extra,
        },
        capsys,
    )


def test_static_targets_become_endpoint_discovery(capsys):
    res = translate(capsys)
    jobs = {j["job_name"]: j for j in res["scrape_configs"]}
    assert res["translated"] == 5
    assert set(jobs) >= {"mcp-mcp-research", "mcp-mcp-context", "mcp-mcp-agents", "dashboard", "prometheus"}
    research = jobs["mcp-mcp-research"]
    assert research["kubernetes_sd_configs"] == [{"role": "endpoints", "namespaces": {"names": ["sophia"]}}]
    assert {"source_labels": ["__meta_kubernetes_service_name"], "regex": "mcp-research", "action": "keep"} in research[
        "relabel_configs"
    ]
    assert {"source_labels": ["__meta_kubernetes_endpoint_port_number"], "regex": "8080", "action": "keep"} in research[
        "relabel_configs"
    ]
    assert {"target_label": "tier", "replacement": "mcp"} in research["relabel_configs"]
    assert research["scrape_timeout"] == "5s" and research["metrics_path"] == "/metrics"
    assert jobs["dashboard"]["relabel_configs"][0]["regex"] == "dashboard"  # renamed through the map


def test_nothing_dropped_silently(capsys):
    res = translate(capsys)
    assert {r["target"] for r in res["replaced"]} == {"node-exporter:9100", "cadvisor:8080"}
    kept = [j for j in res["scrape_configs"] if "static_configs" in j]
    assert kept == [
        {"job_name": "lambda-api", "scheme": "https", "static_configs": [{"targets": ["cloud.lambdalabs.com:443"]}]}
    ]
    whats = {(u["job"], u["what"]) for u in res["untranslated"]}
    assert whats == {
        ("jobs-file-sd", "file_sd_configs"),
        ("docker-containers", "docker_sd_configs"),
        ("docker-containers", "relabel_configs"),
    }


def test_dashboards_to_valid_configmaps(capsys):
    res = translate(capsys)
    names = [c["metadata"]["name"] for c in res["configmaps"]]
    assert names == ["dashboard-logs", "dashboard-sophia-overview"]
    overview = json.loads(res["configmaps"][1]["data"]["sophia-overview.json"])
    assert overview["panels"][0]["datasource"]["uid"] == "prometheus"
    assert overview["panels"][1]["datasource"] == "${DS_PROMETHEUS}"  # template variables stay
    problems = {(p["file"], p["why"].split(":")[0]) for p in res["problems"]}
    assert ("broken.json", "not readable JSON") in problems
    assert any(p["file"] == "logs.json" and "loki-old" in p["why"] for p in res["problems"])
    summary = kv.validate_documents([("cm", c) for c in res["configmaps"]], kv.Schemas([]))
    assert summary["valid"], summary["errors"]
    assert all(c["metadata"]["labels"]["grafana_dashboard"] == "1" for c in res["configmaps"])


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "p.yml"
    bad.write_text("scrape_configs:\n  - static_configs: []\n")
    res = run_module(mod, {"prometheus_config": str(bad)}, capsys)
    assert res["failed"] and "scrape_configs[0] has no job_name" in res["msg"]
    bad.write_text("scrape_configs: [")
    res = run_module(mod, {"prometheus_config": str(bad)}, capsys)
    assert res["failed"] and "not valid YAML" in res["msg"]
    res = run_module(mod, {"dashboards_dir": str(tmp_path / "none")}, capsys)
    assert res["failed"] and "not a directory" in res["msg"]
