"""Offline manifest validation: core kinds (kubernetes-validate), CRDs and chart values (specs/k8s)."""

from __future__ import annotations

import os

import pytest
import yaml

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.modules import k8s_manifest_validate as mod
from support.modules import run_module

SPECS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "specs", "k8s")


@pytest.fixture(scope="module")
def schemas():
    return kv.Schemas([SPECS])


def helmchart(values: dict, chart: str = "gpu-operator", version: str = "v26.7.0") -> dict:
    return {
        "apiVersion": "helm.cattle.io/v1",
        "kind": "HelmChart",
        "metadata": {"name": chart, "namespace": "kube-system"},
        "spec": {"chart": chart, "repo": "https://helm.ngc.nvidia.com/nvidia", "version": version,
                 "targetNamespace": "gpu-operator", "createNamespace": True,
                 "valuesContent": yaml.safe_dump(values)},
    }


def test_schemas_found(schemas):
    assert ("helm.cattle.io/v1", "HelmChart") in schemas.crds
    assert ("cert-manager.io/v1", "ClusterIssuer") in schemas.crds
    assert ("gpu-operator", "26.7.0") in schemas.values_files


def test_core_kind_valid_and_misspelled(schemas):
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    assert kv.validate_document(good, schemas) == ([], [])
    bad = {**good, "dta": {"k": "v"}}
    errors, _warnings = kv.validate_document(bad, schemas)
    assert len(errors) == 1 and "'dta' was unexpected" in errors[0] and "ConfigMap a" in errors[0]


def test_helmchart_values_checked_against_chart_defaults(schemas):
    env = [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]
    ok = helmchart({"driver": {"enabled": False}, "toolkit": {"env": env}})
    assert kv.validate_document(ok, schemas) == ([], [])
    wrong = helmchart({"drivr": {"enabled": False}, "toolkit": {"enabeld": True}})
    errors, _warnings = kv.validate_document(wrong, schemas)
    assert any("no value 'drivr'" in e for e in errors)
    assert any("no value 'toolkit.enabeld'" in e for e in errors)


def test_helmchart_set_keys_checked(schemas):
    doc = helmchart({})
    doc["spec"]["set"] = {"driver.enabled": "false", "devicePlugin.confg.name": "x"}
    errors, _warnings = kv.validate_document(doc, schemas)
    assert len(errors) == 1 and "chart gpu-operator has no value 'devicePlugin.confg'" in errors[0]


def test_crd_schema_violation(schemas):
    doc = helmchart({})
    doc["spec"]["failurePolicy"] = 7
    errors, _warnings = kv.validate_document(doc, schemas)
    assert any("spec.failurePolicy" in e for e in errors)


def test_unknown_version_of_known_chart_is_warned(schemas):
    errors, warnings = kv.validate_document(helmchart({"driver": {"enabled": False}}, version="v1.0.0"), schemas)
    assert errors == [] and "version v1.0.0" in warnings[0]


def test_unknown_kind_is_a_warning_not_a_pass(schemas):
    doc = {"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware", "metadata": {"name": "m"}}
    errors, warnings = kv.validate_document(doc, schemas)
    assert errors == [] and "no schema" in warnings[0]


def test_module_reports_and_fails(tmp_path, capsys):
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sophia"}},
        helmchart({"driver": {"enabled": False}}),
    ]))
    res = run_module(mod, {"paths": [str(tmp_path)], "schema_dirs": [SPECS]}, capsys)
    assert res["valid"] and res["documents"] == 2 and res["kinds"] == {"HelmChart": 1, "Namespace": 1}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(helmchart({"drivr": {}})))
    res = run_module(mod, {"paths": [str(tmp_path)], "schema_dirs": [SPECS]}, capsys)
    assert res["failed"] and "bad.yaml" in res["msg"] and "drivr" in res["msg"]
    (tmp_path / "broken.yaml").write_text("a: [")
    res = run_module(mod, {"paths": [str(tmp_path / "broken.yaml")]}, capsys)
    assert res["failed"] and "broken.yaml: cannot parse YAML" in res["msg"]


def test_module_non_utf8_manifest_fails_cleanly_naming_the_file(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n".encode("latin-1"))
    result = run_module(mod, {"paths": [str(tmp_path)]}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(f"k8s_manifest_validate: {bad}: cannot parse YAML: not UTF-8 text")
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "crd.yaml").write_bytes(b"kind: CustomResourceDefinition\nx: \xff\n")
    good = tmp_path / "good.yml"
    good.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    result = run_module(mod, {"paths": [str(good)], "schema_dirs": [str(schemas)]}, capsys)
    assert result["failed"] is True and f"{schemas / 'crd.yaml'}: cannot parse YAML: not UTF-8" in result["msg"]
