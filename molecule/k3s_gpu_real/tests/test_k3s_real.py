"""Real K3s started by k3s_gpu from an air-gap directory: the node becomes Ready."""

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
