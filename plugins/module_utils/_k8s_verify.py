"""Post-deploy verification of the K3s GPU cluster: objects and events in, a verdict and its reasons out.

Pure decision logic over plain Kubernetes objects (the dicts ``kubectl get -o yaml`` shows, or the kubernetes
client's objects after ``sanitize_for_serialization``). Each check says what it looked at and why it failed:

- ``nodes_ready``: every node (or the expected GPU node) has condition Ready=True;
- ``gpu_allocatable``: the GPU node advertises ``nvidia.com/gpu`` allocatable equal to the plan
  (GPUs x time-slicing replicas);
- ``helm_jobs``: the HelmChart install Jobs of K3s' helm-controller (``helm-install-<chart>``) completed; a Failed
  condition or crash-looping job pod is named;
- ``gpu_stack_pods``: the device plugin / GPU Operator pods exist and are Ready;
- ``controllers``: the ingress controller and cert-manager Deployments are Available;
- ``certificates``: every Certificate is Ready (with the pending ACME Challenge's reason when there is one);
- ``rollouts``: every migrated Deployment/StatefulSet is rolled out (observedGeneration caught up, updated and
  ready replicas equal to the desired count);
- ``pvcs``: every PersistentVolumeClaim is Bound (with its last event when not);
- ``pending_pods``: every Pending pod, explained from its FailedScheduling events (each "N <reason>" of the
  scheduler's message, with what it usually means here);
- ``cuda_smoke`` (when asked for): the CUDA smoke pods (``nvidia-smi`` in a pod that requests one ``nvidia.com/gpu``)
  all Succeeded and listed a GPU, only GPUs the host's ``nvidia-smi`` knows, and, with dedicated GPUs, each of them.

A check that cannot run (no API server, K3s staged and not started, the smoke pods switched off) is reported with
``ran: false`` and the reason, never as passed: :func:`not_run` gives the checks a verification would have run.
"""

from __future__ import annotations

import re
import typing as t

GPU_RESOURCE = "nvidia.com/gpu"
KINDS = ("nodes", "pods", "events", "jobs", "deployments", "statefulsets", "daemonsets", "certificates",
         "challenges", "pvcs")
