"""The production inventory's storage fits together: every claim that k8s_services renders for the Sophia
stack has exactly one static volume of k3s_gpu's StorageClass pre-bound to it, big enough for its request.

Without this a claim of a StorageClass with no provisioner stays Pending (or binds another service's
volume), and Phase 2B stops with the data services not ready. The Compose file is the repository's
copy of the Sophia stack (tests/fixtures/compose/sophia); the templates are the roles' own.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml
from ansible.plugins.filter.core import to_json
from kubernetes.utils import parse_quantity

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _compose_load,
    _compose_translate,
    _compose_translate_context,
)
from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "production" / "group_vars" / "all"
SOPHIA = ROOT / "tests" / "fixtures" / "compose" / "sophia" / "docker-compose.yml"


def _bytes(quantity: str) -> float:
    return float(parse_quantity(str(quantity)))  # the kubernetes client's own quantity parser


def _inventory() -> dict:
    merged: dict = {}
    for name in ("main.yml", "k8s_services.yml", "k3s_gpu.yml"):
        merged.update(yaml.safe_load((INVENTORY / name).read_text(encoding="utf-8")))
    # the only templated value these checks need
    namespace = merged["sophia_k8s_namespace"]
    for vol in merged["k3s_gpu_storage"]:
        if "claim_namespace" in vol:
            vol["claim_namespace"] = vol["claim_namespace"].replace("{{ sophia_k8s_namespace }}", namespace)
    return merged


def _claims(inv: dict) -> list[tuple[str, str, str, float]]:
    """(namespace, claim name, storage class, requested bytes) of every claim the production render makes."""
    project = _compose_load.load_project([str(SOPHIA)], profiles=inv["k8s_services_profiles"])
    out = _compose_translate.translate(project, _compose_translate_context.Options(
        namespace=inv["sophia_k8s_namespace"], stateful=tuple(inv["k8s_services_stateful"]),
        volume_sizes=inv["k8s_services_volume_sizes"], storage_class=inv["k8s_services_storage_class"]))
    claims = []

    def claim(namespace: str, name: str, spec: dict) -> None:
        claims.append((namespace, name, spec.get("storageClassName"), _bytes(spec["resources"]["requests"]["storage"])))

    for docs in out["objects"].values():
        for doc in docs:
            meta = doc["metadata"]
            if doc["kind"] == "PersistentVolumeClaim":
                claim(meta["namespace"], meta["name"], doc["spec"])
            if doc["kind"] == "StatefulSet":
                for tmpl in doc["spec"].get("volumeClaimTemplates", []):
                    for ordinal in range(doc["spec"]["replicas"]):
                        claim(meta["namespace"], f"{tmpl['metadata']['name']}-{meta['name']}-{ordinal}", tmpl["spec"])
    return claims


def _volumes(inv: dict, tmp_path: Path) -> list[dict]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "roles" / "k3s_gpu" / "templates")),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, autoescape=False)  # noqa: S701 - YAML
    env.filters["to_json"] = to_json
    path = tmp_path / "sophia-storage.yaml"
    path.write_text(env.get_template("sophia-storage.yaml.j2").render(
        k3s_gpu_storage=inv["k3s_gpu_storage"], k3s_gpu_storage_class=inv["k3s_gpu_storage_class"],
        _k3s_gpu_node_name="lambda-gpu-01"), encoding="utf-8")
    result = kv.validate_documents(kv.load_manifest_files([str(path)]), kv.Schemas([str(ROOT / "specs" / "k8s")]))
    assert result["errors"] == [], result
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d and d["kind"] == "PersistentVolume"]


def test_every_production_claim_has_its_own_volume_on_the_local_ssd(tmp_path):
    inv = _inventory()
    claims, volumes = _claims(inv), _volumes(inv, tmp_path)
    assert len(claims) >= 3, claims  # at least Qdrant, Redis and the research cache
    refs = [(v["spec"]["claimRef"], v) for v in volumes if "claimRef" in v["spec"]]
    bound = {(ref["namespace"], ref["name"]): v for ref, v in refs}
    problems = []
    for namespace, name, klass, request in claims:
        vol = bound.get((namespace, name))
        if vol is None:
            problems.append(f"{namespace}/{name}: no volume pre-bound to it")
            continue
        if klass != vol["spec"]["storageClassName"]:
            problems.append(f"{namespace}/{name}: class {klass!r}, its volume is {vol['spec']['storageClassName']!r}")
        if _bytes(vol["spec"]["capacity"]["storage"]) < request:
            problems.append(f"{namespace}/{name}: asks {request:.0f} bytes, volume {vol['metadata']['name']} has less")
    assert problems == []
    # and no volume waits for a claim nobody makes
    assert set(bound) == {(ns, name) for ns, name, _k, _r in claims}


def test_a_claim_without_its_volume_is_found(tmp_path):
    inv = _inventory()
    inv["k3s_gpu_storage"] = [v for v in inv["k3s_gpu_storage"] if v["name"] != "redis-data"]
    claims, volumes = _claims(inv), _volumes(inv, tmp_path)
    bound = {(v["spec"]["claimRef"]["namespace"], v["spec"]["claimRef"]["name"]) for v in volumes}
    assert [name for ns, name, _k, _r in claims if (ns, name) not in bound] == ["redis-data-redis-0"]
