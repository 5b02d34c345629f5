"""Post-deploy verification over object sets people recorded from real clusters (tests/fixtures/k8s_verify, sources in
its README): each set gives the verdict and the reasons it should, and the module reads a (local, fake) API server
with the kubernetes client, or reports "not run" when there is none."""

from __future__ import annotations

import json
import threading
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_verify as kverify
from ansible_collections.sophia.migrate.plugins.modules import k8s_verify
from support.modules import run_module
from support.servers import free_port

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "k8s_verify"
SETS = sorted(FIXTURES.glob("*.yaml"))


def load(name: str) -> dict:
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


def test_at_least_twelve_recorded_sets_each_with_its_source_in_the_readme():
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert len(SETS) >= 12
    for path in SETS:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert data["source"].startswith("https://github.com/"), path.name
        assert f"| {path.name} | {data['source']} |" in readme, path.name
        assert data.get("constructed"), path.name  # says what is not recorded, or "none"


@pytest.mark.parametrize("path", SETS, ids=[p.stem for p in SETS])
def test_recorded_set_gives_its_verdict_and_reasons(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    result = kverify.verify(data["objects"], data["expect"])
    assert result["verdict"] == data["verdict"], result["reasons"]
    for needle in data["reasons"]:
        assert any(needle in r for r in result["reasons"]), (needle, result["reasons"])
    if data["verdict"] == "pass":
        assert result["reasons"] == [] and all(c["ok"] for c in result["checks"])


def test_gpu_count_differs_from_the_plan():
    data = load("01-gpu-node-with-gpu.yaml")
    result = kverify.verify(data["objects"], {"gpu_node": "k8s-node1", "gpu_allocatable": 3})
    assert result["reasons"] == ["node k8s-node1 advertises nvidia.com/gpu=1 (capacity 1), the plan expects 3"]
    result = kverify.verify(data["objects"], {"gpu_node": "lambda-gpu-01"})
    assert result["reasons"] == ["node lambda-gpu-01: not registered (known: k8s-node1)"]


def test_healthy_sets_together_pass_and_one_failure_fails_the_whole():
    objects: dict = {}
    expect: dict = {"gpu_node": "k8s-node1", "gpu_allocatable": 1}
    for name in ("01-gpu-node-with-gpu.yaml", "09-device-plugin-running.yaml", "11-certificate-ready.yaml"):
        data = load(name)
        for kind, items in data["objects"].items():
            objects.setdefault(kind, []).extend(items)
        expect.update({k: v for k, v in data["expect"].items() if k not in ("gpu_node",)})
    result = kverify.verify(objects, expect)
    assert result["verdict"] == "pass", result["reasons"]
    broken = {**objects, "pvcs": load("15-pvc-wait-for-first-consumer.yaml")["objects"]["pvcs"]}
    assert kverify.verify(broken, expect)["verdict"] == "fail"


def test_failed_helm_job_condition_is_named():
    job = {"metadata": {"name": "helm-install-nvidia-device-plugin", "namespace": "kube-system"},
           "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                                   "message": "Job has reached the specified backoff limit"}]}}
    result = kverify.verify({"jobs": [job]}, {"helm_jobs": ["helm-install-nvidia-device-plugin", "helm-install-x"]})
    assert ("Job kube-system/helm-install-nvidia-device-plugin failed: Failed=True (BackoffLimitExceeded: Job has "
            "reached the specified backoff limit)") in result["reasons"]
    assert "Job kube-system/helm-install-x: not found (K3s has not picked up the HelmChart)" in result["reasons"]


def test_pending_pod_without_event_and_scheduling_parts():
    pod = {"metadata": {"name": "p", "namespace": "n"}, "status": {"phase": "Pending"}}
    result = kverify.verify({"pods": [pod]})
    assert "pod n/p is Pending with no FailedScheduling event" in result["reasons"][0]
    parts = kverify.explain_scheduling("0/3 nodes are available: 1 PodToleratesNodeTaints, 3 Insufficient "
                                       "nvidia.com/gpu.")  # NVIDIA/k8s-device-plugin#22, older scheduler wording
    assert [p["reason"] for p in parts] == ["1 PodToleratesNodeTaints", "3 Insufficient nvidia.com/gpu"]


@pytest.mark.parametrize(("objects", "expect", "needle"), [
    ([], {}, "objects must be a mapping"),
    ({"nodes": "x"}, {}, "objects.nodes must be a list"),
    ({"nodes": [1]}, {}, "objects.nodes must be a list"),
    ({"gadgets": []}, {}, "unknown kind(s) gadgets"),
    ({}, {"gpu_allocatable": -1}, "gpu_allocatable must be a non-negative integer"),
    ({}, {"controllers": ["x"]}, "expect.controllers items must be mappings"),
])
def test_bad_input_is_refused(objects, expect, needle):
    with pytest.raises(kverify.VerifyError, match=None) as info:
        kverify.verify(objects, expect)
    assert needle in str(info.value)


@pytest.mark.parametrize("objects", [
    {"deployments": [{"metadata": {"name": "d", "namespace": ["x"]}, "status": {"conditions": "x"}}]},
    {"nodes": [{"metadata": {"name": "n"}, "status": {"conditions": [1], "allocatable": ["x"]}}]},
    {"pods": [{"metadata": {"name": "p", "labels": "x"}, "status": {"phase": "Pending", "containerStatuses": {}}}]},
    {"certificates": [{"metadata": {"name": "c"}, "spec": {"dnsNames": "x"}}],
     "challenges": [{"spec": {"dnsName": ["x"]}}]},
    {"jobs": [{"metadata": {"name": ["j"], "namespace": {}}}]},
])
def test_odd_shapes_give_a_verdict_not_an_exception(objects):
    expect = {"gpu_node": "n", "gpu_allocatable": 1, "helm_jobs": ["j"],
              "controllers": [{"namespace": "x", "name": "d"}], "workloads": [{"kind": "Deployment", "name": "d"}]}
    assert kverify.verify(objects, expect)["verdict"] == "fail"


# --------------------------------------------------------------------------- the module

def test_module_verdicts_from_given_objects(capsys):
    data = load("02-k3s-node-without-gpu.yaml")
    out = run_module(k8s_verify, {"objects": data["objects"], "expect": data["expect"]}, capsys)
    assert out["failed"] and out["verdict"] == "fail" and out["ran"] is True
    assert "node geo-node1 has no nvidia.com/gpu allocatable" in out["msg"]
    out = run_module(k8s_verify, {"objects": data["objects"], "expect": data["expect"], "fail_on_problems": False},
                     capsys)
    assert not out.get("failed") and out["verdict"] == "fail" and out["changed"] is False
    data = load("01-gpu-node-with-gpu.yaml")
    out = run_module(k8s_verify, {"objects": data["objects"], "expect": data["expect"]}, capsys)
    assert out["verdict"] == "pass" and not out.get("failed")


def kubeconfig(tmp_path: Path, port: int) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        "users": [{"name": "t", "user": {"token": "not-a-secret"}}]}), encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def test_module_without_api_server_reports_not_run(tmp_path, capsys):
    out = run_module(k8s_verify, {"kubeconfig": kubeconfig(tmp_path, free_port()), "timeout": 2}, capsys)
    assert not out.get("failed"), out
    assert out["verdict"] == "not run" and out["ran"] is False
    assert out["reasons"][0].startswith("not run: no API server: no API server at http://127.0.0.1:")
    assert [c["check"] for c in out["checks"]] == ["nodes_ready", "certificates", "rollouts", "pvcs", "pending_pods"]
    assert all(c["ran"] is False and c["reasons"] == out["reasons"] for c in out["checks"])
    out = run_module(k8s_verify, {"kubeconfig": str(tmp_path / "missing")}, capsys)
    assert out["verdict"] == "not run" and "no usable kubeconfig" in out["reasons"][0]


