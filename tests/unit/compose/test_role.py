"""The k8s_services role without a cluster: render, validate, report; idempotent; check mode; drift check.

The apply path (kubernetes.core.k8s against an API server) is not exercised here: no cluster exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from support.servers import free_port

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(os.path.dirname(__file__), "role_playbook.yml")
SOPHIA = os.path.join(ROOT, "tests", "fixtures", "compose", "sophia", "docker-compose.yml")
INVENTORY_VARS = os.path.join(ROOT, "inventories", "production", "group_vars", "all", "k8s_services.yml")


def _play(tmp_path, extra, *flags):
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps({**extra, "ansible_python_interpreter": sys.executable}))
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", PLAYBOOK, "-e", f"@{vars_file}", *flags],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _vars(tmp_path, **over):
    with open(INVENTORY_VARS, encoding="utf-8") as handle:
        inv = yaml.safe_load(handle)
    inv = {k: v for k, v in inv.items() if k.startswith("k8s_services_") and "{{" not in json.dumps(v)}
    return {**inv, "k8s_services_compose_files": [SOPHIA], "k8s_services_render_dir": str(tmp_path / "render"),
            "k8s_services_profiles": ["monitoring"], "k8s_services_apply": False, **over}


def test_role_renders_validates_is_idempotent_and_hides_secrets(tmp_path):
    rc, out = _play(tmp_path, _vars(tmp_path))
    assert rc == 0, out
    render = tmp_path / "render"
    files = sorted(p.name for p in (render / "services").iterdir())
    assert "mcp-research.yaml" in files and "redis.yaml" in files and len(files) == 17
    assert (render / "00-namespace.yaml").exists()
    kinds = [d["kind"] for d in yaml.safe_load_all((render / "00-namespace.yaml").read_text()) if d]
    assert kinds == ["Namespace", "NetworkPolicy", "NetworkPolicy"]
    assert "sk-test-sophia-openai-0000000001" not in out and "redis-test-sophia-0000007" not in out
    research = list(yaml.safe_load_all((render / "services" / "mcp-research.yaml").read_text()))
    pod = next(d for d in research if d["kind"] in ("Deployment", "StatefulSet"))["spec"]["template"]["spec"]
    assert pod["runtimeClassName"] == "nvidia"
    # inventory says mcp-research and mcp-context are stateful (data migration in Phase 2B)
    assert next(d for d in research if d["kind"] in ("Deployment", "StatefulSet"))["kind"] == "StatefulSet"
    rc, out = _play(tmp_path, _vars(tmp_path))
    assert rc == 0, out
    assert "changed=0" in out, out
    # check mode with diff against the rendered files: an edited file shows up, and is not rewritten
    target = render / "services" / "sophia-dashboard.yaml"
    target.write_text(target.read_text().replace("replicas: 1", "replicas: 7"))
    rc, out = _play(tmp_path, _vars(tmp_path), "--check", "--diff")
    assert rc == 0, out
    assert "-  replicas: 7" in out and "+  replicas: 1" in out
    assert "replicas: 7" in target.read_text()


def test_role_renders_validated_node_port_services_with_their_network_policy(tmp_path):
    node_ports = {"redis": [{"port": 6379, "node_port": 30379}], "qdrant": [{"port": 6333, "node_port": 30333}]}
    sources = ["10.0.0.5/32", "172.16.0.0/12", "10.42.0.0/16"]
    wanted = _vars(tmp_path, k8s_services_node_ports=node_ports, k8s_services_node_port_sources=sources)
    rc, out = _play(tmp_path, wanted)
    assert rc == 0, out
    docs = [d for d in yaml.safe_load_all((tmp_path / "render" / "01-node-ports.yaml").read_text()) if d]
    services = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "Service"}
    assert services["redis-nodeport"]["type"] == "NodePort"
    assert services["redis-nodeport"]["ports"][0] == {"name": "tcp-6379", "protocol": "TCP", "port": 6379,
                                                      "targetPort": 6379, "nodePort": 30379}
    assert services["qdrant-nodeport"]["selector"] == {"app.kubernetes.io/name": "qdrant"}
    # the selector is the one of the StatefulSet's pods rendered by compose_to_k8s
    redis = list(yaml.safe_load_all((tmp_path / "render" / "services" / "redis.yaml").read_text()))
    sts = next(d for d in redis if d["kind"] == "StatefulSet")
    assert sts["spec"]["selector"]["matchLabels"] == services["redis-nodeport"]["selector"]
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchExpressions"][0]["values"] == ["qdrant", "redis"]
    assert [b["ipBlock"]["cidr"] for b in policy["ingress"][0]["from"]] == sources
    assert [p["port"] for p in policy["ingress"][0]["ports"]] == [6333, 6379]
    # a port the service does not have, and a node port outside the range, are refused by name
    bad = {"redis": [{"port": 6380, "node_port": 30379}]}
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_node_ports=bad, k8s_services_node_port_sources=sources))
    assert rc != 0 and "k8s_services_node_ports.redis" in out and "30000-32767" in out
    for wrong in ([{"port": 6379, "node_port": 6379}], "30379", [30379], []):
        rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_node_ports={"redis": wrong},
                                        k8s_services_node_port_sources=sources))
        assert rc != 0 and "k8s_services_node_ports.redis" in out and "must list {port, node_port} items" in out, out
    # with the deny-all policy on, node ports without allowed sources would be unreachable: refused
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_node_ports=node_ports))
    assert rc != 0 and "k8s_services_node_port_sources must list the CIDRs" in out
    # asking for none removes the file again
    rc, out = _play(tmp_path, _vars(tmp_path))
    assert rc == 0, out
    assert not (tmp_path / "render" / "01-node-ports.yaml").exists()


def test_role_fails_when_compose_drifts_from_the_inventory(tmp_path):
    services = [{"name": "sophia-dashboard", "ports": [3000]}, {"name": "mcp-research", "ports": [9999], "gpus": 1}]
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_services=services))
    assert rc != 0
    assert "k8s_services_services says mcp-research has ports [9999]" in out


def test_role_preflight_names_the_variable(tmp_path):
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_apply=True, k8s_services_kubeconfig=""))
    assert rc != 0 and "k8s_services_apply=true needs k8s_services_kubeconfig" in out


def test_role_apply_path_reaches_kubernetes_core_and_fails_cleanly_without_a_server(tmp_path):
    """Wiring only: kubernetes.core.k8s is called with the rendered namespace file and a kubeconfig whose API server
    (a closed loopback port) refuses connections. A live API server is NOT tested here."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                               "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        "users": [{"name": "t", "user": {"token": "not-a-real-token"}}]}))
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_apply=True, k8s_services_kubeconfig=str(kubeconfig)))
    assert rc != 0
    assert "Apply | namespace and NetworkPolicies" in out
    assert "Connection refused" in out or "Max retries exceeded" in out or "Failed to" in out, out[-3000:]
    missing = _play(tmp_path, _vars(tmp_path, k8s_services_apply=True, k8s_services_kubeconfig="/nonexistent/k3s.yaml"))
    assert missing[0] != 0 and "k8s_services_kubeconfig /nonexistent/k3s.yaml does not exist" in missing[1]


