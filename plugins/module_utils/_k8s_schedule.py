"""Offline schedulability: can the rendered workloads run on the planned nodes?

Answers, without a cluster, the questions kube-scheduler asks of each pod (the predicates that matter for the GPU
stack), and names the workload and the term that does not match when one fails:

- ``runtimeClassName`` names a RuntimeClass that exists (in the manifests, or one the cluster brings: K3s' packaged
  ``manifests/runtimes.yaml`` creates ``nvidia`` and ``nvidia-experimental``); the RuntimeClass' own
  ``scheduling.nodeSelector``/``tolerations`` are merged into the pod as the RuntimeClass admission controller does;
- ``nodeSelector`` (every key=value on the node);
- required node affinity: ``nodeSelectorTerms`` are ORed, the ``matchExpressions`` of a term ANDed; operators
  In, NotIn, Exists, DoesNotExist, Gt, Lt; ``matchFields`` on ``metadata.name``;
- taints with effect NoSchedule or NoExecute must be tolerated (Equal/Exists, empty effect matches every effect,
  empty key with Exists tolerates everything); PreferNoSchedule never blocks;
- extended resources (names with a ``/``, such as ``nvidia.com/gpu``): the requests of every pod placed on a node
  (replicas x containers; limits count as requests for extended resources) must fit its allocatable.

Workloads come from Pods, Deployments, ReplicaSets, StatefulSets, DaemonSets and Jobs, and from the HelmCharts of the
GPU stacks, whose DaemonSet pod specs are derived from the chart's default values (``<chart>-values-<version>.yaml``)
merged with the HelmChart's values:

- ``nvidia-device-plugin``: the device plugin DaemonSet (and GFD's when enabled) with the chart's ``nodeSelector``,
  ``affinity``, ``tolerations`` and ``runtimeClassName``; NFD runs when ``nfd.enabled`` (else ``gfd.enabled``) is
  true and then labels GPU nodes ``feature.node.kubernetes.io/pci-10de.present=true``;
- ``gpu-operator``: NFD runs when ``nfd.enabled``; the operator labels a node that carries an NFD NVIDIA PCI label
  ``nvidia.com/gpu.present=true`` and ``nvidia.com/gpu.deploy.<operand>=true``, and its operand DaemonSets select
  those labels, tolerate ``daemonsets.tolerations`` and run with ``operator.runtimeClass`` (a RuntimeClass the
  operator creates).

DaemonSets of a GPU stack must run on every GPU node (a node with ``nvidia.com/gpu`` allocatable); other DaemonSets on
at least one node. Other pods are placed first-fit, the largest GPU requests first.
"""

from __future__ import annotations

import copy
import glob
import os
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv

GPU_RESOURCE = "nvidia.com/gpu"
# K3s' packaged manifests/runtimes.yaml (k3s-io/k3s) creates these RuntimeClasses (among others for wasm runtimes).
K3S_RUNTIME_CLASSES = ("nvidia", "nvidia-experimental")
# NFD's label for a node with an NVIDIA PCI device (vendor 10de), as NFD's pci source with deviceLabelFields [vendor]
# publishes it; the GPU Operator also accepts the class-qualified forms.
NFD_NVIDIA_LABEL = "feature.node.kubernetes.io/pci-10de.present"
OPERATOR_GPU_NODE_LABELS = (NFD_NVIDIA_LABEL, "feature.node.kubernetes.io/pci-0302_10de.present",
                            "feature.node.kubernetes.io/pci-0300_10de.present")
OPERATOR_COMMON_LABEL = "nvidia.com/gpu.present"
OPERATOR_OPERANDS = ("driver", "container-toolkit", "device-plugin", "gpu-feature-discovery", "dcgm-exporter",
                     "operator-validator")
WORKLOAD_KINDS = ("Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")
BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


class ScheduleError(Exception):
    """Input that cannot be checked (a malformed node plan or manifest)."""


