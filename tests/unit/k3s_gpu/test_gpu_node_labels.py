"""The GPU node carries the labels the device plugin's DaemonSet and the GPU pods select.

The device plugin chart (GFD and NFD off, as k3s_gpu installs it) requires nvidia.com/gpu.present=true or NFD's
labels; compose_to_k8s gives GPU pods the nodeSelector nvidia.com/gpu.present=true. Without a label nothing sets, the
device plugin never runs, nvidia.com/gpu is never allocatable and the GPU services stay Pending. These tests take the
labels from the config.yaml the role writes (K3s node-label) and the device plugin HelmChart the role renders, and
check with sophia.migrate's offline scheduler that both the DaemonSet and the GPU workloads fit the node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import to_nice_yaml

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_translate_context
from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_schedule as ks

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "specs" / "k8s"
DEDICATED = {"mode": "dedicated", "time_slicing_replicas": 1, "device_plugin_config": {}, "services": {}}


def role_config(tmp_path: Path, variables: dict) -> dict:
    """config.yaml as k3s_gpu's config tasks write it (run for real on localhost)."""
    config = tmp_path / "config.yaml"
    (tmp_path / "play.yml").write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.include_role:\n        name: sophia.migrate.k3s_gpu\n        tasks_from: config.yml\n")
    (tmp_path / "vars.json").write_text(json.dumps({
        "ansible_python_interpreter": sys.executable, "_k3s_gpu_config_file": str(config),
        "k3s_gpu_service_enabled": False, **variables}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'vars.json'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return yaml.safe_load(config.read_text(encoding="utf-8"))


def labels_of(config: dict) -> dict[str, str]:
    entries = config.get("node-label") or []
    return dict(e.split("=", 1) for e in ([entries] if isinstance(entries, str) else entries))


def device_plugin_manifest(values: dict | None = None, plan: dict | None = None) -> dict:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "roles" / "k3s_gpu" / "templates")),
                             undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - renders YAML
    env.filters["to_nice_yaml"] = to_nice_yaml
    text = env.get_template("nvidia-device-plugin.yaml.j2").render(
        k3s_gpu_plan={"plan": plan or DEDICATED}, k3s_gpu_device_plugin_version="v0.20.0",
        k3s_gpu_device_plugin_values=values or {})
    return yaml.safe_load(text)


def schedule(docs: list[dict], labels: dict[str, str], gpus: int = 3, replicas: int = 1) -> dict:
    node = ks.plan_node({"name": "lambda-gpu-01", "labels": labels, "gpus": gpus, "time_slicing_replicas": replicas})
    return ks.check([("test", d) for d in docs], [node], ks.ChartValues([str(SPECS)]), ks.K3S_RUNTIME_CLASSES)


def gpu_workloads() -> list[dict]:
    """compose_to_k8s' GPU Deployment as the role renders it (nodeSelector, toleration, runtimeClassName)."""
    pod = {"runtimeClassName": "nvidia", "nodeSelector": dict(_compose_translate_context.DEFAULT_GPU_NODE_SELECTOR),
           "tolerations": [dict(x) for x in _compose_translate_context.DEFAULT_GPU_TOLERATIONS],
           "containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}
    return [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mcp-research", "namespace": "sophia"},
             "spec": {"replicas": 1, "template": {"spec": pod}}}]


@pytest.mark.slow
def test_the_gpu_node_the_role_configures_runs_the_device_plugin(tmp_path):
    # the defect: config.yaml set no label, so the device plugin's required affinity matched no term
    config = role_config(tmp_path, {"k3s_gpu_gpu_enabled": True, "k3s_gpu_config": {"node-name": "gpu-1"}})
    labels = labels_of(config)
    assert labels.get("nvidia.com/gpu.present") == "true", config
    result = schedule([device_plugin_manifest(), *gpu_workloads()], labels)
    assert result["problems"] == [], result
    placed = {w["workload"]: w["nodes"] for w in result["workloads"]}
    assert placed["DaemonSet nvidia-device-plugin/nvidia-device-plugin "
                  "(from HelmChart kube-system/nvidia-device-plugin)"] == ["lambda-gpu-01"]
    assert placed["Deployment sophia/mcp-research"] == ["lambda-gpu-01"]


@pytest.mark.slow
def test_node_labels_merge_with_k3s_config_and_only_with_a_gpu_and_the_device_plugin(tmp_path):
    mine = ["sophia.ai/gpu=true", "nvidia.com/gpu.present=x"]
    config = role_config(tmp_path, {"k3s_gpu_gpu_enabled": True, "k3s_gpu_config": {"node-label": mine}})
    assert config["node-label"] == mine  # the operator's own choice wins
    config = role_config(tmp_path, {"k3s_gpu_gpu_enabled": True, "k3s_gpu_config": {"node-label": "a=b"},
                                    "k3s_gpu_gpu_node_labels": {"nvidia.com/gpu.present": True, "x.io/y": "z"}})
    assert config["node-label"] == ["a=b", "nvidia.com/gpu.present=true", "x.io/y=z"]
    assert "node-label" not in role_config(tmp_path, {"k3s_gpu_gpu_enabled": False})  # the lab: no GPU
    assert "node-label" not in role_config(tmp_path, {"k3s_gpu_gpu_enabled": True, "k3s_gpu_gpu_stack": "gpu_operator"})


def test_without_the_label_the_device_plugin_and_gpu_pods_cannot_schedule():
    result = schedule([device_plugin_manifest(), *gpu_workloads()], {})
    problems = "\n".join(result["problems"])
    assert "nvidia-device-plugin" in problems and "required node affinity matches no term" in problems
    assert "term 2 (nvidia.com/gpu.present In ['true']): the node has no label nvidia.com/gpu.present" in problems
    assert "Deployment sophia/mcp-research cannot be scheduled" in problems
    assert "nodeSelector nvidia.com/gpu.present=true: the node has no label nvidia.com/gpu.present" in problems


def test_role_default_labels_cover_what_the_chart_and_compose_to_k8s_select():
    defaults = yaml.safe_load((ROOT / "roles" / "k3s_gpu" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    labels = defaults["k3s_gpu_gpu_node_labels"]
    assert _compose_translate_context.DEFAULT_GPU_NODE_SELECTOR.items() <= labels.items()
    assert schedule([device_plugin_manifest(), *gpu_workloads()], labels)["schedulable"]
    specs = yaml.safe_load((ROOT / "roles" / "k3s_gpu" / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    assert specs["argument_specs"]["main"]["options"]["k3s_gpu_gpu_node_labels"]["default"] == labels


def test_time_slicing_plan_advertises_gpus_times_replicas():
    plan = {"mode": "time-slicing", "time_slicing_replicas": 2, "services": {},
            "device_plugin_config": {"version": "v1", "sharing": {"timeSlicing": {
                "resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}}}
    docs = [device_plugin_manifest(plan=plan), *gpu_workloads() * 4]
    for i, doc in enumerate(docs[1:]):
        doc["metadata"] = {"name": f"gpu-{i}", "namespace": "sophia"}
    assert schedule(docs, {"nvidia.com/gpu.present": "true"}, gpus=2, replicas=2)["schedulable"]
    result = schedule(docs, {"nvidia.com/gpu.present": "true"}, gpus=1, replicas=2)
    assert not result["schedulable"]
    assert any("Insufficient nvidia.com/gpu: needs 1, 0 of 2 allocatable (1 GPU(s) x 2 time-slicing replica(s))"
               in p for p in result["problems"]), result["problems"]