# A GPU UUID as nvidia-smi prints it (GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).
GPU_UUID = re.compile(r"\bGPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
SMOKE_PREFIX = "sophia-cuda-smoke"

# What a FailedScheduling reason usually means on this single GPU node (kube-scheduler's wording).
_HINTS = (
    (re.compile(r"Insufficient nvidia\.com/gpu", re.I),
     "no free nvidia.com/gpu: the device plugin has not registered the GPUs, or more GPUs are requested than "
     "the node advertises (GPUs x time-slicing replicas)"),
    (re.compile(r"untolerated taint|had taint", re.I), "a node taint the pod does not tolerate"),
    (re.compile(r"didn't match (Pod's )?node affinity|node selector", re.I),
     "the pod's nodeSelector/node affinity matches no node label (nvidia.com/gpu.present=true on the GPU node?)"),
    (re.compile(r"persistent ?volume|PersistentVolumeClaim", re.I),
     "its PersistentVolumeClaim cannot be bound (no matching volume or StorageClass)"),
    (re.compile(r"unschedulable", re.I), "the node is cordoned (unschedulable)"),
    (re.compile(r"Insufficient (cpu|memory)", re.I), "not enough CPU or memory left on the node"),
)


class VerifyError(Exception):
    """Input that cannot be verified (objects of the wrong shape)."""


def _list(objects: dict[str, t.Any], kind: str) -> list[dict[str, t.Any]]:
    items = objects.get(kind) or []
    if isinstance(items, dict) and "items" in items:  # a List as kubectl prints it
        items = items["items"] or []
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise VerifyError(f"objects.{kind} must be a list of objects (mappings)")
    return items


def _meta(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _name(obj: dict[str, t.Any]) -> str:
    meta = _meta(obj)
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{ns}{meta.get('name', '?')}"


def _key(*parts: t.Any) -> tuple[str, ...]:
    """A hashable identity from object fields of any shape."""
    return tuple("" if p is None else str(p) for p in parts)


def _status(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _spec(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _dict(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def _seq(value: t.Any) -> list[t.Any]:
    return value if isinstance(value, list) else []


def condition(obj: dict[str, t.Any], kind: str) -> dict[str, t.Any] | None:
    for cond in _seq(_status(obj).get("conditions")):
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def _cond_text(cond: dict[str, t.Any] | None, kind: str) -> str:
    if cond is None:
        return f"no {kind} condition"
    extra = ": ".join(str(x) for x in (cond.get("reason"), cond.get("message")) if x)
    return f"{kind}={cond.get('status')}" + (f" ({extra})" if extra else "")


def _int(value: t.Any, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _check(name: str, reasons: list[str], looked_at: list[str]) -> dict[str, t.Any]:
    return {"check": name, "ran": True, "ok": not reasons, "reasons": reasons, "checked": looked_at}


def _not_run_check(name: str, reason: str) -> dict[str, t.Any]:
    return {"check": name, "ran": False, "ok": None, "reasons": [reason], "checked": []}


# --------------------------------------------------------------------------- checks

def check_nodes(objects: dict[str, t.Any], gpu_node: str | None) -> dict[str, t.Any]:
    if "nodes" not in objects and not gpu_node:
        return _check("nodes_ready", [], [])  # a set without nodes (a cluster read always has the list)
    nodes = _list(objects, "nodes")
    reasons = []
    wanted = [n for n in nodes if gpu_node in (None, _meta(n).get("name"))]
    if gpu_node and not wanted:
        reasons.append(f"node {gpu_node}: not registered (known: {', '.join(_name(n) for n in nodes) or 'none'})")
    if not nodes:
        reasons.append("no node is registered")
    for node in wanted:
        ready = condition(node, "Ready")
        if not ready or ready.get("status") != "True":
            reasons.append(f"node {_name(node)} is not Ready: {_cond_text(ready, 'Ready')}")
    return _check("nodes_ready", reasons, [_name(n) for n in wanted])


def check_gpu_allocatable(objects: dict[str, t.Any], gpu_node: str | None, expected: int | None) -> dict[str, t.Any]:
    if expected is None:
        return _check("gpu_allocatable", [], [])
    nodes = [n for n in _list(objects, "nodes") if gpu_node in (None, _meta(n).get("name"))]
    reasons = []
    if not nodes:
        reasons.append(f"no node {gpu_node or ''} to read nvidia.com/gpu from".replace("  ", " "))
    total = 0
    for node in nodes:
        status = _status(node)
        allocatable = _dict(status.get("allocatable")).get(GPU_RESOURCE)
        capacity = _dict(status.get("capacity")).get(GPU_RESOURCE)
        if allocatable is None:
            reasons.append(f"node {_name(node)} has no {GPU_RESOURCE} allocatable (the plan expects {expected}): "
                           "the device plugin has not registered the GPUs")
            continue
        total += _int(allocatable)
        if gpu_node and _int(allocatable) != expected:
            reasons.append(f"node {_name(node)} advertises {GPU_RESOURCE}={allocatable} (capacity {capacity}), "
                           f"the plan expects {expected}")
    if not gpu_node and nodes and total != expected and not reasons:
        reasons.append(f"the nodes advertise {GPU_RESOURCE}={total} in all, the plan expects {expected}")
    return _check("gpu_allocatable", reasons, [_name(n) for n in nodes])


def _pod_state(pod: dict[str, t.Any]) -> str:
    status = _status(pod)
    states = []
    for cs in _seq(status.get("initContainerStatuses")) + _seq(status.get("containerStatuses")):
        if not isinstance(cs, dict):
            continue
        state = cs.get("state") if isinstance(cs.get("state"), dict) else {}
        for key in ("waiting", "terminated"):
            detail = state.get(key)
            if isinstance(detail, dict) and detail.get("reason") and detail.get("reason") != "Completed":
                msg = f" - {detail['message']}" if detail.get("message") else ""
                states.append(f"{cs.get('name')}: {detail['reason']}{msg} ({_int(cs.get('restartCount'))} restarts)")
    return f"phase {status.get('phase', '?')}" + (f", {'; '.join(states)}" if states else "")


def pod_ready(pod: dict[str, t.Any]) -> bool:
    ready = condition(pod, "Ready")
    if ready is not None:
        return ready.get("status") == "True"
    statuses = _seq(_status(pod).get("containerStatuses"))
    return bool(statuses) and all(isinstance(c, dict) and c.get("ready") is True for c in statuses)


def check_helm_jobs(objects: dict[str, t.Any], names: list[str], namespace: str) -> dict[str, t.Any]:
    jobs = {str(_meta(j).get("name")): j for j in _list(objects, "jobs")
            if _meta(j).get("namespace") is None or str(_meta(j).get("namespace")) == namespace}
    pods = _list(objects, "pods")
    reasons = []
    for name in names:
        job_pods = [p for p in pods if _dict(_meta(p).get("labels")).get("job-name") == name
                    or (not _dict(_meta(p).get("labels")).get("job-name")
                        and re.fullmatch(re.escape(name) + r"-[a-z0-9]{5}", str(_meta(p).get("name"))))]
        job = jobs.get(name)
        if job is not None:
            complete, failed = condition(job, "Complete"), condition(job, "Failed")
            if (complete and complete.get("status") == "True") or _int(_status(job).get("succeeded")) > 0:
                continue
            if failed and failed.get("status") == "True":
                reasons.append(f"Job {namespace}/{name} failed: {_cond_text(failed, 'Failed')}")
                continue
        elif not job_pods:
            reasons.append(f"Job {namespace}/{name}: not found (K3s has not picked up the HelmChart)")
            continue
        if job_pods and any(_status(p).get("phase") == "Succeeded" for p in job_pods):
            continue
        detail = "; ".join(f"pod {_name(p)}: {_pod_state(p)}" for p in job_pods) or "no pod"
        active = _int(_status(job).get("active")) if job is not None else len(job_pods)
        reasons.append(f"Job {namespace}/{name} has not completed ({active} active): {detail}")
    return _check("helm_jobs", reasons, [f"{namespace}/{n}" for n in names])


def check_gpu_stack_pods(objects: dict[str, t.Any], selectors: list[dict[str, str]]) -> dict[str, t.Any]:
    pods = _list(objects, "pods")
    reasons, seen = [], []
    for sel in selectors:
        ns, prefix = sel.get("namespace"), str(sel.get("name_prefix") or "")
        found = [p for p in pods
                 if _meta(p).get("namespace") == ns and str(_meta(p).get("name", "")).startswith(prefix)]
        seen.extend(_name(p) for p in found)
        if not found:
            reasons.append(f"no pod {ns}/{prefix}*: the DaemonSet has no pod (it matches no node, or is not created)")
        for pod in found:
            if not pod_ready(pod):
                reasons.append(f"pod {_name(pod)} is not Ready: {_pod_state(pod)}")
    return _check("gpu_stack_pods", reasons, seen)


def check_controllers(objects: dict[str, t.Any], wanted: list[dict[str, str]]) -> dict[str, t.Any]:
    deployments = {_key(_meta(d).get("namespace"), _meta(d).get("name")): d for d in _list(objects, "deployments")}
    reasons = []
    for item in wanted:
        key = _key(item.get("namespace"), item.get("name"))
        dep = deployments.get(key)
        if dep is None:
            reasons.append(f"Deployment {key[0]}/{key[1]}: not found")
            continue
        available = condition(dep, "Available")
        if available is not None:
            ok = available.get("status") == "True" and _int(_status(dep).get("availableReplicas")) > 0
        else:
            ok = _int(_status(dep).get("availableReplicas")) >= max(_int(_spec(dep).get("replicas"), 1), 1)
        if not ok:
            reasons.append(f"Deployment {key[0]}/{key[1]} is not Available: {_cond_text(available, 'Available')}, "
                           f"{_int(_status(dep).get('availableReplicas'))} available")
    return _check("controllers", reasons, [f"{i.get('namespace')}/{i.get('name')}" for i in wanted])


def check_certificates(objects: dict[str, t.Any]) -> dict[str, t.Any]:
    certs = _list(objects, "certificates")
    challenges = _list(objects, "challenges")
    reasons = []
    for cert in certs:
        ready = condition(cert, "Ready")
        if ready and ready.get("status") == "True":
            continue
        names = {str(n) for n in _seq(_spec(cert).get("dnsNames"))}
        pending = [c for c in challenges if str(_spec(c).get("dnsName")) in names
                   and _meta(c).get("namespace") == _meta(cert).get("namespace")]
        detail = "".join(f"; challenge {_name(c)} for {_spec(c).get('dnsName')} is "
                         f"{_status(c).get('state', 'pending')}: {_status(c).get('reason', '')}" for c in pending)
        reasons.append(f"Certificate {_name(cert)} is not Ready: {_cond_text(ready, 'Ready')}{detail}")
    return _check("certificates", reasons, [_name(c) for c in certs])


def check_rollouts(objects: dict[str, t.Any], wanted: list[dict[str, str]] | None) -> dict[str, t.Any]:
    items = [("Deployment", d) for d in _list(objects, "deployments")] + \
            [("StatefulSet", s) for s in _list(objects, "statefulsets")]
    if wanted is not None:
        keys = {_key(w.get("kind"), w.get("namespace"), w.get("name")) for w in wanted}
        found = {_key(k, _meta(o).get("namespace"), _meta(o).get("name")) for k, o in items}
        items = [(k, o) for k, o in items if _key(k, _meta(o).get("namespace"), _meta(o).get("name")) in keys]
        missing = [f"{k} {ns}/{n}: not found" for k, ns, n in sorted(keys - found, key=str)]
    else:
        missing = []
    reasons = list(missing)
    for kind, obj in items:
        spec, status = _spec(obj), _status(obj)
        desired = _int(spec.get("replicas"), 1)
        problems = []
        generation, observed = _int(_meta(obj).get("generation")), _int(status.get("observedGeneration"))
        if generation and observed < generation:
            problems.append(f"observedGeneration {observed} < generation {generation}")
        updated = _int(status.get("updatedReplicas"))
        ready = _int(status.get("availableReplicas" if kind == "Deployment" else "readyReplicas"))
        current_rev, update_rev = status.get("currentRevision"), status.get("updateRevision")
        if kind == "StatefulSet" and current_rev and update_rev:
            # as `kubectl rollout status`: a StatefulSet is updated when its current revision is the update
            # revision; the controller drops updatedReplicas from the status then (kubernetes/kubernetes#76748)
            if current_rev != update_rev:
                problems.append(f"currentRevision {current_rev} is not updateRevision {update_rev} "
                                f"({updated}/{desired} updated)")
        elif updated < desired:
            problems.append(f"{updated}/{desired} updated")
        if ready < desired:
            problems.append(f"{ready}/{desired} {'available' if kind == 'Deployment' else 'ready'}")
        progressing = condition(obj, "Progressing")
        if progressing and progressing.get("reason") == "ProgressDeadlineExceeded":
            problems.append(_cond_text(progressing, "Progressing"))
        if problems:
            reasons.append(f"{kind} {_name(obj)} is not rolled out: {', '.join(problems)}")
    return _check("rollouts", reasons, [f"{k} {_name(o)}" for k, o in items])


def _events_for(objects: dict[str, t.Any], kind: str, obj: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    meta = _meta(obj)
    out = []
    for ev in _list(objects, "events"):
        inv = ev.get("involvedObject") or ev.get("regarding") or {}
        if not isinstance(inv, dict):
            continue
        if inv.get("kind") == kind and inv.get("name") == meta.get("name") and \
                inv.get("namespace", meta.get("namespace")) == meta.get("namespace"):
            out.append(ev)
    return out


def check_pvcs(objects: dict[str, t.Any]) -> dict[str, t.Any]:
    pvcs = _list(objects, "pvcs")
    reasons = []
    for pvc in pvcs:
        phase = _status(pvc).get("phase")
        if phase == "Bound":
            continue
        events = _events_for(objects, "PersistentVolumeClaim", pvc)
        last = f": {events[-1].get('reason')} - {events[-1].get('message') or events[-1].get('note')}" if events else ""
        reasons.append(f"PersistentVolumeClaim {_name(pvc)} is {phase or 'not Bound'}{last}")
    return _check("pvcs", reasons, [_name(p) for p in pvcs])


def explain_scheduling(message: str) -> list[dict[str, str]]:
    """The parts of a FailedScheduling message ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu, ...")."""
    head = message.split(" preemption:", 1)[0]
    body = head.split(":", 1)[1] if "nodes are available:" in head else head
    parts = [p.strip().rstrip(".") for p in re.split(r",\s+(?=\d+ )", body.strip()) if p.strip()]
    out = []
    for part in parts:
        hint = next((text for rx, text in _HINTS if rx.search(part)), "see the scheduler's message")
        out.append({"reason": part, "meaning": hint})
    return out


def check_pending_pods(objects: dict[str, t.Any]) -> dict[str, t.Any]:
    reasons, pending = [], []
    for pod in _list(objects, "pods"):
        if _status(pod).get("phase") != "Pending":
            continue
        scheduled = condition(pod, "PodScheduled")
        if scheduled and scheduled.get("status") == "True":
            reasons.append(f"pod {_name(pod)} is Pending on its node: {_pod_state(pod)}")
            pending.append({"pod": _name(pod), "scheduled": True, "reasons": []})
            continue
        events = [e for e in _events_for(objects, "Pod", pod) if e.get("reason") == "FailedScheduling"]
        message = str((events[-1].get("message") or events[-1].get("note") or "") if events else
                      (scheduled or {}).get("message") or "")
        parts = explain_scheduling(message) if message else []
        pending.append({"pod": _name(pod), "scheduled": False, "message": message, "reasons": parts})
        if parts:
            why = "; ".join(f"{p['reason']} ({p['meaning']})" for p in parts)
            reasons.append(f"pod {_name(pod)} is Pending, unschedulable: {why}")
        else:
            reasons.append(f"pod {_name(pod)} is Pending with no FailedScheduling event (not yet seen by the "
                           "scheduler, or its events expired)")
    result = _check("pending_pods", reasons, [p["pod"] for p in pending])
    result["pending"] = pending
    return result


def check_cuda_smoke(objects: dict[str, t.Any], spec: dict[str, t.Any]) -> dict[str, t.Any]:
    """The CUDA smoke pods of ``spec`` (namespace, name_prefix, count, gpu_uuids, logs, require_each_gpu)."""
    ns, prefix = str(spec.get("namespace") or "default"), str(spec.get("name_prefix") or SMOKE_PREFIX)
    count = _int(spec.get("count"), 1)
    logs = _dict(spec.get("logs"))
    pods = [p for p in _list(objects, "pods")
            if _meta(p).get("namespace") == ns and str(_meta(p).get("name", "")).startswith(prefix)]
    reasons: list[str] = []
    if len(pods) < count:
        reasons.append(f"{len(pods)} of {count} CUDA smoke pod(s) {ns}/{prefix}* found")
    seen: dict[str, list[str]] = {}
    for pod in pods:
        phase = _status(pod).get("phase")
        text = str(logs.get(str(_meta(pod).get("name"))) or "").strip()
        tail = f"; its log: {text[-300:]!r}" if text else ""
        if phase == "Succeeded":
            uuids = GPU_UUID.findall(text)
            if not uuids:
                reasons.append(f"CUDA smoke pod {_name(pod)} succeeded but nvidia-smi listed no GPU"
                               f"{tail or ' (no log)'}")
            for uuid in uuids:
                seen.setdefault(uuid, []).append(_name(pod))
        elif phase == "Failed":
            reasons.append(f"CUDA smoke pod {_name(pod)} failed: {_pod_state(pod)}{tail}")
        else:
            reasons.append(f"CUDA smoke pod {_name(pod)} did not finish: {_pod_state(pod)}{tail}")
    known = [str(u) for u in _seq(spec.get("gpu_uuids"))]
    if known and seen:
        strange = sorted(set(seen) - set(known))
        if strange:
            reasons.append(f"the smoke pods saw GPU(s) {', '.join(strange)} that the host's nvidia-smi does not list "
                           f"({', '.join(known)})")
        missing = [u for u in known if u not in seen]
        if missing and spec.get("require_each_gpu"):
            reasons.append(f"no CUDA smoke pod ran on GPU(s) {', '.join(missing)} (seen: {', '.join(sorted(seen))})")
    result = _check("cuda_smoke", reasons, [_name(p) for p in pods])
    result["gpus_seen"] = sorted(seen)
    return result


# --------------------------------------------------------------------------- verdict

def planned_checks(expect: t.Any = None) -> list[str]:
    """The checks :func:`verify` runs for ``expect`` (those with nothing to check left out)."""
    expect = expect if isinstance(expect, dict) else {}
    names = ["nodes_ready"]
    if expect.get("gpu_allocatable") is not None:
        names.append("gpu_allocatable")
    names.extend(k for k in ("helm_jobs", "gpu_stack_pods", "cuda_smoke", "controllers") if expect.get(k))
    return [*names, "certificates", "rollouts", "pvcs", "pending_pods"]


def not_run(reason: str, expect: t.Any = None) -> dict[str, t.Any]:
    """The result of a verification that could not run: each planned check not run, with ``reason``."""
    checks = [_not_run_check(name, reason) for name in planned_checks(expect)]
    return {"verdict": "not run", "ran": False, "reasons": [reason], "checks": checks, "pending": [],
            "not_run": [f"{c['check']}: {reason}" for c in checks]}


def verify(objects: t.Any, expect: t.Any = None) -> dict[str, t.Any]:
    """Every check over ``objects`` (lists per kind, see KINDS); ``expect`` names what must exist."""
    if not isinstance(objects, dict):
        raise VerifyError("objects must be a mapping of kind (nodes, pods, events, ...) to a list of objects")
    unknown = sorted(set(objects) - set(KINDS))
    if unknown:
        raise VerifyError(f"objects: unknown kind(s) {', '.join(map(str, unknown))} (known: {', '.join(KINDS)})")
    expect = expect or {}
    if not isinstance(expect, dict):
        raise VerifyError("expect must be a mapping")
    gpu_node = expect.get("gpu_node") or None
    gpu_allocatable = expect.get("gpu_allocatable")
    if gpu_allocatable is not None and (isinstance(gpu_allocatable, bool) or _int(gpu_allocatable, -1) < 0):
        raise VerifyError(f"expect.gpu_allocatable must be a non-negative integer, got {gpu_allocatable!r}")
    for key in ("helm_jobs", "gpu_stack_pods", "controllers", "workloads"):
        value = expect.get(key)
        if value is not None and not isinstance(value, list):
            raise VerifyError(f"expect.{key} must be a list")
    for key in ("gpu_stack_pods", "controllers", "workloads"):
        if not all(isinstance(x, dict) for x in expect.get(key) or []):
            raise VerifyError(f"expect.{key} items must be mappings")
    smoke = expect.get("cuda_smoke")
    if smoke is not None:
        _check_smoke_spec(smoke)
    checks = [
        check_nodes(objects, gpu_node),
        check_gpu_allocatable(objects, gpu_node, None if gpu_allocatable is None else _int(gpu_allocatable)),
        check_helm_jobs(objects, [str(x) for x in expect.get("helm_jobs") or []],
                        str(expect.get("helm_namespace") or "kube-system")),
        check_gpu_stack_pods(objects, expect.get("gpu_stack_pods") or []),
        check_controllers(objects, expect.get("controllers") or []),
        check_certificates(objects),
        check_rollouts(objects, expect.get("workloads")),
        check_pvcs(objects),
        check_pending_pods(objects),
    ]
    if smoke:
        checks.insert(4, _not_run_check("cuda_smoke", str(smoke["skip_reason"])) if smoke.get("skip_reason")
                      else check_cuda_smoke(objects, smoke))
    reasons = [r for c in checks if c["ran"] for r in c["reasons"]]
    pending = next(c for c in checks if c["check"] == "pending_pods").pop("pending")
    return {"verdict": "fail" if reasons else "pass", "reasons": reasons, "checks": checks, "pending": pending,
            "not_run": [f"{c['check']}: {r}" for c in checks if not c["ran"] for r in c["reasons"]]}


def _check_smoke_spec(smoke: t.Any) -> None:
    if not isinstance(smoke, dict):
        raise VerifyError("expect.cuda_smoke must be a mapping")
    if smoke.get("skip_reason") is not None and not isinstance(smoke["skip_reason"], str):
        raise VerifyError("expect.cuda_smoke.skip_reason must be a string")
    count = smoke.get("count", 1)
    if isinstance(count, bool) or _int(count, -1) < 1:
        raise VerifyError(f"expect.cuda_smoke.count must be a positive integer, got {count!r}")
    if not isinstance(smoke.get("logs", {}), dict):
        raise VerifyError("expect.cuda_smoke.logs must map pod names to their log text")
    if not isinstance(smoke.get("gpu_uuids", []), list):
        raise VerifyError("expect.cuda_smoke.gpu_uuids must be a list")


# --------------------------------------------------------------------------- reading a cluster

class NoApiServer(Exception):
    """No API server to read from (no kubeconfig, nothing listening): the verification did not run."""


def read_cluster(kubeconfig: str | None, context: str | None = None, namespaces: t.Iterable[str] = (),
                 timeout: float = 15.0) -> dict[str, list[dict[str, t.Any]]]:
    """The objects :func:`verify` reads, listed with the kubernetes client (raw JSON, no model conversion)."""
    import json  # noqa: PLC0415 - only when a cluster is read

    try:
        import urllib3  # noqa: PLC0415
        from kubernetes import client, config  # noqa: PLC0415
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415
    except ImportError as exc:
        raise VerifyError(f"the kubernetes Python client is needed to read the cluster: {exc}") from exc
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        raise NoApiServer(f"no usable kubeconfig {kubeconfig or '(default)'}: {exc}") from exc
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    custom = client.CustomObjectsApi(api)
    spaces = [str(n) for n in namespaces]

    def items(response: t.Any) -> list[dict[str, t.Any]]:
        data = json.loads(response.data)
        return [i for i in (data.get("items") or []) if isinstance(i, dict)]

    def listed(all_ns: t.Callable[..., t.Any], one_ns: t.Callable[..., t.Any]) -> list[dict[str, t.Any]]:
        kw = {"_preload_content": False, "_request_timeout": timeout}
        if not spaces:
            return items(all_ns(**kw))
        return [i for ns in spaces for i in items(one_ns(ns, **kw))]

    def crs(group: str, version: str, plural: str) -> list[dict[str, t.Any]]:
        try:
            kw = {"_preload_content": False, "_request_timeout": timeout}
            if not spaces:
                return items(custom.list_cluster_custom_object(group, version, plural, **kw))
            return [i for ns in spaces for i in items(custom.list_namespaced_custom_object(group, version, ns,
                                                                                           plural, **kw))]
        except ApiException as exc:
            if exc.status == 404:  # the CRD is not installed: nothing of that kind
                return []
            raise

    try:
        objects = {
            "nodes": items(core.list_node(_preload_content=False, _request_timeout=timeout)),
            "pods": listed(core.list_pod_for_all_namespaces, core.list_namespaced_pod),
            "events": listed(core.list_event_for_all_namespaces, core.list_namespaced_event),
            "jobs": items(batch.list_namespaced_job("kube-system", _preload_content=False,
                                                    _request_timeout=timeout)),
            "deployments": listed(apps.list_deployment_for_all_namespaces, apps.list_namespaced_deployment),
            "statefulsets": listed(apps.list_stateful_set_for_all_namespaces, apps.list_namespaced_stateful_set),
            "daemonsets": listed(apps.list_daemon_set_for_all_namespaces, apps.list_namespaced_daemon_set),
            "pvcs": listed(core.list_persistent_volume_claim_for_all_namespaces,
                           core.list_namespaced_persistent_volume_claim),
            "certificates": crs("cert-manager.io", "v1", "certificates"),
            "challenges": crs("acme.cert-manager.io", "v1", "challenges"),
        }
    except ApiException as exc:
        raise VerifyError(f"the API server refused a list: {exc.status} {exc.reason}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise NoApiServer(f"no API server at {api.configuration.host}: {exc}") from exc
    except ValueError as exc:
        raise VerifyError(f"the API server's answer is not JSON: {exc}") from exc
    finally:
        api.close()
    return objects
