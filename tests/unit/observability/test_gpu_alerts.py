"""observability: the GPU utilisation rule and alert, evaluated by the real ``promtool test rules``, and the exporter.

The role runs through ansible-playbook on localhost with its defaults (production's settings: a 1 h window, 30 min,
80 %); the group ``sophia-gpu`` of its PrometheusRule becomes a rules file and Prometheus' own rule engine
(promtool, Debian's prometheus package) evaluates it against DCGM series. No GPU exists here: the series carry the
labels of a recorded (reconstructed) dcgm-exporter 4.6.0 scrape, tests/fixtures/gpu/dcgm-exporter-4.6.0.prom (two
GPUs), and the utilisation over time is set per test: a GPU averaging 85 % fires after the ``for``, one at 60 % never
does, a short burst does not, and each GPU alerts on its own. The DCGM exporter is installed with the device plugin
stack (production's), on the GPU nodes, and its values keys validate against the chart's vendored values.yaml.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml
from unit.observability.render import render_observability
from unit.observability.test_certificate_alerts import PROMTOOL, promtool_test

from support.playbooks import role_play, run_play

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "gpu", "dcgm-exporter-4.6.0.prom")
LINE = re.compile(r'^(?P<name>[A-Z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def recorded(metric: str) -> list[dict[str, str]]:
    """The label sets of ``metric`` in the recorded scrape, one per GPU."""
    out = []
    with open(FIXTURE, encoding="utf-8") as handle:
        for line in handle:
            match = LINE.match(line.strip())
            if match and match["name"] == metric:
                out.append(dict(re.findall(r'(\w+)="([^"]*)"', match["labels"])))
    return out


GPUS = recorded("DCGM_FI_DEV_GPU_UTIL")


def util(gpu: dict[str, str], values: str) -> dict[str, str]:
    # as scraped by the K3s Prometheus: the target's labels added to the exporter's
    labels = {**gpu, "job": "dcgm-exporter", "instance": "10.42.0.17:9400", "pod": "dcgm-exporter-x7k2p"}
    return {"series": "DCGM_FI_DEV_GPU_UTIL{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}",
            "values": values}


def alert(gpu: dict[str, str], value: float) -> dict:
    keep = {k: gpu[k] for k in ("Hostname", "gpu", "UUID", "modelName")}
    return {"exp_labels": {**keep, "severity": "warning"},
            "exp_annotations": {
                "summary": f"GPU {gpu['gpu']} ({gpu['modelName']}) on {gpu['Hostname']} averaged {value:.0f}% over "
                           "1h, above 80% for 30m (success criterion: below 80% on average)",
                "description": "Runbook: docs/observability.md, GPU utilisation above the criterion."}}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    staging, _prometheus = render_observability(tmp_path_factory.mktemp("obs-gpu"))
    rule = yaml.safe_load((staging / "sophia-migration-alerts.yaml").read_text())
    return staging, [g for g in rule["spec"]["groups"] if g["name"] == "sophia-gpu"]


def test_the_recorded_scrape_has_two_gpus_with_dcgm_labels():
    assert [g["gpu"] for g in GPUS] == ["0", "1"]
    assert all(set(g) == {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname"} for g in GPUS)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make setup installs Debian's prometheus)")
def test_85_percent_fires_and_60_does_not_per_gpu(rendered, tmp_path):
    _staging, groups = rendered
    assert [r.get("record") or r.get("alert") for r in groups[0]["rules"]] == [
        "sophia:gpu_utilisation_percent:avg_window", "SophiaGPUUtilisationHigh"]
    busy, calm = GPUS
    test = {
        "interval": "1m",
        # GPU 0 at 85 % (one sample a minute, two hours); GPU 1 at 60 %
        "input_series": [util(busy, "85x120"), util(calm, "60x120")],
        "promql_expr_test": [{
            "expr": "sophia:gpu_utilisation_percent:avg_window", "eval_time": "60m",
            "exp_samples": [
                {"labels": "sophia:gpu_utilisation_percent:avg_window{" + ",".join(
                    f'{k}="{g[k]}"' for k in ("Hostname", "UUID", "gpu", "modelName")) + "}", "value": v}
                for g, v in ((busy, 85), (calm, 60))]}],
        "alert_rule_test": [
            {"eval_time": "20m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": []},  # pending (for: 30m)
            {"eval_time": "31m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": [alert(busy, 85)]},
            {"eval_time": "110m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": [alert(busy, 85)]},
        ],
    }
    res = promtool_test(tmp_path, groups, [test])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make setup installs Debian's prometheus)")
def test_a_burst_does_not_fire_and_a_sustained_rise_does(rendered, tmp_path):
    _staging, groups = rendered
    burst, rise = GPUS
    test = {
        "interval": "1m",
        # GPU 0: 100 % for 15 minutes, then 40 %: its hourly average drops below 80 % before 30 minutes pass.
        # GPU 1: 60 % for an hour, then 100 %: the hourly average crosses 80 % at 90 minutes, fires 30 minutes later.
        "input_series": [util(burst, "100x15 40x105"), util(rise, "60x60 100x80")],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": []},
            {"eval_time": "45m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": []},
            {"eval_time": "110m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": []},
            {"eval_time": "125m", "alertname": "SophiaGPUUtilisationHigh", "exp_alerts": [alert(rise, 100)]},
        ],
    }
    res = promtool_test(tmp_path, groups, [test])
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_exporter_runs_with_the_device_plugin_stack_on_the_gpu_nodes(rendered, tmp_path):
    staging, _groups = rendered
    chart = yaml.safe_load((staging / "sophia-dcgm-exporter.yaml").read_text())
    assert chart["spec"]["chart"] == "dcgm-exporter" and chart["spec"]["version"] == "4.6.0"
    values = yaml.safe_load(chart["spec"]["valuesContent"])
    assert values == {"runtimeClassName": "nvidia", "nodeSelector": {"nvidia.com/gpu.present": "true"},
                      "serviceMonitor": {"enabled": True}}
    # with the GPU Operator (its own dcgmExporter), none is rendered
    (tmp_path / "operator").mkdir()
    operator, _prom = render_observability(tmp_path / "operator", {"k3s_gpu_gpu_stack": "gpu_operator"})
    assert "kind: HelmChart" not in (operator / "sophia-dcgm-exporter.yaml").read_text()


def test_an_exporter_value_the_chart_does_not_have_is_refused(tmp_path):
    res = run_play(tmp_path, role_play("observability"), {
        "sophia_lab": True, "observability_install": False, "observability_staging_dir": str(tmp_path / "staging"),
        "observability_dcgm_exporter_node_selector": {"nvidia.com/gpu.present": "true"},
        "_observability_dcgm_values": {"serviceMonitor": {"enabled": True, "intervall": "15s"}}})
    assert res.returncode != 0
    assert "chart dcgm-exporter has no value 'serviceMonitor.intervall'" in res.stdout, res.stdout[-3000:]


def test_a_bad_window_is_refused(tmp_path):
    res = run_play(tmp_path, role_play("observability"), {
        "sophia_lab": True, "observability_install": False, "observability_staging_dir": str(tmp_path / "staging"),
        "observability_gpu_util_window": "an hour"})
    assert res.returncode != 0 and "observability_gpu_util_window" in res.stdout
