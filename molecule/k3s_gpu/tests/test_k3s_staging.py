"""Verify K3s staging by k3s_gpu: config, token, containerd template, unit, air-gap layout, manifests.

The binary installed here is the scenario's TEST DOUBLE (molecule/k3s_gpu/files/airgap/k3s); these
tests check files and the unit, they do not claim that K3s runs.
"""

import hashlib
from pathlib import Path

import yaml

AIRGAP = Path(__file__).resolve().parents[1] / "files" / "airgap"


def test_config_yaml_from_dict(host):
    f = host.file("/etc/rancher/k3s/config.yaml")
    assert f.mode == 0o600 and f.user == "root"
    cfg = yaml.safe_load(f.content_string)
    # the user's node-label first, then the label the device plugin's DaemonSet and the GPU pods select (a GPU was
    # found: the recorded A10 output), so they can schedule on this node
    assert cfg == {"token-file": "/etc/rancher/k3s/token", "write-kubeconfig-mode": "0600",
                   "node-label": ["sophia.ai/gpu=true", "nvidia.com/gpu.present=true"], "disable": ["traefik"]}


def test_token_file_private_and_not_in_unit(host):
    f = host.file("/etc/rancher/k3s/token")
    assert f.mode == 0o600
    assert f.content_string.strip() == "molecule-test-token-not-a-secret"
    assert "molecule-test-token" not in host.file("/etc/systemd/system/k3s.service").content_string
    assert "molecule-test-token" not in host.file("/etc/rancher/k3s/config.yaml").content_string


def test_containerd_v3_template_for_v1_31_6(host):
    d = "/var/lib/rancher/k3s/agent/etc/containerd/"
    f = host.file(d + "config-v3.toml.tmpl")
    assert f.exists
    assert f.content_string.count('{{ template "base" . }}') == 1
    assert "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'nvidia']" in f.content_string
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in f.content_string
    assert not host.file(d + "config.toml.tmpl").exists


def test_systemd_unit(host):
    f = host.file("/etc/systemd/system/k3s.service")
    assert "ExecStart=/usr/local/bin/k3s server" in f.content_string
    assert "Type=notify" in f.content_string
    out = host.run("systemctl show -p LoadState -p FragmentPath k3s")
    assert "LoadState=loaded" in out.stdout
    assert "FragmentPath=/etc/systemd/system/k3s.service" in out.stdout


def test_binary_is_the_verified_double(host):
    f = host.file("/usr/local/bin/k3s")
    assert f.mode == 0o755
    assert f.sha256sum == hashlib.sha256((AIRGAP / "k3s").read_bytes()).hexdigest()
    assert "test double" in host.run("/usr/local/bin/k3s --version").stdout


def test_airgap_layout(host):
    assert host.file("/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar.zst").is_file
    assert host.file("/var/lib/rancher/k3s/server/manifests").is_directory


def test_device_plugin_manifest_time_slicing(host):
    f = host.file("/var/lib/rancher/k3s/server/manifests/nvidia-device-plugin.yaml")
    assert f.mode == 0o600
    doc = yaml.safe_load(f.content_string)
    assert doc["kind"] == "HelmChart" and doc["spec"]["chart"] == "nvidia-device-plugin"
    values = yaml.safe_load(doc["spec"]["valuesContent"])
    assert values["runtimeClassName"] == "nvidia"
    plugin_cfg = yaml.safe_load(values["config"]["map"]["default"])
    assert plugin_cfg["version"] == "v1"
    # A10 fixture: 1 GPU for the seed's 3 one-GPU services -> 3 replicas.
    assert plugin_cfg["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 3}]


def test_storage_directories(host):
    for name in ("qdrant", "redis", "embeddings"):
        d = host.file(f"/var/lib/sophia/volumes/{name}")
        assert d.is_directory and d.user == "root" and d.mode == 0o750


def test_storage_manifest_pins_volumes_to_this_node(host):
    f = host.file("/var/lib/rancher/k3s/server/manifests/sophia-storage.yaml")
    assert f.mode == 0o600
    docs = list(yaml.safe_load_all(f.content_string))
    assert [d["kind"] for d in docs] == ["StorageClass"] + ["PersistentVolume"] * 3
    node = host.run("uname -n").stdout.strip().lower()
    paths = {}
    for pv in docs[1:]:
        spec = pv["spec"]
        assert spec["persistentVolumeReclaimPolicy"] == "Retain"
        assert spec["storageClassName"] == docs[0]["metadata"]["name"] == "sophia-local-ssd"
        assert spec["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [node]
        paths[pv["metadata"]["name"]] = spec["hostPath"]["path"]
    assert paths == {"qdrant-data": "/var/lib/sophia/volumes/qdrant", "redis-data": "/var/lib/sophia/volumes/redis",
                     "embeddings-cache": "/var/lib/sophia/volumes/embeddings"}


def test_only_the_configured_gpu_stack_is_installed(host):
    # k3s_gpu_gpu_stack defaults to device_plugin: no GPU Operator chart next to it
    assert not host.file("/var/lib/rancher/k3s/server/manifests/gpu-operator.yaml").exists


def test_kubeconfig_not_fetched_when_service_disabled(host):
    # staging only (k3s_gpu_service_enabled: false): nothing fetched to the controller
    # (default k3s_gpu_kubeconfig_dest: ~/.kube/sophia-k3s-<inventory_hostname>.yaml)
    assert not Path.home().joinpath(".kube", "sophia-k3s-sophia-k3s_gpu.yaml").exists()
