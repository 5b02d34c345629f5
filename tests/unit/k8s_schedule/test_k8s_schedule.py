"""sophia.migrate.k8s_schedulable: offline proof that the GPU workloads and the GPU stack's DaemonSets fit the planned
GPU node, and a failure naming the workload and the term for each way they do not (label, taint, GPU count,
RuntimeClass). The production case renders compose_to_k8s on the repository's copy of the Sophia stack with the
production inventory's GPU plan, and k3s_gpu's device plugin HelmChart with production's values."""

from __future__ import annotations

import copy
from pathlib import Path

import jinja2
import pytest
import yaml
from ansible.plugins.filter.core import to_nice_yaml

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _compose_load,
    _compose_translate,
    _compose_translate_context,
)
from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_schedule as ks
from ansible_collections.sophia.migrate.plugins.modules import k8s_schedulable
from support.modules import run_module

ROOT = Path(__file__).resolve().parents[3]
SPECS = str(ROOT / "specs" / "k8s")
INVENTORY = ROOT / "inventories" / "production" / "group_vars" / "all"
SOPHIA = ROOT / "tests" / "fixtures" / "compose" / "sophia" / "docker-compose.yml"
GPU_LABELS = {"nvidia.com/gpu.present": "true"}


def production_services() -> list[dict]:
    inv: dict = {}
    for name in ("main.yml", "k8s_services.yml"):
        inv.update(yaml.safe_load((INVENTORY / name).read_text(encoding="utf-8")))
    project = _compose_load.load_project([str(SOPHIA)], profiles=inv["k8s_services_profiles"])
    out = _compose_translate.translate(project, _compose_translate_context.Options(
        namespace=inv["sophia_k8s_namespace"], stateful=tuple(inv["k8s_services_stateful"]),
        volume_sizes=inv["k8s_services_volume_sizes"], storage_class=inv["k8s_services_storage_class"],
        gpu_plan=inv["k8s_services_gpu_plan"], gpu_runtime_class=k8s_services_default("gpu_runtime_class")))
    return [d for docs in out["objects"].values() for d in docs]


