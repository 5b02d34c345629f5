"""Render the k3s_gpu role's manifest template and validate it as the role does (offline)."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import to_nice_yaml

from ansible_collections.sophia.migrate.plugins.module_utils import _gpu
from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv

ROOT = Path(__file__).resolve().parents[3]
TEMPLATES = ROOT / "roles" / "k3s_gpu" / "templates"
FIX = ROOT / "tests" / "fixtures" / "gpu"


def render(tmp_path: Path, fixture: str, extra_values: dict | None = None) -> Path:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             autoescape=False)  # noqa: S701 - renders YAML, not HTML
    env.filters["to_nice_yaml"] = to_nice_yaml
    plan = _gpu.plan(_gpu.parse_query_csv((FIX / fixture).read_text(encoding="utf-8")))
    out = env.get_template("nvidia-device-plugin.yaml.j2").render(
        k3s_gpu_plan={"plan": plan}, k3s_gpu_device_plugin_version="v0.20.0",
        k3s_gpu_device_plugin_values=extra_values or {})
    path = tmp_path / "nvidia-device-plugin.yaml"
    path.write_text(out, encoding="utf-8")
    return path


def validate(path: Path) -> dict:
    return kv.validate_documents(kv.load_manifest_files([str(path)]), kv.Schemas([str(ROOT / "specs" / "k8s")]))


@pytest.mark.parametrize(("fixture", "replicas"), [("a10.csv", 3), ("mixed.csv", 2), ("h100.csv", None)])
def test_rendered_manifest_is_valid(tmp_path: Path, fixture: str, replicas: int | None) -> None:
    path = render(tmp_path, fixture)
    result = validate(path)
    assert result["errors"] == [], result
    values = yaml.safe_load(yaml.safe_load(path.read_text())["spec"]["valuesContent"])
    if replicas is None:
        assert "config" not in values  # dedicated GPUs: no time-slicing config
    else:
        cfg = yaml.safe_load(values["config"]["map"]["default"])
        assert cfg["sharing"]["timeSlicing"]["resources"][0]["replicas"] == replicas


def test_wrong_values_key_is_caught(tmp_path: Path) -> None:
    path = render(tmp_path, "a10.csv", {"runtimeClasName": "nvidia"})  # deliberate typo
    result = validate(path)
    assert any("runtimeClasName" in e for e in result["errors"]), result


def test_nested_wrong_values_key_is_caught(tmp_path: Path) -> None:
    path = render(tmp_path, "a10.csv", {"gfd": {"enabeld": True}})
    assert any("gfd.enabeld" in e for e in validate(path)["errors"])
