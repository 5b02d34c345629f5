"""The built core schemas kept on disk: a new process validates at the built speed, with the same results.

A fresh compose_to_k8s process used to parse kubernetes-validate's 1.3 MB _definitions.json and resolve references
field by field for its first objects (about 28 ms of the 35 a one-file run spent). The built schema (references in
place) is now kept in a cache directory. These tests hold what that must never change: the errors (compared with
the cache turned off), what a new process reads (``clear_cache()`` is what a new process starts from), and that a
cache file which is corrupt, someone else's, writable by others or a link is ignored and rebuilt, and that a cache
that cannot be written never fails validation.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv

BROKEN = [
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicaz": 1}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "e"},
     "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
         "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": "eighty"}]}]}}}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80, "x": 1}]}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": 1}},
]
GOOD = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok"}, "data": {"k": "v"}}


def results():
    return [kv.validate_document(doc, kv.Schemas()) for doc in BROKEN]


@pytest.fixture
def uncached(monkeypatch):
    """What validation says with no disk cache (the in-process build, as before)."""
    monkeypatch.setenv(kv.CACHE_ENV, "off")
    kv.clear_cache()
    expected = results()
    kv.clear_cache()
    return expected


@pytest.fixture
def cache(tmp_path, monkeypatch, uncached):
    directory = tmp_path / "cache"
    monkeypatch.setenv(kv.CACHE_ENV, str(directory))
    yield directory
    kv.clear_cache()


def files(directory) -> dict[str, os.stat_result]:
    return {p.name: p.lstat() for p in directory.iterdir()} if directory.is_dir() else {}


def test_a_new_process_reads_the_built_schemas_from_disk_with_the_same_errors(cache, uncached):
    assert results() == uncached and all(errors for errors, _warnings in uncached)
    written = files(cache)
    assert sorted(name.split("-")[0] for name in written) == ["configmap", "deployment", "service"]
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert {stat.S_IMODE(s.st_mode) for s in written.values()} == {0o600}
    kv.clear_cache()  # a new process
    assert results() == uncached
    assert kv.LOADS == {"(cache)": 3}  # neither _definitions.json nor a kind's schema file was read
    assert files(cache) == written  # nothing rewritten


@pytest.mark.parametrize("damage", ["truncated", "not json", "wrong format", "group writable", "a link"])
def test_a_damaged_or_untrusted_file_is_ignored_and_rebuilt(cache, uncached, tmp_path, damage):
    results()
    target = next(p for p in cache.iterdir() if p.name.startswith("deployment-"))
    good = target.read_text()
    if damage == "truncated":
        target.write_text(good[: len(good) // 2])
    elif damage == "not json":
        target.write_bytes(b"\xff\xfe garbage")
    elif damage == "wrong format":
        target.write_text(json.dumps({"format": kv.CACHE_FORMAT + 1, "schema": {"type": "object"}}))
    elif damage == "group writable":  # permissive schema: if it were read, the broken Deployments would pass
        target.write_text(json.dumps({"format": kv.CACHE_FORMAT, "schema": {"type": "object"}}))
        target.chmod(0o664)
    else:
        planted = tmp_path / "planted.json"
        planted.write_text(json.dumps({"format": kv.CACHE_FORMAT, "schema": {"type": "object"}}))
        target.unlink()
        target.symlink_to(planted)
    kv.clear_cache()
    assert results() == uncached
    assert kv.LOADS.get("_definitions.json") == 1  # rebuilt from kubernetes-validate's files
    assert not target.is_symlink() and json.loads(target.read_text()) == json.loads(good)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_turned_off_nothing_is_written(tmp_path, monkeypatch, uncached):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(kv.CACHE_ENV, "off")
    assert results() == uncached
    assert list(tmp_path.iterdir()) == []
    monkeypatch.delenv(kv.CACHE_ENV)
    assert kv.cache_dir() == str(tmp_path / "sophia-migrate" / "k8s-schemas")


def test_a_cache_that_cannot_be_written_never_fails_validation(tmp_path, monkeypatch, uncached):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(kv.CACHE_ENV, str(blocker / "cache"))
    assert results() == uncached
    assert kv.validate_document(GOOD, kv.Schemas()) == ([], [])
    assert blocker.read_text() == "not a directory"


def test_a_schema_that_keeps_references_is_not_cached(cache):
    """A recursive type (a CRD's JSONSchemaProps) keeps references that need _definitions.json's registry."""
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"},
           "spec": {"group": "g", "names": {"kind": "K", "plural": "ks"}, "scope": "Namespaced",
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                      "spec": {"type": "object", "properties": {"n": {"type": "integer"}}}}}}}]}}
    assert kv.validate_document(crd, kv.Schemas()) == ([], [])
    assert not any(name.startswith("customresourcedefinition-") for name in files(cache))
    kv.clear_cache()
    assert kv.validate_document(crd, kv.Schemas()) == ([], [])