class _Api(BaseHTTPRequestHandler):
    routes: t.ClassVar[dict] = {}

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        items = self.routes.get(path)
        body = json.dumps({"items": items} if items is not None else {"kind": "Status", "code": 404}).encode()
        self.send_response(200 if items is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


def test_module_reads_a_cluster_with_the_kubernetes_client(tmp_path, capsys):
    node = load("02-k3s-node-without-gpu.yaml")["objects"]["nodes"]
    pending = load("03-pending-insufficient-gpu.yaml")["objects"]
    _Api.routes = {"/api/v1/nodes": node, "/api/v1/pods": pending["pods"], "/api/v1/events": pending["events"],
                   "/apis/batch/v1/namespaces/kube-system/jobs": [], "/apis/apps/v1/deployments": [],
                   "/apis/apps/v1/statefulsets": [], "/apis/apps/v1/daemonsets": [],
                   "/api/v1/persistentvolumeclaims": []}  # no cert-manager CRDs: 404, nothing of those kinds
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        out = run_module(k8s_verify, {"kubeconfig": kubeconfig(tmp_path, port), "fail_on_problems": False,
                                      "expect": {"gpu_node": "geo-node1", "gpu_allocatable": 2}}, capsys)
    finally:
        server.shutdown()
        server.server_close()
    assert out["ran"] is True and out["verdict"] == "fail", out
    assert any("geo-node1 has no nvidia.com/gpu allocatable (the plan expects 2)" in r for r in out["reasons"])
    assert out["pending"][0]["reasons"][0]["reason"] == "1 Insufficient nvidia.com/gpu"
    assert "not-a-secret" not in json.dumps(out)


@pytest.mark.parametrize(("args", "needle"), [
    ({"objects": {"nodes": "x"}}, "objects.nodes must be a list"),
    ({"objects": {"pods": [{"status": "x"}]}, "expect": {"gpu_allocatable": "many"}}, "gpu_allocatable"),
    ({"objects": {}, "expect": {"controllers": "x"}}, "controllers"),
    ({"objects": {}, "kubeconfig": "/x"}, "mutually exclusive"),
    ({"objects": {}, "timeout": 0}, "option 'timeout': must be a positive"),
    ({"objects": {"gadgets": []}}, "unknown kind"),
])
def test_module_bad_input_fails_cleanly(args, needle, capsys):
    out = run_module(k8s_verify, args, capsys)
    assert out["failed"] and needle in out["msg"], out


# --------------------------------------------------------------------------- StatefulSet revisions, CUDA smoke, not run

def test_statefulset_between_revisions_is_not_rolled_out():
    sts = load("18-statefulset-ready-without-updated-replicas.yaml")["objects"]["statefulsets"][0]
    moving = {**sts, "status": {**sts["status"], "updateRevision": "busybox-6d8f7c9b44", "updatedReplicas": 0}}
    result = kverify.verify({"statefulsets": [moving]})
    assert result["reasons"] == ["StatefulSet isomateset/busybox is not rolled out: currentRevision busybox-5c9bc6dbb5 "
                                 "is not updateRevision busybox-6d8f7c9b44 (0/1 updated)"]


def _smoke_pod(name: str, phase: str, **state: t.Any) -> dict:
    status: dict = {"phase": phase}
    if state:
        status["containerStatuses"] = [{"name": "nvidia-smi", "restartCount": 0, "state": state}]
    return {"metadata": {"name": name, "namespace": "default"}, "status": status}


UUIDS = ["GPU-f7ae5244-529a-6aa0-4773-4e616b43901c", "GPU-038869a3-ba5d-11eb-b165-70244e138fa3"]


def test_cuda_smoke_counts_pods_and_gpus():
    pods = [_smoke_pod("sophia-cuda-smoke-0", "Succeeded"), _smoke_pod("sophia-cuda-smoke-1", "Succeeded")]
    logs = {f"sophia-cuda-smoke-{i}": f"{UUIDS[0]}, GeForce GTX 960" for i in (0, 1)}
    spec = {"namespace": "default", "count": 2, "gpu_uuids": UUIDS, "logs": logs}
    result = kverify.verify({"pods": pods}, {"cuda_smoke": spec})
    assert result["verdict"] == "pass", result["reasons"]  # time-slicing: two replicas on one GPU is fine
    smoke = next(c for c in result["checks"] if c["check"] == "cuda_smoke")
    assert smoke["gpus_seen"] == [UUIDS[0]] and smoke["ran"] is True
    result = kverify.verify({"pods": pods}, {"cuda_smoke": {**spec, "require_each_gpu": True}})
    assert result["reasons"] == [f"no CUDA smoke pod ran on GPU(s) {UUIDS[1]} (seen: {UUIDS[0]})"]
    result = kverify.verify({"pods": pods}, {"cuda_smoke": {**spec, "gpu_uuids": [UUIDS[1]]}})
    assert result["reasons"] == [f"the smoke pods saw GPU(s) {UUIDS[0]} that the host's nvidia-smi does not list "
                                 f"({UUIDS[1]})"]
    result = kverify.verify({"pods": pods[:1]}, {"cuda_smoke": {**spec, "count": 2}})
    assert result["reasons"] == ["1 of 2 CUDA smoke pod(s) default/sophia-cuda-smoke* found"]


def test_cuda_smoke_pod_that_did_not_finish_or_printed_nothing():
    pods = [_smoke_pod("sophia-cuda-smoke-0", "Pending",
                       waiting={"reason": "ContainerCreating"}),
            _smoke_pod("sophia-cuda-smoke-1", "Succeeded")]
    result = kverify.verify({"pods": pods}, {"cuda_smoke": {"namespace": "default", "count": 2, "logs": {}}})
    assert ("CUDA smoke pod default/sophia-cuda-smoke-0 did not finish: phase Pending, nvidia-smi: ContainerCreating "
            "(0 restarts)") in result["reasons"]
    assert ("CUDA smoke pod default/sophia-cuda-smoke-1 succeeded but nvidia-smi listed no GPU (no log)"
            in result["reasons"])


def test_cuda_smoke_switched_off_is_reported_not_run_and_does_not_fail():
    data = load("01-gpu-node-with-gpu.yaml")
    expect = {**data["expect"], "cuda_smoke": {"skip_reason": "k3s_gpu_verify_cuda_smoke is false"}}
    result = kverify.verify(data["objects"], expect)
    assert result["verdict"] == "pass" and result["reasons"] == []
    smoke = next(c for c in result["checks"] if c["check"] == "cuda_smoke")
    assert smoke == {"check": "cuda_smoke", "ran": False, "ok": None,
                     "reasons": ["k3s_gpu_verify_cuda_smoke is false"], "checked": []}
    assert result["not_run"] == ["cuda_smoke: k3s_gpu_verify_cuda_smoke is false"]


def test_not_run_lists_every_planned_check_with_the_reason():
    expect = {"gpu_node": "n", "gpu_allocatable": 3, "helm_jobs": ["helm-install-x"], "cuda_smoke": {"count": 1}}
    assert kverify.planned_checks(expect) == ["nodes_ready", "gpu_allocatable", "helm_jobs", "cuda_smoke",
                                              "certificates", "rollouts", "pvcs", "pending_pods"]
    assert kverify.planned_checks(None) == ["nodes_ready", "certificates", "rollouts", "pvcs", "pending_pods"]
    result = kverify.not_run("not run: K3s staged", expect)
    assert result["verdict"] == "not run" and result["ran"] is False
    assert all(c["ran"] is False and c["reasons"] == ["not run: K3s staged"] for c in result["checks"])
    assert result["not_run"][1] == "gpu_allocatable: not run: K3s staged"


@pytest.mark.parametrize(("smoke", "needle"), [
    ("x", "expect.cuda_smoke must be a mapping"),
    ({"count": 0}, "count must be a positive integer"),
    ({"count": True}, "count must be a positive integer"),
    ({"logs": ["x"]}, "logs must map pod names"),
    ({"gpu_uuids": "GPU-1"}, "gpu_uuids must be a list"),
    ({"skip_reason": 3}, "skip_reason must be a string"),
])
def test_bad_cuda_smoke_is_refused(smoke, needle):
    with pytest.raises(kverify.VerifyError) as info:
        kverify.verify({}, {"cuda_smoke": smoke})
    assert needle in str(info.value)


def test_module_not_run_reason_reads_nothing(tmp_path, capsys):
    args = {"kubeconfig": str(tmp_path / "missing"), "not_run_reason": "K3s was staged, not started",
            "expect": {"gpu_allocatable": 3, "cuda_smoke": {"count": 1}}}
    out = run_module(k8s_verify, args, capsys)
    assert not out.get("failed") and out["verdict"] == "not run" and out["ran"] is False, out
    assert [c["check"] for c in out["checks"]][:3] == ["nodes_ready", "gpu_allocatable", "cuda_smoke"]
    assert out["reasons"] == ["not run: K3s was staged, not started"]  # not the missing kubeconfig: nothing read
    out = run_module(k8s_verify, {**args, "not_run_reason": " "}, capsys)
    assert out["failed"] and "not_run_reason must say why" in out["msg"]
    out = run_module(k8s_verify, {"objects": {}, "not_run_reason": "x"}, capsys)
    assert out["failed"] and "mutually exclusive" in out["msg"]
    out = run_module(k8s_verify, {"objects": {}, "expect": {"cuda_smoke": {"count": -1}}}, capsys)
    assert out["failed"] and "count must be a positive integer" in out["msg"]