class ChartValues(kv.Schemas):
    """Chart default values files only (``<chart>-values-<version>.yaml``): no CRD is parsed."""

    def __init__(self, dirs: t.Iterable[str] = ()):  # pylint: disable=super-init-not-called
        self.crds = {}
        self.values = {}
        self.values_files = {}
        for directory in dirs:
            for path in sorted(glob.glob(os.path.join(directory, "*.y*ml"))) if os.path.isdir(directory) else []:
                match = kv._VALUES_FILE.match(os.path.basename(path))
                if match:
                    self.values_files[(match["chart"], match["version"])] = path


# --------------------------------------------------------------------------- planned nodes

def _int(value: t.Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise ScheduleError(f"{where} must be an integer, got {value!r}")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError) as exc:
        raise ScheduleError(f"{where} must be an integer, got {value!r}") from exc
    if number < minimum:
        raise ScheduleError(f"{where} must be at least {minimum}, got {number}")
    return number


def plan_node(spec: t.Any, index: int = 0) -> dict[str, t.Any]:
    """A planned node from ``{name, labels, taints, allocatable, gpus, time_slicing_replicas}``.

    ``allocatable[nvidia.com/gpu]`` defaults to ``gpus x time_slicing_replicas`` (time-slicing without renaming
    advertises each GPU that many times). The kubelet's well-known labels (hostname, os, arch) are added.
    """
    where = f"nodes[{index}]"
    if not isinstance(spec, dict):
        raise ScheduleError(f"{where} must be a mapping, got {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ScheduleError(f"{where}.name must be a non-empty string")
    where = f"node {name}"
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict):
        raise ScheduleError(f"{where}: labels must be a mapping of label to value")
    labels = {str(k): ("" if v is None else str(v).lower() if isinstance(v, bool) else str(v))
              for k, v in labels.items()}
    labels.setdefault("kubernetes.io/hostname", name)
    labels.setdefault("kubernetes.io/os", "linux")
    labels.setdefault("kubernetes.io/arch", "amd64")
    taints = spec.get("taints") or []
    if not isinstance(taints, list):
        raise ScheduleError(f"{where}: taints must be a list")
    clean_taints = []
    for i, given in enumerate(taints):
        taint = given
        if isinstance(given, str):  # key=value:Effect, as kubectl taint and K3s node-taint write it
            head, _sep, effect = given.rpartition(":")
            key, _sep, value = head.partition("=")
            taint = {"key": key, "value": value, "effect": effect}
        if not isinstance(taint, dict) or not taint.get("key"):
            raise ScheduleError(f"{where}: taints[{i}] must be key=value:Effect or a mapping with key and effect")
        if taint.get("effect") not in TAINT_EFFECTS:
            raise ScheduleError(f"{where}: taints[{i}] effect must be one of {', '.join(TAINT_EFFECTS)}, "
                                f"got {taint.get('effect')!r}")
        clean_taints.append({"key": str(taint["key"]), "value": str(taint.get("value") or ""),
                             "effect": taint["effect"]})
    allocatable_in = spec.get("allocatable") or {}
    if not isinstance(allocatable_in, dict):
        raise ScheduleError(f"{where}: allocatable must be a mapping of resource to quantity")
    allocatable = {str(k): _int(v, f"{where}: allocatable[{k}]") for k, v in allocatable_in.items() if "/" in str(k)}
    gpus = spec.get("gpus")
    replicas = _int(spec.get("time_slicing_replicas") or 1, f"{where}: time_slicing_replicas", 1)
    if gpus is not None:
        gpus = _int(gpus, f"{where}: gpus")
        allocatable.setdefault(GPU_RESOURCE, gpus * replicas)
    return {"name": name, "labels": labels, "taints": clean_taints, "allocatable": allocatable,
            "gpus": gpus, "time_slicing_replicas": replicas, "gpu_count_known": GPU_RESOURCE in allocatable}


# --------------------------------------------------------------------------- workloads

def _where(doc: dict[str, t.Any]) -> str:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    ns = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{doc.get('kind', '?')} {ns}{meta.get('name', '?')}"


