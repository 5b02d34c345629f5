"""ingress_certs: the default controller (F5 NGINX Ingress) exports the metrics the production traffic gates read.

The controller's HelmChart is rendered from the role's own defaults with Ansible's templar, its values are checked
against the chart's values file (specs/k8s/nginx-ingress-values-2.7.0.yaml, every key must exist there) and must
enable -enable-prometheus-metrics (prometheus.create) and -enable-latency-metrics (controller.enableLatencyMetrics):
without the latter the OSS controller exports no per-status request count (no
nginx_ingress_controller_upstream_server_response_latency_ms), and the gates' queries find nothing.
"""

from __future__ import annotations

import os

import yaml
from unit.ingress.test_ingress_templates import render

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SPECS = os.path.join(ROOT, "specs", "k8s")
CHART_VALUES = os.path.join(SPECS, "nginx-ingress-values-2.7.0.yaml")


def defaults():
    with open(os.path.join(ROOT, "roles", "ingress_certs", "defaults", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def controller_values(**overrides):
    (chart,) = render("sophia-ingress-10-controller.yaml.j2", **{**defaults(), **overrides})
    assert chart["spec"]["chart"] == "nginx-ingress"
    result = _k8s_validate.validate_documents([("controller.yaml", chart)], _k8s_validate.Schemas([SPECS]))
    assert result["valid"], result["errors"]  # every value key exists in the chart's values file
    assert result["warnings"] == []
    return yaml.safe_load(chart["spec"]["valuesContent"])


def test_default_controller_exports_prometheus_and_latency_metrics():
    values = controller_values()
    assert values["prometheus"]["create"] is True
    assert values["controller"]["enableLatencyMetrics"] is True
    # no ServiceMonitor: the chart would need the Prometheus Operator's CRD before the monitoring stack exists;
    # the observability role scrapes the pods' `prometheus` container port instead
    assert values["prometheus"]["serviceMonitor"]["create"] is False
    with open(CHART_VALUES, encoding="utf-8") as handle:
        chart_defaults = yaml.safe_load(handle)
    # the port the observability role scrapes is the one rendered, and the chart's own default
    port = values["prometheus"]["port"]
    assert port == defaults()["ingress_certs_metrics_port"] == chart_defaults["prometheus"]["port"]
    assert values["prometheus"]["scheme"] == "http"
    # the chart's default for the latency histogram is off: the role must turn it on explicitly
    assert chart_defaults["controller"]["enableLatencyMetrics"] is False


def test_metrics_can_be_turned_off():
    values = controller_values(ingress_certs_metrics=False, ingress_certs_metrics_port=9200)
    assert values["prometheus"]["create"] is False
    assert values["controller"]["enableLatencyMetrics"] is False
    assert values["prometheus"]["port"] == 9200
