"""k3s_gpu: GPU Operator HelmChart, storage volumes and the kubeconfig rewrite, rendered from the role's own files.

The templates are rendered with the role's Jinja files and validated with the same code the role runs
(``_k8s_validate`` against ``specs/k8s``); the kubeconfig rewrite is the expression of
``tasks/kubeconfig.yml`` evaluated by Ansible's templar, so a change to the task is what gets tested.
"""

from __future__ import annotations

import base64
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.filter.core import combine, to_bool, to_json, to_nice_yaml
from ansible.template import Templar, trust_as_template

from ansible_collections.sophia.migrate.plugins.module_utils import _gpu
from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "k3s_gpu"
FIX = ROOT / "tests" / "fixtures" / "gpu"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(ROLE / "templates")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        autoescape=False,  # noqa: S701 - renders YAML, not HTML
    )
    env.filters.update(to_nice_yaml=to_nice_yaml, to_json=to_json, combine=combine, bool=to_bool)
    return env


def render(tmp_path: Path, template: str, **variables) -> Path:
    out = tmp_path / template.removesuffix(".j2")
    out.write_text(_env().get_template(template).render(**variables), encoding="utf-8")
    return out


def validate(path: Path) -> dict:
    return kv.validate_documents(kv.load_manifest_files([str(path)]), kv.Schemas([str(ROOT / "specs" / "k8s")]))


def operator(tmp_path: Path, fixture: str, values: dict | None = None, toolkit: bool = True) -> Path:
    plan = _gpu.plan(_gpu.parse_query_csv((FIX / fixture).read_text(encoding="utf-8")))
    return render(
        tmp_path,
        "gpu-operator.yaml.j2",
        k3s_gpu_plan={"plan": plan},
        k3s_gpu_gpu_operator_version=DEFAULTS["k3s_gpu_gpu_operator_version"],
        k3s_gpu_gpu_operator_toolkit=toolkit,
        k3s_gpu_gpu_operator_values=values or {},
    )


def chart_values(path: Path) -> dict:
    return yaml.safe_load(yaml.safe_load(path.read_text(encoding="utf-8"))["spec"]["valuesContent"])


# --- GPU Operator ---------------------------------------------------------------------------------------


def test_gpu_operator_values_file_is_vendored() -> None:
    version = DEFAULTS["k3s_gpu_gpu_operator_version"]
    defaults, note = kv.Schemas([str(ROOT / "specs" / "k8s")]).chart_values("gpu-operator", version)
    assert defaults is not None, note
    # the keys the role sets exist in the chart (checked here directly, not only through validate())
    assert defaults["driver"]["enabled"] is True and "env" in defaults["toolkit"]
    assert set(defaults["devicePlugin"]["config"]) >= {"create", "name", "default", "data"}


@pytest.mark.parametrize(("fixture", "replicas"), [("a10.csv", 3), ("mixed.csv", 2), ("h100.csv", None)])
def test_gpu_operator_manifest_valid_with_time_slicing_from_plan(
    tmp_path: Path, fixture: str, replicas: int | None
) -> None:
    path = operator(tmp_path, fixture)
    result = validate(path)
    assert result["errors"] == [] and result["warnings"] == [], result
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["kind"] == "HelmChart"
    assert (doc["spec"]["chart"], doc["spec"]["targetNamespace"]) == ("gpu-operator", "gpu-operator")
    values = chart_values(path)
    assert values["driver"] == {"enabled": False}
    assert values["cdi"]["enabled"] is True
    assert {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"} in values["toolkit"]["env"]
    assert not any(e["name"] == "CONTAINERD_CONFIG" for e in values["toolkit"]["env"])
    if replicas is None:
        assert "devicePlugin" not in values
    else:
        cfg = values["devicePlugin"]["config"]
        assert cfg["create"] is True and cfg["default"] in cfg["data"]
        sharing = yaml.safe_load(cfg["data"][cfg["default"]])["sharing"]["timeSlicing"]
        assert sharing["resources"] == [{"name": "nvidia.com/gpu", "replicas": replicas}]


def test_gpu_operator_extra_values_merge_recursively(tmp_path: Path) -> None:
    path = operator(
        tmp_path, "a10.csv", {"toolkit": {"version": "v1.20.0"}, "dcgmExporter": {"enabled": False}}, toolkit=False
    )
    values = chart_values(path)
    assert values["toolkit"]["enabled"] is False and values["toolkit"]["version"] == "v1.20.0"
    assert values["toolkit"]["env"][0]["name"] == "CONTAINERD_SOCKET"  # kept by the recursive merge
    assert validate(path)["errors"] == []


@pytest.mark.parametrize(
    ("extra", "bad"),
    [
        ({"toolkit": {"envv": []}}, "toolkit.envv"),
        ({"drivers": {"enabled": False}}, "drivers"),
        ({"devicePlugin": {"config": {"nmae": "x"}}}, "devicePlugin.config.nmae"),
    ],
)
def test_gpu_operator_wrong_values_key_is_caught(tmp_path: Path, extra: dict, bad: str) -> None:
    result = validate(operator(tmp_path, "a10.csv", extra))
    assert any(f"'{bad}'" in e for e in result["errors"]), result


# --- storage -------------------------------------------------------------------------------------------


def storage(tmp_path: Path, volumes: list[dict], node: str = "gpu-1") -> Path:
    return render(
        tmp_path,
        "sophia-storage.yaml.j2",
        k3s_gpu_storage=volumes,
        k3s_gpu_storage_class=DEFAULTS["k3s_gpu_storage_class"],
        _k3s_gpu_node_name=node,
    )


def test_default_storage_is_valid_and_pinned_to_the_node(tmp_path: Path) -> None:
    path = storage(tmp_path, DEFAULTS["k3s_gpu_storage"], node="lambda-gpu-1")
    result = validate(path)
    assert result["errors"] == [] and result["warnings"] == [], result
    assert result["kinds"] == {"PersistentVolume": 3, "StorageClass": 1}
    docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    sc, pvs = docs[0], docs[1:]
    assert sc["provisioner"] == "kubernetes.io/no-provisioner" and sc["reclaimPolicy"] == "Retain"
    assert {pv["metadata"]["name"] for pv in pvs} == {"qdrant-data", "redis-data", "embeddings-cache"}
    for pv, want in zip(pvs, DEFAULTS["k3s_gpu_storage"], strict=True):
        spec = pv["spec"]
        assert spec["storageClassName"] == sc["metadata"]["name"]
        assert spec["persistentVolumeReclaimPolicy"] == "Retain"
        assert spec["hostPath"]["path"] == want["path"] and spec["capacity"]["storage"] == want["size"]
        term = spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert term == {"key": "kubernetes.io/hostname", "operator": "In", "values": ["lambda-gpu-1"]}
        assert "claimRef" not in spec


def test_storage_options_claim_ref_and_access_modes(tmp_path: Path) -> None:
    path = storage(
        tmp_path,
        [
            {
                "name": "redis-data",
                "path": "/srv/ssd/redis",
                "size": "10Gi",
                "reclaim_policy": "Delete",
                "access_modes": ["ReadWriteOncePod"],
                "claim_namespace": "sophia",
            }
        ],
    )
    assert validate(path)["errors"] == []
    spec = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))[1]["spec"]
    assert spec["claimRef"] == {"namespace": "sophia", "name": "redis-data"}
    assert spec["accessModes"] == ["ReadWriteOncePod"] and spec["persistentVolumeReclaimPolicy"] == "Delete"


