"""k8s_services runs the schedulability check after validating the rendered manifests (no cluster needed, so the lab
runs it too): production's render passes on the planned GPU node, and a node plan the GPU pods cannot use stops the
role with the workload and the term named."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(ROOT, "tests", "unit", "compose", "role_playbook.yml")
SOPHIA = os.path.join(ROOT, "tests", "fixtures", "compose", "sophia", "docker-compose.yml")
INVENTORY_VARS = os.path.join(ROOT, "inventories", "production", "group_vars", "all", "k8s_services.yml")
TASK = "Render | every workload can be scheduled on the planned GPU node"

pytestmark = pytest.mark.slow  # runs ansible-playbook


def play(tmp_path, **over):
    with open(INVENTORY_VARS, encoding="utf-8") as handle:
        inv = yaml.safe_load(handle)
    inv = {k: v for k, v in inv.items() if k.startswith("k8s_services_") and "{{" not in json.dumps(v)}
    variables = {**inv, "k8s_services_compose_files": [SOPHIA], "k8s_services_render_dir": str(tmp_path / "render"),
                 "k8s_services_profiles": ["monitoring"], "k8s_services_apply": False,
                 "ansible_python_interpreter": sys.executable, **over}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    env = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "default",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"}
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                           PLAYBOOK, "-e", f"@{tmp_path / 'vars.json'}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_production_render_is_schedulable_and_a_bad_plan_stops_the_role(tmp_path):
    with open(INVENTORY_VARS, encoding="utf-8") as handle:
        plan = yaml.safe_load(handle)["k8s_services_gpu_plan"]
    rc, out = play(tmp_path, k8s_services_gpu_plan={**plan, "gpus_found": 3})
    assert rc == 0, out[-3000:]
    assert f"TASK [sophia.migrate.k8s_services : {TASK}" in out
    # two GPUs for three dedicated GPU services, and a node without the label GPU pods select
    rc, out = play(tmp_path, k8s_services_gpu_plan={**plan, "gpus_found": 2}, k3s_gpu_gpu_node_labels={})
    assert rc != 0, out[-3000:]
    assert "k8s_schedulable: 3 workload(s) cannot be scheduled" in out, out[-3000:]
    assert "nodeSelector nvidia.com/gpu.present=true: the node has no label nvidia.com/gpu.present" in out
    rc, out = play(tmp_path, k8s_services_gpu_plan={**plan, "gpus_found": 2})
    assert rc != 0 and "Insufficient nvidia.com/gpu: needs 1, 0 of 2 allocatable" in out, out[-3000:]
