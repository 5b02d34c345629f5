"""Core-kind schemas are loaded once per process, with the same results as kubernetes_validate.validate()."""

from __future__ import annotations

import os

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s
from ansible_collections.sophia.migrate.plugins.modules import k8s_manifest_validate as mod
from support.modules import run_module

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "compose", "corpus")


def deployment(name: str, **spec) -> dict:
    pod = {"containers": [{"name": "c", "image": "nginx:1", "ports": [{"containerPort": 80}]}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod}, **spec}}


def service(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}


@pytest.fixture
def loads(monkeypatch):
    """Files kubernetes-validate reads (its real reader, counted)."""
    kv.clear_cache()
    seen: list[str] = []
    real = kubernetes_validate.utils.schema_contents

    def counting(filename, version):
        seen.append(os.path.basename(filename))
        return real(filename, version)

    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents", counting)
    yield seen
    kv.clear_cache()


def test_each_schema_file_is_read_once_per_process(loads):
    docs = [("f", deployment(f"d{i}")) for i in range(20)] + [("f", service(f"s{i}")) for i in range(20)]
    summary = kv.validate_documents(docs, kv.Schemas())
    assert summary["valid"] and summary["documents"] == 40
    kv.validate_documents(docs, kv.Schemas())  # a second project in the same process: nothing read again
    assert sorted(loads) == ["_definitions.json", "deployment-apps-v1.json", "service-v1.json"]


def _reference(doc: dict, version: str) -> str | None:
    """What kubernetes_validate.validate() itself says (the first error's path and message)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
        return f"{'.'.join(str(p) for p in exc.absolute_path) or '(root)'}: {exc.message}"
    return None


@pytest.mark.parametrize("version", ["1.31", "v1.28", "1.31.4"])
def test_same_first_error_as_kubernetes_validate(version):
    kv.clear_cache()
    bad_port = deployment("p")
    bad_port["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    cases = [deployment("ok"), deployment("x", replicas=3), {**deployment("y"), "spec": {"replicaz": 1}},
             bad_port, {**service("s"), "spec": {"ports": [{"port": 80, "protocl": "TCP"}]}}]
    for doc in cases:
        errors, warnings = kv.validate_document(doc, kv.Schemas(), version)
        expected = _reference(doc, version)
        assert warnings == []
        assert errors == ([] if expected is None else [f"{kv._where(doc)}: {expected}"])
    assert sum(1 for doc in cases if _reference(doc, version)) == 3  # the bad ones are bad


def test_kind_without_schema_is_still_a_warning_and_cached(loads):
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    for _run in range(3):
        expected = ([], ["Widget w: no schema for example.com/v1/Widget (not validated)"])
        assert kv.validate_document(doc, kv.Schemas()) == expected
    assert loads == ["widget-example-v1.json"]


@pytest.mark.parametrize("version", ["9.99", "1.0"])
def test_unsupported_k8s_version_fails_cleanly(version, tmp_path, capsys):
    kv.clear_cache()
    with pytest.raises(kv.ManifestError, match=f"k8s_version {version}: kubernetes-validate has schemas for "):
        kv.validate_document(service("s"), kv.Schemas(), version)
    src = os.path.join(CORPUS, "docker-awesome-compose__flask-compose.yaml")
    res = run_module(compose_to_k8s, {"src": [src], "k8s_version": version}, capsys)
    assert res["failed"] and "k8s_version" in res["msg"] and version in res["msg"]
    (tmp_path / "s.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    res = run_module(mod, {"paths": [str(tmp_path)], "k8s_version": version}, capsys)
    assert res["failed"] and "k8s_version" in res["msg"] and version in res["msg"]