def test_storage_validation_catches_a_wrong_field(tmp_path: Path) -> None:
    path = storage(tmp_path, DEFAULTS["k3s_gpu_storage"][:1])
    path.write_text(
        path.read_text(encoding="utf-8").replace("    type: Directory", "    kind: Directory"), encoding="utf-8"
    )
    assert any("hostPath" in e for e in validate(path)["errors"])


# --- kubeconfig rewrite (the expression of tasks/kubeconfig.yml) ------------------------------------------

KUBECONFIG = """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tQ0EtLS0=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def rewrite(text: str, **hostvars) -> str:
    tasks = yaml.safe_load((ROLE / "tasks" / "kubeconfig.yml").read_text(encoding="utf-8"))
    block = next(t for t in tasks if "block" in t)
    copy = next(t["ansible.builtin.copy"] for t in block["block"] if "ansible.builtin.copy" in t)
    variables = {
        "k3s_gpu_api_address": "",
        "inventory_hostname": "gpu-1",
        **hostvars,
        **block["vars"],
        "_k3s_gpu_kubeconfig_raw": {"content": base64.b64encode(text.encode()).decode()},
    }
    variables = {k: trust_as_template(v) if isinstance(v, str) and "{{" in v else v for k, v in variables.items()}
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(copy["content"]))


@pytest.mark.parametrize(
    ("hostvars", "server"),
    [
        ({"k3s_gpu_api_address": "10.20.0.5"}, "https://10.20.0.5:6443"),
        ({"ansible_host": "203.0.113.7"}, "https://203.0.113.7:6443"),
        ({}, "https://gpu-1:6443"),
        ({"k3s_gpu_api_address": "fd00::5"}, "https://[fd00::5]:6443"),
    ],
)
def test_kubeconfig_server_rewritten(hostvars: dict, server: str) -> None:
    out = yaml.safe_load(rewrite(KUBECONFIG, **hostvars))
    assert out["clusters"][0]["cluster"]["server"] == server
    expected = yaml.safe_load(KUBECONFIG)
    expected["clusters"][0]["cluster"]["server"] = server
    assert out == expected  # nothing else changed (credentials intact)


def test_kubeconfig_non_loopback_server_left_alone() -> None:
    text = KUBECONFIG.replace("https://127.0.0.1:6443", "https://k3s.internal:6443")
    assert rewrite(text, k3s_gpu_api_address="10.0.0.1") == text


# --- online install URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "url"),
    [
        ("v1.31.6+k3s1", "https://github.com/k3s-io/k3s/releases/download/v1.31.6%2Bk3s1"),
        ("v1.32.2+k3s1", "https://github.com/k3s-io/k3s/releases/download/v1.32.2%2Bk3s1"),
    ],
)
def test_default_release_url_encodes_the_plus(version: str, url: str) -> None:
    templar = Templar(loader=DataLoader(), variables={"k3s_gpu_version": version})
    assert templar.template(trust_as_template(DEFAULTS["k3s_gpu_release_url"])) == url