def test_phase2c_rightsizing_file_reaches_the_manifests_and_the_inventory_wins(tmp_path):
    """playbooks/phase2c.yml writes the approved right-sizing for k8s_services (before: nothing read it)."""
    rightsizing = tmp_path / "rightsizing.yml"
    rightsizing.write_text(yaml.safe_dump({"k8s_services_resource_overrides": {
        "mcp-github": {"requests": {"cpu": "150m", "memory": "300Mi"}},
        "redis": {"requests": {"memory": "1Gi"}}}}))
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_rightsizing_file=str(rightsizing),
                                    k8s_services_resource_overrides={"redis": {"requests": {"memory": "1500Mi"}}}))
    assert rc == 0, out

    def resources(service):
        docs = yaml.safe_load_all((tmp_path / "render" / "services" / f"{service}.yaml").read_text())
        pod = next(d for d in docs if d and d["kind"] in ("Deployment", "StatefulSet"))["spec"]["template"]["spec"]
        return pod["containers"][0]["resources"]

    assert resources("mcp-github")["requests"] == {"cpu": "150m", "memory": "300Mi"}
    assert resources("redis")["requests"] == {"memory": "1500Mi"}
    # a right-sizing file naming a service the project no longer has stops the render, naming it
    gone = {"k8s_services_resource_overrides": {"mcp-gone": {"requests": {"cpu": "1"}}}}
    rightsizing.write_text(yaml.safe_dump(gone))
    rc, out = _play(tmp_path, _vars(tmp_path, k8s_services_rightsizing_file=str(rightsizing)))
    assert rc != 0 and "not in the compose project: mcp-gone" in out, out
