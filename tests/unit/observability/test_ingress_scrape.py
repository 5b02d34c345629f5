"""observability: the K3s Prometheus scrapes the ingress controller and the GPU host reaches it on a NodePort.

The role runs through ansible-playbook on localhost (nothing installed: the auto-deploy directory is temporary);
the rendered kube-prometheus-stack values must carry a scrape job for the controller's `prometheus` container port
(what ingress_certs renders for F5 NGINX Ingress) and a NodePort Service, and the namespace manifest the
NetworkPolicy that keeps that NodePort to the pods and the node. (Debian's promtool cannot check the job: its
build leaves Kubernetes service discovery out.)
"""

from __future__ import annotations

import pytest
import yaml
from unit.observability.render import render_observability


def run(tmp_path, extra=None):
    staging, prometheus = render_observability(tmp_path, extra)
    namespace = [d for d in yaml.safe_load_all((staging / "sophia-observability-namespace.yaml").read_text()) if d]
    return prometheus, namespace


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    return run(tmp_path_factory.mktemp("obs"), {"ingress_certs_controller_namespace": "ingress-nginx"})


def test_controller_scraped_by_its_metrics_port(rendered):
    prometheus = rendered[0]
    jobs = {job["job_name"]: job for job in prometheus["prometheusSpec"]["additionalScrapeConfigs"]}
    job = jobs["ingress-controller"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["ingress-nginx"]}}]
    keep = {tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"}
    assert keep[("__meta_kubernetes_pod_container_port_name",)] == "prometheus"  # ingress_certs' container port
    assert keep[("__meta_kubernetes_pod_phase",)] == "Running"
    # pod_name (the upstream pod) is a label of the controller's own metrics: the target's pod label must not clash
    targets = {r["target_label"] for r in job["relabel_configs"] if "target_label" in r}
    assert targets == {"namespace", "pod"}


def test_prometheus_on_a_node_port_kept_to_the_pods_and_the_node(rendered):
    prometheus, namespace = rendered
    assert prometheus["service"] == {"type": "NodePort", "nodePort": 30090, "externalTrafficPolicy": "Local"}
    (policy,) = [d for d in namespace if d["kind"] == "NetworkPolicy"]
    assert policy["metadata"]["namespace"] == "monitoring"
    assert policy["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.42.0.0/16"}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9090}]


def test_off_switches(tmp_path):
    prometheus, namespace = run(tmp_path, {"observability_scrape_ingress_controller": False,
                                           "observability_scrape_cert_manager": False,
                                           "observability_prometheus_node_port": 0})
    assert prometheus["prometheusSpec"]["additionalScrapeConfigs"] == []
    assert prometheus["service"] == {}
    assert [d["kind"] for d in namespace] == ["Namespace"]
