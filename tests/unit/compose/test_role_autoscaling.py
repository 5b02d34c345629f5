"""k8s_services' autoscaling (Phase 2C), opt-in per service: HPA and VPA rendered, validated against their schemas
(autoscaling/v2 from kubernetes-validate's strict schemas; the VPA against the vendored CRD of kubernetes/autoscaler
1.7.1, specs/k8s/vpa-crd-autoscaling.k8s.io_verticalpodautoscalers-1.7.1.yaml), and what cannot scale refused by
name before anything is written. Production's service list and Compose fixture; no cluster (the apply path is the
same kubernetes.core.k8s call as the other files)."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from unit.compose.test_role import _play, _vars

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
SPECS = os.path.join(ROOT, "specs", "k8s")
REQUESTS = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


def test_hpa_and_vpa_rendered_and_validated(tmp_path):
    rc, out = _play(tmp_path, _vars(
        tmp_path,
        k8s_services_resource_overrides={"sophia-dashboard": REQUESTS},
        k8s_services_autoscaling={"sophia-dashboard": {"hpa": {"min_replicas": 1, "max_replicas": 4, "cpu_percent": 70,
                                                               "memory_percent": 80}, "vpa": True},
                                  "qdrant": {"vpa": True}}))
    assert rc == 0, out[-4000:]
    docs = [d for d in yaml.safe_load_all((tmp_path / "render" / "02-autoscaling.yaml").read_text()) if d]
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("VerticalPodAutoscaler", "qdrant"), ("HorizontalPodAutoscaler", "sophia-dashboard"),
        ("VerticalPodAutoscaler", "sophia-dashboard")]
    hpa = docs[1]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sophia-dashboard"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    assert [(m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in hpa["metrics"]] == [
        ("cpu", 70), ("memory", 80)]
    assert docs[0]["spec"]["targetRef"]["kind"] == "StatefulSet" and docs[0]["spec"]["updatePolicy"] == {
        "updateMode": "Off"}
    # validated on the host with the vendored CRD, kept beside the render directory (never applied)
    assert (tmp_path / "render.schemas" / "vpa-crd-autoscaling.k8s.io_verticalpodautoscalers-1.7.1.yaml").is_file()
    rc, out = _play(tmp_path, _vars(tmp_path))  # turned off again: the file goes
    assert rc == 0 and not (tmp_path / "render" / "02-autoscaling.yaml").exists()


@pytest.mark.parametrize(("autoscaling", "overrides", "names"), [
    ({"redis": {"hpa": {"min_replicas": 1, "max_replicas": 2, "cpu_percent": 70}}}, {"redis": REQUESTS},
     "this one: StatefulSet"),
    ({"mcp-agents": {"hpa": {"min_replicas": 1, "max_replicas": 2, "cpu_percent": 70}}}, {"mcp-agents": REQUESTS},
     "holds a GPU"),
    ({"sophia-dashboard": {"hpa": {"min_replicas": 3, "max_replicas": 2, "cpu_percent": 70}}},
     {"sophia-dashboard": REQUESTS}, "k8s_services_autoscaling.sophia-dashboard"),
    ({"sophia-dashboard": {"hpa": {"min_replicas": 1, "max_replicas": 2, "memory_percent": 80}}},
     {"sophia-dashboard": {"requests": {"cpu": "100m"}}}, r"memory'+: 0, '+containers'+: 1"),
    ({"no-such": {"vpa": True}}, {}, "(no such service)"),
    ({"qdrant": {"vpa": "yes", "hpa": {}}}, {}, "k8s_services_autoscaling.qdrant"),
])
def test_what_cannot_scale_is_refused_by_name(tmp_path, autoscaling, overrides, names):
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_resource_overrides=overrides,
                                    k8s_services_autoscaling=autoscaling))
    assert rc != 0, out[-3000:]
    assert "Nothing was applied" in out and re.search(names if names.startswith("memory") else re.escape(names), out), \
        out[-3000:]
    assert not (tmp_path / "render" / "02-autoscaling.yaml").exists()


def test_the_vpa_schema_bites():
    """The vendored CRD is what validates a VPA: a mode it does not know and a misspelled field are errors."""
    schemas = kv.Schemas([SPECS])
    vpa = {"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler", "metadata": {"name": "x"},
           "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "updatePolicy": {"updateMode": "Off"}}}
    assert kv.validate_document(vpa, schemas) == ([], [])
    vpa["spec"]["updatePolicy"]["updateMode"] = "Sometimes"
    errors, _warnings = kv.validate_document(vpa, schemas)
    assert errors and "spec.updatePolicy.updateMode" in errors[0] and "'Sometimes' is not one of" in errors[0]
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "maxReplicas": 2, "minReplicaz": 1}}
    errors, _warnings = kv.validate_document(hpa, schemas)
    assert errors and "minReplicaz" in errors[0]
