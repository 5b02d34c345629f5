"""A kind validated often is built with its references in place; the errors stay kubernetes_validate's own.

compose_to_k8s validates every object it writes (validate=true by default). The validators are built once per
process (test_schema_cache.py); since a reference lookup per field was a third of what was left, a kind validated
INLINE_AFTER times in a process is rebuilt with the references to _definitions.json put in place (a process that
validates one small project never pays that build). These tests hold that, and hold the errors of both forms to
what kubernetes_validate.validate() says on objects compose_to_k8s really renders from the corpus, broken in the
ways a hand edit or a translation bug breaks them.
"""

from __future__ import annotations

import copy
import functools
import glob
import os

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s
from support.modules import run_module

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "compose", "corpus")
PLAIN_KINDS = [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("v1", "Service"), ("v1", "ConfigMap"),
               ("v1", "Secret"), ("v1", "PersistentVolumeClaim"), ("batch/v1", "Job"), ("batch/v1", "CronJob"),
               ("networking.k8s.io/v1", "NetworkPolicy"), ("networking.k8s.io/v1", "Ingress")]


def _refs(schema) -> list[str]:
    """Every $ref keyword of a schema (not a property that happens to be named $ref)."""
    found: list[str] = []
    seen: set[int] = set()

    def walk(node):
        if not isinstance(node, dict) or id(node) in seen:
            return
        seen.add(id(node))
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.append(value)
            elif key in ("properties", "patternProperties", "$defs") and isinstance(value, dict):
                for sub in value.values():
                    walk(sub)
            elif isinstance(value, dict):
                walk(value)
            elif isinstance(value, list):
                for sub in value:
                    walk(sub)

    walk(schema)
    return found


@pytest.fixture
def fresh():
    kv.clear_cache()
    yield
    kv.clear_cache()


@pytest.fixture
def inline_at_once(fresh, monkeypatch):
    monkeypatch.setattr(kv, "INLINE_AFTER", 1)


def test_a_kind_is_built_in_place_only_once_validated_often(fresh):
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicaz": 1}}
    expected = ["Deployment d: spec: Additional properties are not allowed ('replicaz' was unexpected)"]
    loaded = None
    for _n in range(kv.INLINE_AFTER - 1):  # a small project: the schema file's contents, references and all
        validator = kv._core_validator("apps/v1", "Deployment", "1.31", True)
        loaded = loaded or validator.schema
        assert validator.schema is loaded and _refs(loaded) and kv._INLINED == {}
    validator = kv._core_validator("apps/v1", "Deployment", "1.31", True)  # the INLINE_AFTER-th object
    assert validator.schema is not loaded and _refs(validator.schema) == []
    assert kv._core_validator("apps/v1", "Deployment", "1.31", True) is validator  # built once
    doc["spec"] = {"selector": {}, "template": {}, "replicaz": 1}
    assert kv.validate_document(doc, kv.Schemas())[0] == expected


@pytest.mark.parametrize(("api_version", "kind"), PLAIN_KINDS)
def test_plain_kinds_validate_without_reference_lookups(api_version, kind, inline_at_once):
    validator = kv._core_validator(api_version, kind, kv.DEFAULT_K8S_VERSION, True)
    assert validator is not None
    assert _refs(validator.schema) == []


def test_kinds_of_a_version_share_what_was_built(inline_at_once):
    # the pod template of a Deployment, a StatefulSet and a Job is built once per process, not once per kind
    template = [kv._core_validator(api, kind, "1.31", True).schema["properties"]["spec"]["properties"]["template"]
                for api, kind in (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"))]
    assert template[0] is template[1] is template[2]
    assert "$ref" not in template[0] and "containers" in template[0]["properties"]["spec"]["properties"]


def test_recursive_kind_keeps_absolute_references(inline_at_once):
    # JSONSchemaProps refers to itself: those references stay, made absolute so they resolve from anywhere
    validator = kv._core_validator("apiextensions.k8s.io/v1", "CustomResourceDefinition", "1.31", True)
    refs = _refs(validator.schema)
    assert refs and all(r.startswith("https://kubernetes.io/api/_definitions.json#/$defs/") for r in refs)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "ws.x.io"},
           "spec": {"group": "x.io", "scope": "Namespaced", "names": {"kind": "W", "plural": "ws"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "size": {"type": "integer", "minimum": "zero", "maximumm": 3}}}}}}}]}}
    errors, _warnings = kv.validate_document(crd, kv.Schemas())
    expected = _reference(crd, "1.31")
    assert expected is not None and "properties.size.minimum" in expected  # deep inside the recursion
    assert errors == [f"{kv._where(crd)}: {expected}"]