def k8s_services_default(name: str):
    defaults = yaml.safe_load((ROOT / "roles" / "k8s_services" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    return defaults[f"k8s_services_{name}"]


def device_plugin(values: dict | None = None) -> dict:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "roles" / "k3s_gpu" / "templates")),
                             undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - renders YAML
    env.filters["to_nice_yaml"] = to_nice_yaml
    k3s = yaml.safe_load((INVENTORY / "k3s_gpu.yml").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((ROOT / "roles" / "k3s_gpu" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    plan = yaml.safe_load((INVENTORY / "k8s_services.yml").read_text(encoding="utf-8"))["k8s_services_gpu_plan"]
    return yaml.safe_load(env.get_template("nvidia-device-plugin.yaml.j2").render(
        k3s_gpu_plan={"plan": plan},
        k3s_gpu_device_plugin_version=k3s.get("k3s_gpu_device_plugin_version",
                                              defaults["k3s_gpu_device_plugin_version"]),
        k3s_gpu_device_plugin_values=values if values is not None else k3s.get(
            "k3s_gpu_device_plugin_values", defaults["k3s_gpu_device_plugin_values"])))


def production_labels() -> dict:
    defaults = yaml.safe_load((ROOT / "roles" / "k3s_gpu" / "defaults" / "main.yml").read_text(encoding="utf-8"))
    return defaults["k3s_gpu_gpu_node_labels"]


def node(labels=None, taints=(), gpus=3, replicas=1, name="lambda-gpu-01") -> dict:
    return {"name": name, "labels": GPU_LABELS if labels is None else labels, "taints": list(taints), "gpus": gpus,
            "time_slicing_replicas": replicas}


def check(docs, nodes, runtime_classes=ks.K3S_RUNTIME_CLASSES) -> dict:
    planned = [ks.plan_node(n, i) for i, n in enumerate(nodes)]
    return ks.check([("t", d) for d in docs], planned, ks.ChartValues([SPECS]), runtime_classes)


def gpu_deployment(name="mcp-agents", gpus=1, **pod) -> dict:
    spec = {"runtimeClassName": "nvidia", "nodeSelector": dict(GPU_LABELS),
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{"name": "app", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}], **pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "sophia"},
            "spec": {"replicas": 1, "template": {"spec": spec}}}


# --------------------------------------------------------------------------- production

def test_production_manifests_are_schedulable_on_the_planned_gpu_node():
    docs = [*production_services(), device_plugin()]
    result = check(docs, [node(production_labels())])
    assert result["problems"] == [], result["problems"]
    gpu = {w["workload"]: w for w in result["workloads"] if w["gpu"]}
    assert sorted(gpu) == ["Deployment sophia/mcp-agents", "StatefulSet sophia/mcp-context",
                           "StatefulSet sophia/mcp-research"]
    assert all(w["nodes"] == ["lambda-gpu-01"] for w in gpu.values())
    assert result["gpu_requested"] == 3 and result["gpu_allocatable"] == 3
    stack = [w for w in result["workloads"] if w["gpu_stack"]]
    assert [w["nodes"] for w in stack] == [["lambda-gpu-01"]]


def test_production_on_a_node_without_the_label_fails_naming_workload_and_term():
    result = check([*production_services(), device_plugin()], [node({})])
    problems = result["problems"]
    assert not result["schedulable"]
    assert any(p.startswith("DaemonSet nvidia-device-plugin/nvidia-device-plugin (from HelmChart "
                            "kube-system/nvidia-device-plugin) cannot run on the GPU node: node lambda-gpu-01: "
                            "required node affinity matches no term: term 0 (feature.node.kubernetes.io/pci-10de"
                            ".present In ['true']): the node has no label feature.node.kubernetes.io/pci-10de.present")
               for p in problems), problems
    for name in ("Deployment sophia/mcp-agents", "StatefulSet sophia/mcp-context", "StatefulSet sophia/mcp-research"):
        assert (f"{name} cannot be scheduled: node lambda-gpu-01: nodeSelector nvidia.com/gpu.present=true: the node "
                "has no label nvidia.com/gpu.present") in problems


# --------------------------------------------------------------------------- each failure

def test_untolerated_taint_is_named():
    deployment = gpu_deployment(tolerations=[])
    result = check([deployment], [node(taints=["nvidia.com/gpu=present:NoSchedule"])])
    assert result["problems"] == ["Deployment sophia/mcp-agents cannot be scheduled: node lambda-gpu-01: taint "
                                  "nvidia.com/gpu=present:NoSchedule is not tolerated"]
    # tolerated (Exists on the key, any value), and PreferNoSchedule never blocks
    assert check([gpu_deployment()], [node(taints=["nvidia.com/gpu=present:NoSchedule"])])["schedulable"]
    assert check([deployment], [node(taints=[{"key": "a", "value": "b", "effect": "PreferNoSchedule"}])])["schedulable"]
    # Equal needs the value; a wrong effect does not tolerate
    eq = gpu_deployment(tolerations=[{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute"}])
    assert check([eq], [node(taints=["k=v:NoExecute"])])["schedulable"]
    assert not check([eq], [node(taints=["k=w:NoExecute"])])["schedulable"]
    assert not check([eq], [node(taints=["k=v:NoSchedule"])])["schedulable"]
    everything = gpu_deployment(tolerations=[{"operator": "Exists"}])
    assert check([everything], [node(taints=["k=v:NoSchedule", "x:NoExecute"])])["schedulable"]


def test_more_gpus_requested_than_planned():
    docs = [gpu_deployment("a", 2), gpu_deployment("b", 1), gpu_deployment("c", 1)]
    result = check(docs, [node(gpus=3)])
    assert result["problems"] == [
        "Deployment sophia/c cannot be scheduled: node lambda-gpu-01: Insufficient nvidia.com/gpu: needs 1, 0 of 3 "
        "allocatable (3 GPU(s) x 1 time-slicing replica(s)) left after Deployment sophia/a, Deployment sophia/b"]
    assert result["gpu_requested"] == 4 and result["gpu_allocatable"] == 3
    assert check(docs, [node(gpus=2, replicas=2)])["schedulable"]  # 4 time-sliced GPUs
    replicas = copy.deepcopy(gpu_deployment("d", 1))
    replicas["spec"]["replicas"] = 4
    assert "needs 1, 0 of 3" in check([replicas], [node(gpus=3)])["problems"][0]
    # an unknown GPU count is not checked but said so
    unknown = check(docs, [node(gpus=None)])
    assert unknown["schedulable"] and unknown["nodes"][0]["gpu_count_known"] is False


def test_missing_runtime_class():
    result = check([gpu_deployment()], [node()], runtime_classes=[])
    assert result["problems"] == ["Deployment sophia/mcp-agents: runtimeClassName nvidia: no RuntimeClass nvidia "
                                  "exists (known: none)"]
    runtime_class = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"},
                     "handler": "nvidia", "scheduling": {"nodeSelector": {"gpu": "yes"}}}
    # a RuntimeClass in the manifests counts, and its scheduling.nodeSelector is merged into the pod
    result = check([gpu_deployment(), runtime_class], [node()], runtime_classes=[])
    assert "nodeSelector gpu=yes: the node has no label gpu" in result["problems"][0]
    assert check([gpu_deployment(), runtime_class], [node({**GPU_LABELS, "gpu": "yes"})], [])["schedulable"]


@pytest.mark.parametrize(("expr", "labels", "ok"), [
    ({"key": "a", "operator": "In", "values": ["1", "2"]}, {"a": "2"}, True),
    ({"key": "a", "operator": "In", "values": ["1"]}, {"a": "2"}, False),
    ({"key": "a", "operator": "NotIn", "values": ["1"]}, {}, True),
    ({"key": "a", "operator": "NotIn", "values": ["1"]}, {"a": "1"}, False),
    ({"key": "a", "operator": "Exists"}, {"a": ""}, True),
    ({"key": "a", "operator": "Exists"}, {}, False),
    ({"key": "a", "operator": "DoesNotExist"}, {}, True),
    ({"key": "a", "operator": "DoesNotExist"}, {"a": "x"}, False),
    ({"key": "a", "operator": "Gt", "values": ["3"]}, {"a": "4"}, True),
    ({"key": "a", "operator": "Gt", "values": ["3"]}, {"a": "3"}, False),
    ({"key": "a", "operator": "Lt", "values": ["3"]}, {"a": "2"}, True),
    ({"key": "a", "operator": "Lt", "values": ["3"]}, {"a": "x"}, False),
    ({"key": "a", "operator": "Lt", "values": ["3"]}, {}, False),
])
def test_match_expression_operators(expr, labels, ok):
    assert (ks.match_expression(expr, labels, "e") is None) is ok


def test_terms_are_ored_and_expressions_anded():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]},
                              {"key": "b", "operator": "Exists"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]}]}}}
    deployment = gpu_deployment(affinity=affinity)
    assert check([deployment], [node({**GPU_LABELS, "a": "1", "b": ""})])["schedulable"]
    result = check([deployment], [node({**GPU_LABELS, "a": "1"})])
    assert ("required node affinity matches no term: term 0 (b Exists): the node has no label b; "
            "term 1 (metadata.name In ['other']): node name lambda-gpu-01") in result["problems"][0]
    assert check([deployment], [node(name="other")])["schedulable"]


