"""The observability role renders, validates and stages the monitoring stack (run through ansible-playbook).

No cluster runs here: the role's manifests are rendered on the controller, validated offline
(kubernetes-validate for core kinds, the HelmChart CRD schema from specs/k8s), and installed into a
directory that stands for K3s' auto-deploy directory.
"""

from __future__ import annotations

import os

import yaml

from support.playbooks import changed, role_play, run_play

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIX = os.path.join(ROOT, "tests", "fixtures", "observability")


def run(tmp_path, extra, check=False):
    variables = {
        "observability_compose_prometheus_config": os.path.join(FIX, "prometheus.yml"),
        "observability_compose_dashboards_dir": os.path.join(FIX, "dashboards"),
        "observability_service_map": {
            "mcp-research": "mcp-research",
            "mcp-context": "mcp-context",
            "mcp-agents": "mcp-agents",
            "sophia-dashboard": "dashboard",
        },
        "observability_staging_dir": str(tmp_path / "staging"),
        "observability_manifests_dir": str(tmp_path / "k3s-manifests"),
        "observability_latency_baseline": {"mcp-research": 0.25},
        "observability_grafana_admin_password": "test-grafana-admin",  # required outside the lab
        **extra,
    }
    return run_play(tmp_path, role_play("observability"), variables, check=check)


def test_render_validate_install_idempotent(tmp_path):
    res = run(tmp_path, {})
    assert res.returncode == 0, res.stdout[-3000:]
    installed = sorted(os.listdir(tmp_path / "k3s-manifests"))
    assert installed == [
        "sophia-dashboards.yaml",
        "sophia-dcgm-exporter.yaml",
        "sophia-kube-prometheus-stack.yaml",
        "sophia-loki.yaml",
        "sophia-migration-alerts.yaml",
        "sophia-observability-namespace.yaml",
    ]
    kps = yaml.safe_load((tmp_path / "k3s-manifests" / "sophia-kube-prometheus-stack.yaml").read_text())
    values = yaml.safe_load(kps["spec"]["valuesContent"])
    jobs = [j["job_name"] for j in values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]]
    assert "mcp-mcp-research" in jobs and "lambda-api" in jobs and "node" not in jobs
    rules = yaml.safe_load((tmp_path / "k3s-manifests" / "sophia-migration-alerts.yaml").read_text())
    alerts = {r["alert"]: r for g in rules["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert "> 80" in alerts["SophiaGPUUtilisationHigh"]["expr"]
    assert "> 0.275" in alerts["SophiaLatencyRegressionMcpresearch"]["expr"]
    dashboards = [
        d for d in yaml.safe_load_all((tmp_path / "k3s-manifests" / "sophia-dashboards.yaml").read_text()) if d
    ]
    assert {d["metadata"]["name"] for d in dashboards} == {"dashboard-logs", "dashboard-sophia-overview"}
    assert all(d["metadata"]["namespace"] == "monitoring" for d in dashboards)
    assert oct(os.stat(tmp_path / "k3s-manifests" / "sophia-loki.yaml").st_mode & 0o777) == "0o600"
    again = run(tmp_path, {})
    assert again.returncode == 0 and changed(again.stdout) == 0, again.stdout[-3000:]


def test_check_mode_installs_nothing(tmp_path):
    res = run(tmp_path, {}, check=True)
    assert res.returncode == 0, res.stdout[-3000:]
    assert not (tmp_path / "k3s-manifests").exists() or not os.listdir(tmp_path / "k3s-manifests")


def test_bad_threshold_is_refused(tmp_path):
    res = run(tmp_path, {"observability_alert_pvc_fill_ratio": 1.5})
    assert res.returncode != 0 and "observability_alert_pvc_fill_ratio a ratio below 1" in res.stdout