def test_version_is_checked_once_per_process(fresh, monkeypatch):
    calls = []
    real = kubernetes_validate.utils.all_versions

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(kubernetes_validate.utils, "all_versions", counting)
    docs = [("f", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}}) for i in range(5)]
    assert kv.validate_documents(docs, kv.Schemas())["valid"]
    first = len(calls)
    for _project in range(20):
        assert kv.validate_documents(docs, kv.Schemas())["valid"]
    assert len(calls) == first  # nothing listed again for the 20 projects after the first
    assert kv.LOADS == {"_definitions.json": 1, "configmap-v1.json": 1}


def test_an_error_is_reported_without_formatting_the_schema(inline_at_once, monkeypatch):
    # str() of a jsonschema error pretty-prints the schema it failed: for a built Deployment schema that is
    # seconds per broken object. The error is its path and message; nothing formats the rest.
    def never(_self):
        raise AssertionError("a validation error was formatted whole")

    monkeypatch.setattr(jsonschema.exceptions._Error, "__str__", never)
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicaz": 1}}
    errors, _warnings = kv.validate_document(doc, kv.Schemas())
    assert errors == ["Deployment d: spec: 'selector' is a required property"]


def _reference(doc: dict, version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
        return f"{'.'.join(str(p) for p in exc.absolute_path) or '(root)'}: {exc.message}"
    return None


def _breakages(doc: dict):
    """(what, broken copy) pairs: unknown fields and wrong types at several depths of a rendered object."""
    yield "as rendered", doc
    broken = copy.deepcopy(doc)
    broken["spek"] = {}
    yield "unknown top-level field", broken
    broken = copy.deepcopy(doc)
    broken["metadata"]["labels"] = {"a": 1}
    yield "label value not a string", broken
    broken = copy.deepcopy(doc)
    broken["metadata"]["name"] = ["x"]
    yield "name a list", broken
    spec = doc.get("spec")
    if isinstance(spec, dict):
        broken = copy.deepcopy(doc)
        broken["spec"]["replicaz"] = 1
        yield "unknown spec field", broken
        pod = (spec.get("template") or (spec.get("jobTemplate") or {}).get("spec", {}).get("template") or {})
        if pod.get("spec", {}).get("containers"):
            for field, value in (("imagePullPolicy", 3), ("portz", []), ("resources", {"limits": {"cpu": []}}),
                                 ("env", [{"name": "A", "valueFrom": {"secretKeyRef": {"key": 1}}}])):
                broken = copy.deepcopy(doc)
                tmpl = broken["spec"].get("template") or broken["spec"]["jobTemplate"]["spec"]["template"]
                tmpl["spec"]["containers"][-1][field] = value
                yield f"container {field}", broken
        if isinstance(spec.get("ports"), list) and spec["ports"]:
            broken = copy.deepcopy(doc)
            broken["spec"]["ports"][0]["targetPort"] = {"n": 1}
            yield "targetPort a mapping", broken
    if isinstance(doc.get("data"), dict):
        broken = copy.deepcopy(doc)
        broken["data"]["k"] = 5
        yield "data value not a string", broken


def _rendered() -> list[dict]:
    files = sorted(glob.glob(os.path.join(CORPUS, "*.y*ml")))
    assert len(files) >= 20
    return files


@pytest.mark.parametrize("inline_after", [1, 10**9], ids=["built-in-place", "as-loaded"])
def test_same_first_error_as_kubernetes_validate_on_rendered_corpus_objects(inline_after, capsys, fresh, monkeypatch):
    monkeypatch.setattr(kv, "INLINE_AFTER", inline_after)
    # the reference reads and parses its schema files for every object: read once here (same files, same contents)
    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents",
                        functools.cache(kubernetes_validate.utils.schema_contents))
    compared = broken_found = 0
    kinds = set()
    for path in _rendered():
        res = run_module(compose_to_k8s, {"src": [path], "validate": False}, capsys)
        if res.get("failed"):  # refused cleanly with the default options (profiles, unset variables)
            continue
        for doc in res["manifests"]:
            kinds.add(doc["kind"])
            for what, candidate in _breakages(doc):
                expected = _reference(candidate, "1.31")
                errors, warnings = kv.validate_document(candidate, kv.Schemas(), "1.31")
                assert warnings == [], (path, what)
                assert errors == ([] if expected is None else [f"{kv._where(candidate)}: {expected}"]), (path, what)
                compared += 1
                broken_found += expected is not None
    assert {"Deployment", "Service", "ConfigMap", "Secret", "StatefulSet", "PersistentVolumeClaim"} <= kinds
    assert compared > 1000 and broken_found > compared // 2  # the breakages are real errors