def _mapping(value: t.Any, where: str) -> dict[str, t.Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ScheduleError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _list(value: t.Any, where: str) -> list[t.Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ScheduleError(f"{where} must be a list, got {type(value).__name__}")
    return value


def _pod_requests(pod: dict[str, t.Any], where: str) -> dict[str, int]:
    """Extended-resource requests of one pod: sum over containers, at least the largest init container."""
    def of(container: t.Any, here: str) -> dict[str, int]:
        res = _mapping(_mapping(container, here).get("resources"), f"{here}.resources")
        limits = _mapping(res.get("limits"), f"{here}.resources.limits")
        requests = _mapping(res.get("requests"), f"{here}.resources.requests")
        merged = {**limits, **requests}  # extended resources: a limit alone is the request
        return {k: _int(v, f"{here}.resources[{k}]") for k, v in merged.items() if "/" in str(k)
                and not str(k).startswith("hugepages-")}
    total: dict[str, int] = {}
    for i, c in enumerate(_list(pod.get("containers"), f"{where}: containers")):
        for k, v in of(c, f"{where}: containers[{i}]").items():
            total[k] = total.get(k, 0) + v
    for i, c in enumerate(_list(pod.get("initContainers"), f"{where}: initContainers")):
        for k, v in of(c, f"{where}: initContainers[{i}]").items():
            total[k] = max(total.get(k, 0), v)
    return {k: v for k, v in total.items() if v}


def _workload(doc: dict[str, t.Any], pod: t.Any, pods: int, daemon: bool, stack: bool = False,
              name: str | None = None) -> dict[str, t.Any]:
    where = name or _where(doc)
    pod = _mapping(pod, f"{where}: pod spec")
    return {"name": where, "kind": doc.get("kind") if name is None else "DaemonSet", "pod": pod, "pods": pods,
            "daemon": daemon, "gpu_stack": stack, "requests": _pod_requests(pod, where)}


def _merge_values(defaults: dict[str, t.Any], values: dict[str, t.Any]) -> dict[str, t.Any]:
    """Helm's merge of user values over chart defaults: maps merge, anything else replaces, null deletes."""
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_values(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _chart_values(doc: dict[str, t.Any], schemas: kv.Schemas) -> dict[str, t.Any]:
    spec = _mapping(doc.get("spec"), f"{_where(doc)}: spec")
    chart, version = str(spec.get("chart") or ""), spec.get("version")
    defaults, problem = schemas.chart_values(chart, str(version) if version else None)
    if defaults is None:
        raise ScheduleError(f"{_where(doc)}: cannot derive the pods of chart {chart} "
                            f"{problem or 'without its default values file in the chart values directories'}")
    values, errors = kv.helm_values(doc)
    if errors:
        raise ScheduleError("; ".join(errors))
    return _merge_values(defaults, values)


def _enabled(values: dict[str, t.Any], path: str, default: bool) -> bool:
    node: t.Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return bool(node) if node is not None else default


class Stacks(t.NamedTuple):
    nfd: bool
    operator: bool
    operator_runtime_class: str | None


def _helm_workloads(doc: dict[str, t.Any], schemas: kv.Schemas) -> tuple[list[dict[str, t.Any]], Stacks]:
    spec = _mapping(doc.get("spec"), f"{_where(doc)}: spec")
    chart = str(spec.get("chart") or "")
    meta = _mapping(doc.get("metadata"), f"{_where(doc)}: metadata")
    target = str(spec.get("targetNamespace") or meta.get("namespace") or "default")
    if chart == "nvidia-device-plugin":
        values = _chart_values(doc, schemas)
        pod = {"nodeSelector": values.get("nodeSelector") or {}, "affinity": values.get("affinity") or {},
               "tolerations": values.get("tolerations") or [], "containers": [{"name": "nvidia-device-plugin"}]}
        if values.get("runtimeClassName"):
            pod["runtimeClassName"] = values["runtimeClassName"]
        out = []
        if _enabled(values, "devicePlugin.enabled", True):
            out.append(_workload(doc, pod, 1, True, True,
                                 f"DaemonSet {target}/nvidia-device-plugin (from {_where(doc)})"))
        if _enabled(values, "gfd.enabled", False):
            out.append(_workload(doc, copy.deepcopy(pod), 1, True, True,
                                 f"DaemonSet {target}/gpu-feature-discovery (from {_where(doc)})"))
        nfd = _enabled(values, "nfd.enabled", _enabled(values, "gfd.enabled", False))
        return out, Stacks(nfd, False, None)
    if chart == "gpu-operator":
        values = _chart_values(doc, schemas)
        operator = _mapping(values.get("operator"), f"{_where(doc)}: values operator")
        daemonsets = _mapping(values.get("daemonsets"), f"{_where(doc)}: values daemonsets")
        runtime_class = operator.get("runtimeClass") or "nvidia"
        out = []
        for operand, key in (("device-plugin", "devicePlugin"), ("container-toolkit", "toolkit")):
            if not _enabled(values, f"{key}.enabled", True):
                continue
            pod = {"nodeSelector": {f"nvidia.com/gpu.deploy.{operand}": "true"},
                   "tolerations": daemonsets.get("tolerations") or [], "runtimeClassName": runtime_class,
                   "containers": [{"name": operand}]}
            if operand == "container-toolkit":
                pod.pop("runtimeClassName")  # the toolkit installs the runtime: it runs without it
            out.append(_workload(doc, pod, 1, True, True,
                                 f"DaemonSet {target}/nvidia-{operand}-daemonset (operand of {_where(doc)})"))
        return out, Stacks(_enabled(values, "nfd.enabled", True), True, str(runtime_class))
    return [], Stacks(False, False, None)


def collect(docs: t.Iterable[tuple[str, t.Any]], schemas: kv.Schemas) -> tuple[
        list[dict[str, t.Any]], dict[str, dict[str, t.Any]], Stacks]:
    """Workloads, RuntimeClasses (name -> object) and what the GPU stacks do, from (file, document) pairs."""
    workloads: list[dict[str, t.Any]] = []
    classes: dict[str, dict[str, t.Any]] = {}
    stacks = Stacks(False, False, None)
    for source, doc in docs:
        if not isinstance(doc, dict):
            raise ScheduleError(f"{source}: a manifest must be a mapping, got {type(doc).__name__}")
        kind = doc.get("kind")
        where = _where(doc)
        spec = _mapping(doc.get("spec"), f"{where}: spec")
        if kind == "RuntimeClass":
            classes[str(_mapping(doc.get("metadata"), f"{where}: metadata").get("name"))] = doc
        elif kind == "Pod":
            workloads.append(_workload(doc, spec, 1, False))
        elif kind in ("Deployment", "ReplicaSet", "StatefulSet", "Job"):
            count = spec.get("parallelism" if kind == "Job" else "replicas")
            pods = 1 if count is None else _int(count, f"{where}: spec.replicas")
            template = _mapping(spec.get("template"), f"{where}: spec.template")
            if pods:
                workloads.append(_workload(doc, template.get("spec"), pods, False))
        elif kind == "DaemonSet":
            template = _mapping(spec.get("template"), f"{where}: spec.template")
            workloads.append(_workload(doc, template.get("spec"), 1, True))
        elif kind == "HelmChart":
            found, chart_stacks = _helm_workloads(doc, schemas)
            workloads.extend(found)
            stacks = Stacks(stacks.nfd or chart_stacks.nfd, stacks.operator or chart_stacks.operator,
                            stacks.operator_runtime_class or chart_stacks.operator_runtime_class)
    return workloads, classes, stacks


def discovered_labels(node: dict[str, t.Any], stacks: Stacks) -> dict[str, str]:
    """Labels the GPU stack's own components will put on a planned GPU node (NFD, then the GPU Operator)."""
    labels = dict(node["labels"])
    has_gpu = (node["gpus"] or 0) > 0 or node["allocatable"].get(GPU_RESOURCE, 0) > 0
    if stacks.nfd and has_gpu:
        labels.setdefault(NFD_NVIDIA_LABEL, "true")
    if stacks.operator and any(labels.get(k) == "true" for k in OPERATOR_GPU_NODE_LABELS):
        labels[OPERATOR_COMMON_LABEL] = "true"
        for operand in OPERATOR_OPERANDS:
            labels.setdefault(f"nvidia.com/gpu.deploy.{operand}", "true")
    return labels


# --------------------------------------------------------------------------- predicates

def _expr_text(expr: dict[str, t.Any]) -> str:
    values = expr.get("values")
    return f"{expr.get('key')} {expr.get('operator')}" + (f" {list(values)}" if values else "")


def match_expression(expr: t.Any, labels: dict[str, str], where: str) -> str | None:
    """None when the label requirement holds, else why not."""
    if not isinstance(expr, dict) or not isinstance(expr.get("key"), str):
        raise ScheduleError(f"{where} must be a mapping with a key")
    key, op = expr["key"], expr.get("operator")
    values = [str(v) for v in _list(expr.get("values"), f"{where}.values")]
    present = key in labels
    value = labels.get(key)
    shown = f"the node's {key}={value}" if present else f"the node has no label {key}"
    if op == "In":
        return None if present and value in values else shown
    if op == "NotIn":
        return None if not present or value not in values else shown
    if op == "Exists":
        return None if present else shown
    if op == "DoesNotExist":
        return None if not present else f"the node has label {key}={value}"
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            raise ScheduleError(f"{where}: operator {op} needs exactly one value")
        bound = _int(values[0], f"{where}.values[0]", minimum=-(2 ** 63))
        try:
            number = int(value) if present else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            return shown if not present else f"the node's {key}={value} is not an integer"
        ok = number > bound if op == "Gt" else number < bound
        return None if ok else shown
    raise ScheduleError(f"{where}: unknown operator {op!r} (In, NotIn, Exists, DoesNotExist, Gt, Lt)")


def _affinity_problem(pod: dict[str, t.Any], node: dict[str, t.Any], labels: dict[str, str],
                      where: str) -> str | None:
    affinity = _mapping(_mapping(pod.get("affinity"), f"{where}: affinity").get("nodeAffinity"),
                        f"{where}: affinity.nodeAffinity")
    required = _mapping(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"),
                        f"{where}: requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return None
    terms = _list(required.get("nodeSelectorTerms"), f"{where}: nodeSelectorTerms")
    reasons = []
    for i, raw_term in enumerate(terms):
        here = f"{where}: nodeSelectorTerms[{i}]"
        term = _mapping(raw_term, here)
        exprs = _list(term.get("matchExpressions"), f"{here}.matchExpressions")
        fields = _list(term.get("matchFields"), f"{here}.matchFields")
        if not exprs and not fields:
            reasons.append(f"term {i} is empty (matches no node)")
            continue
        failed = None
        for j, expr in enumerate(exprs):
            why = match_expression(expr, labels, f"{here}.matchExpressions[{j}]")
            if why:
                failed = f"term {i} ({_expr_text(expr)}): {why}"
                break
        for j, expr in enumerate(fields):
            if failed:
                break
            if not isinstance(expr, dict) or expr.get("key") != "metadata.name":
                raise ScheduleError(f"{here}.matchFields[{j}]: only metadata.name is supported")
            why = match_expression(expr, {"metadata.name": node["name"]}, f"{here}.matchFields[{j}]")
            if why:
                failed = f"term {i} ({_expr_text(expr)}): node name {node['name']}"
        if failed is None:
            return None
        reasons.append(failed)
    return "required node affinity matches no term: " + "; ".join(reasons or ["no nodeSelectorTerms"])


def tolerates(toleration: dict[str, t.Any], taint: dict[str, str]) -> bool:
    effect = toleration.get("effect") or ""
    if effect and effect != taint["effect"]:
        return False
    op = toleration.get("operator") or "Equal"
    key = toleration.get("key") or ""
    if op == "Exists":
        return key in ("", taint["key"])
    return key == taint["key"] and str(toleration.get("value") or "") == taint["value"]


def _taint_text(taint: dict[str, str]) -> str:
    return f"{taint['key']}{'=' + taint['value'] if taint['value'] else ''}:{taint['effect']}"


def node_problems(pod: dict[str, t.Any], node: dict[str, t.Any], labels: dict[str, str],
                  where: str) -> list[str]:
    """Why ``pod`` cannot run on ``node`` (resources aside); empty when it can."""
    problems = []
    selector = _mapping(pod.get("nodeSelector"), f"{where}: nodeSelector")
    for key, value in selector.items():
        have = labels.get(str(key))
        if have != str(value):
            found = f"the node's {key}={have}" if have is not None else f"the node has no label {key}"
            problems.append(f"nodeSelector {key}={value}: {found}")
    why = _affinity_problem(pod, node, labels, where)
    if why:
        problems.append(why)
    tolerations = [_mapping(x, f"{where}: tolerations[{i}]")
                   for i, x in enumerate(_list(pod.get("tolerations"), f"{where}: tolerations"))]
    for taint in node["taints"]:
        if taint["effect"] in BLOCKING_EFFECTS and not any(tolerates(x, taint) for x in tolerations):
            problems.append(f"taint {_taint_text(taint)} is not tolerated")
    return problems


def _with_runtime_class(pod: dict[str, t.Any], classes: dict[str, dict[str, t.Any]],
                        known: set[str], where: str) -> tuple[dict[str, t.Any], str | None]:
    name = pod.get("runtimeClassName")
    if not name:
        return pod, None
    if not isinstance(name, str):
        raise ScheduleError(f"{where}: runtimeClassName must be a string, got {type(name).__name__}")
    if name in classes:
        scheduling = _mapping(classes[name].get("scheduling"), f"RuntimeClass {name}: scheduling")
        merged = dict(pod)
        if scheduling.get("nodeSelector"):
            merged["nodeSelector"] = {**_mapping(scheduling["nodeSelector"], f"RuntimeClass {name}: nodeSelector"),
                                      **_mapping(pod.get("nodeSelector"), f"{where}: nodeSelector")}
        if scheduling.get("tolerations"):
            merged["tolerations"] = [*_list(pod.get("tolerations"), f"{where}: tolerations"),
                                     *_list(scheduling["tolerations"], f"RuntimeClass {name}: tolerations")]
        return merged, None
    if name in known:
        return pod, None
    have = sorted(set(classes) | known)
    return pod, (f"runtimeClassName {name}: no RuntimeClass {name} exists "
                 f"(known: {', '.join(have) if have else 'none'})")


# --------------------------------------------------------------------------- the check

def check(docs: t.Iterable[tuple[str, t.Any]], nodes: list[dict[str, t.Any]], schemas: kv.Schemas,
          runtime_classes: t.Iterable[str] = ()) -> dict[str, t.Any]:
    """Place every workload on the planned nodes; the result names each problem."""
    if not nodes:
        raise ScheduleError("at least one planned node is needed")
    workloads, classes, stacks = collect(docs, schemas)
    known = {str(x) for x in runtime_classes}
    if stacks.operator_runtime_class:
        known.add(stacks.operator_runtime_class)  # the GPU Operator creates its RuntimeClass
    labels = {n["name"]: discovered_labels(n, stacks) for n in nodes}
    free = {n["name"]: dict(n["allocatable"]) for n in nodes}
    placed_on: dict[str, list[str]] = {n["name"]: [] for n in nodes}
    gpu_nodes = [n for n in nodes if n["allocatable"].get(GPU_RESOURCE, 0) > 0 or (n["gpus"] or 0) > 0]
    problems: list[str] = []
    report = []
    # DaemonSets first (they take their share on every node), then the largest GPU requests first
    order = sorted(workloads, key=lambda w: (not w["daemon"], -w["requests"].get(GPU_RESOURCE, 0), w["name"]))
    for w in order:
        pod, rc_problem = _with_runtime_class(w["pod"], classes, known, w["name"])
        entry = {"workload": w["name"], "kind": w["kind"], "pods": w["pods"], "requests": w["requests"],
                 "gpu": w["requests"].get(GPU_RESOURCE, 0), "gpu_stack": w["gpu_stack"], "nodes": []}
        report.append(entry)
        if rc_problem:
            problems.append(f"{w['name']}: {rc_problem}")
            entry["problem"] = rc_problem
            continue
        reasons: dict[str, list[str]] = {n["name"]: node_problems(pod, n, labels[n["name"]], w["name"])
                                         for n in nodes}
        if w["daemon"]:
            targets = gpu_nodes if w["gpu_stack"] and gpu_nodes else nodes
            fitting = [n for n in targets if not reasons[n["name"]]]
            missing = [n for n in targets if reasons[n["name"]]]
            need_all = w["gpu_stack"] and bool(gpu_nodes)
            if (need_all and missing) or not fitting:
                bad = missing if need_all else targets
                text = "; ".join(f"node {n['name']}: {', '.join(reasons[n['name']])}" for n in bad)
                problems.append(f"{w['name']} cannot run on {'the GPU node' if need_all else 'any node'}: {text}")
                entry["problem"] = text
            for n in fitting:
                _take(free[n["name"]], w["requests"])  # a DaemonSet pod's own requests
                entry["nodes"].append(n["name"])
                if w["requests"]:
                    placed_on[n["name"]].append(w["name"])
            continue
        for _pod in range(w["pods"]):
            chosen = None
            why_not = []
            for n in nodes:
                name = n["name"]
                if reasons[name]:
                    why_not.append(f"node {name}: {', '.join(reasons[name])}")
                    continue
                short = _short(free[name], w["requests"], n, placed_on[name])
                if short:
                    why_not.append(f"node {name}: {short}")
                    continue
                chosen = n
                break
            if chosen is None:
                text = "; ".join(why_not)
                problems.append(f"{w['name']} cannot be scheduled: {text}")
                entry["problem"] = text
                break
            _take(free[chosen["name"]], w["requests"])
            if w["requests"]:
                placed_on[chosen["name"]].append(w["name"])
            entry["nodes"].append(chosen["name"])
    node_report = [{"name": n["name"], "labels": labels[n["name"]], "taints": n["taints"],
                    "allocatable": n["allocatable"], "free": free[n["name"]],
                    "gpu_count_known": n["gpu_count_known"]} for n in nodes]
    requested = sum(e["gpu"] * e["pods"] for e in report if not e["gpu_stack"])
    return {"schedulable": not problems, "problems": problems, "workloads": report, "nodes": node_report,
            "gpu_requested": requested,
            "gpu_allocatable": sum(n["allocatable"].get(GPU_RESOURCE, 0) for n in nodes),
            "runtime_classes": sorted(set(classes) | known)}


def _take(free: dict[str, int], requests: dict[str, int]) -> None:
    for k, v in requests.items():
        if k in free:
            free[k] -= v


def _short(free: dict[str, int], requests: dict[str, int], node: dict[str, t.Any], placed: list[str]) -> str | None:
    """Why the node's remaining extended resources do not cover ``requests``."""
    for resource, amount in sorted(requests.items()):
        if resource == GPU_RESOURCE and not node["gpu_count_known"]:
            continue  # GPU count not planned: not checked (reported as gpu_count_known false)
        left = free.get(resource, 0)
        if amount > left:
            total = node["allocatable"].get(resource, 0)
            how = (f" ({node['gpus']} GPU(s) x {node['time_slicing_replicas']} time-slicing replica(s))"
                   if resource == GPU_RESOURCE and node["gpus"] is not None else "")
            return (f"Insufficient {resource}: needs {amount}, {max(left, 0)} of {total} allocatable{how} left"
                    + (f" after {', '.join(placed)}" if placed else ""))
    return None
