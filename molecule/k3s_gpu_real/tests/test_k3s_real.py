"""Real K3s started by k3s_gpu from an air-gap directory: the node becomes Ready, and the post-deploy verification
(k3s_gpu tasks_from verify, run by converge.yml as phase2a runs it) passes its Node Ready check."""

import json
import os
import time
from pathlib import Path

import yaml


def test_k3s_active(host):
    assert host.service("k3s").is_running


def test_node_ready(host):
    deadline = time.monotonic() + 180
    out = ""
    while time.monotonic() < deadline:
        res = host.run("k3s kubectl get nodes --no-headers")
        out = res.stdout
        if res.rc == 0 and out.split() and out.split()[1] == "Ready":
            return
        time.sleep(5)
    raise AssertionError(f"node not Ready within 180 s: {out!r}")


def test_kubeconfig_private(host):
    assert host.file("/etc/rancher/k3s/k3s.yaml").mode == 0o600


def test_kubeconfig_fetched_to_the_controller(host):
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "kubeconfig" / "k3s.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    server = yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"]
    address = host.ansible("setup", "filter=ansible_default_ipv4")["ansible_facts"]["ansible_default_ipv4"]["address"]
    assert server == f"https://{address}:6443"


def test_storage_volumes_available(host):
    # applied from the auto-deploy directory shortly after start; no claim yet (WaitForFirstConsumer)
    deadline = time.monotonic() + 120
    res = None
    while time.monotonic() < deadline:
        res = host.run("k3s kubectl get pv qdrant-data redis-data embeddings-cache"
                       " -o jsonpath='{.items[*].status.phase}'")
        if res.rc == 0 and res.stdout.split() == ["Available"] * 3:
            return
        time.sleep(5)
    raise AssertionError(f"storage PVs not Available within 120 s: {res.stdout!r} {res.stderr!r}")


def verification() -> dict:
    """The k3s_gpu verify result converge.yml wrote (tasks_from: verify, as phase2a runs it)."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "verification.json"
    return json.loads(path.read_text(encoding="utf-8"))


def test_verification_passed_its_node_ready_check(host):
    result = verification()
    assert result["verdict"] == "pass", result["reasons"]
    assert result["ran"] is True
    checks = {c["check"]: c for c in result["checks"]}
    nodes = checks["nodes_ready"]
    assert nodes["ran"] is True and nodes["ok"] is True and nodes["reasons"] == []
    # it looked at the node K3s registered (a cluster with no node would pass with nothing checked)
    nodename = host.ansible("setup", "filter=ansible_nodename")["ansible_facts"]["ansible_nodename"].lower()
    assert nodename in nodes["checked"], nodes


def test_verification_reports_the_smoke_pods_not_run_and_expects_no_gpu_or_charts():
    result = verification()
    checks = {c["check"]: c for c in result["checks"]}
    # no GPU in the container: no GPU plan, so neither nvidia.com/gpu, the device plugin's install Job nor its pods
    # are expected; the scenario installs no ingress controller or cert-manager: no Deployment is expected either
    for name in ("gpu_allocatable", "helm_jobs", "gpu_stack_pods", "controllers"):
        check = checks[name]
        assert check["ran"] is True and check["ok"] is True and check["checked"] == [], check
    assert result["not_run"] == ["cuda_smoke: k3s_gpu_verify_cuda_smoke is false"]
    assert checks["cuda_smoke"]["ran"] is False