def test_gpu_operator_labels_come_from_nfd_and_the_operator():
    operator = {"apiVersion": "helm.cattle.io/v1", "kind": "HelmChart",
                "metadata": {"name": "gpu-operator", "namespace": "kube-system"},
                "spec": {"chart": "gpu-operator", "version": "v26.7.0", "targetNamespace": "gpu-operator",
                         "valuesContent": "driver:\n  enabled: false\n"}}
    result = check([operator, gpu_deployment()], [node({})], runtime_classes=[])
    assert result["problems"] == [], result["problems"]  # NFD labels the GPU node, the operator the rest
    labels = result["nodes"][0]["labels"]
    assert labels["nvidia.com/gpu.present"] == "true" and labels["nvidia.com/gpu.deploy.device-plugin"] == "true"
    no_nfd = copy.deepcopy(operator)
    no_nfd["spec"]["valuesContent"] = "nfd:\n  enabled: false\n"
    problems = check([no_nfd, gpu_deployment()], [node({})], runtime_classes=[])["problems"]
    assert any("nvidia-device-plugin-daemonset (operand of HelmChart kube-system/gpu-operator) cannot run on the GPU "
               "node: node lambda-gpu-01: nodeSelector nvidia.com/gpu.deploy.device-plugin=true" in p for p in problems)


def test_device_plugin_values_override_the_chart_and_unknown_chart_version_fails():
    tainted = [node(taints=["dedicated=gpu:NoExecute"])]
    assert not check([device_plugin()], tainted)["schedulable"]
    values = {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}
    assert check([device_plugin(values)], tainted)["schedulable"]
    doc = device_plugin()
    doc["spec"]["version"] = "v9.9.9"
    with pytest.raises(ks.ScheduleError, match=r"no default values for chart nvidia-device-plugin version v9\.9\.9"):
        check([doc], [node()])


# --------------------------------------------------------------------------- the module

def test_module_passes_and_fails_naming_the_workload(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump_all([gpu_deployment(), device_plugin()]), encoding="utf-8")
    args = {"paths": [str(path)], "chart_values_dirs": [SPECS], "runtime_classes": ["nvidia"],
            "nodes": [{"name": "gpu", "labels": GPU_LABELS, "gpus": 1}]}
    out = run_module(k8s_schedulable, args, capsys)
    assert out["schedulable"] is True and not out.get("failed") and out["changed"] is False
    out = run_module(k8s_schedulable, {**args, "nodes": [{"name": "gpu", "labels": GPU_LABELS, "gpus": 0}]}, capsys)
    assert out["failed"] and "Deployment sophia/mcp-agents cannot be scheduled" in out["msg"]
    assert "Insufficient nvidia.com/gpu: needs 1, 0 of 0" in out["msg"]


@pytest.mark.parametrize(("args", "needle"), [
    ({"paths": ["/nonexistent/x.yaml"]}, "no such file"),
    ({"manifests": [{"kind": "Deployment", "metadata": [], "spec": []}]}, "spec must be a mapping"),
    ({"manifests": [{"kind": "Deployment", "spec": {"replicas": "x", "template": {}}}]}, "spec.replicas"),
    ({"manifests": [{"kind": "Deployment", "spec": {"template": {"spec": {"containers": {}}}}}]}, "containers"),
    ({"manifests": [{"kind": "Pod", "spec": {"containers": [{"resources": {"limits": {"a/b": "x"}}}]}}]},
     "must be an integer"),
    ({"manifests": [{"kind": "Pod", "spec": {"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "a", "operator": "Near"}]}]}}}}}]}, "unknown operator"),
    ({"manifests": [{"kind": "Pod", "spec": {"containers": [], "tolerations": "x"}}]}, "tolerations must be a list"),
    ({"manifests": [{"kind": "Pod", "spec": {"containers": [], "runtimeClassName": ["nvidia"]}}]},
     "runtimeClassName must be a string"),
    ({"manifests": [{"kind": "HelmChart", "spec": {"chart": "gpu-operator", "version": "v1"}}]},
     "no default values"),
    ({"manifests": [{"kind": "Pod", "spec": {}}], "nodes": [{"name": "n", "taints": ["k=v:Sometimes"]}]},
     "effect must be one of"),
    ({"manifests": [{"kind": "Pod", "spec": {}}], "nodes": [{"name": "n", "taints": [5]}]}, "taints[0]"),
    ({"manifests": [{"kind": "Pod", "spec": {}}], "nodes": [{"name": "n", "gpus": -1}]}, "at least 0"),
    ({"manifests": [{"kind": "Pod", "spec": {}}], "nodes": [{"name": "n", "allocatable": {"a/b": "lots"}}]},
     "allocatable[a/b]"),
    ({"manifests": [{"kind": "Pod", "spec": {}}], "nodes": [{"name": "n", "labels": {"a": "b"}, "gpus": "x"}]},
     "gpus"),
    ({"manifests": [{"kind": "Pod", "spec": {}}], "nodes": []}, "at least one planned node"),
    ({"nodes": [{"name": "n"}]}, "give the manifests"),
])
def test_bad_input_fails_cleanly(args, needle, capsys):
    args = {"nodes": [{"name": "n"}], "chart_values_dirs": [SPECS], **args}
    out = run_module(k8s_schedulable, args, capsys)
    assert out["failed"] and needle in out["msg"], out
    assert "Traceback" not in out["msg"]
