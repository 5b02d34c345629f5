"""Every phase playbook parses against both inventories; the production inventory is never run, only parsed."""

from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, ".venv", "bin")
ENV = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg")}
PLAYBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "playbooks", "*.yml")))


@pytest.mark.parametrize("inventory", ["inventories/lab", "inventories/production", "inventories/staging"])
@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_syntax_check(playbook, inventory):
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", inventory, "--syntax-check", f"playbooks/{playbook}"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_production_inventory_topology():
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-inventory"), "-i", "inventories/production", "--list"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    inv = json.loads(proc.stdout)
    host = inv["_meta"]["hostvars"]["lambda-gpu-01"]
    assert host["ansible_host"] == "192.222.51.223"
    assert host["sophia_domain"] == "www.sophia-intel.ai"
    assert "lambda-gpu-01" in inv["k3s_server"]["hosts"] and "lambda-gpu-01" in inv["compose_host"]["hosts"]
    names = [s["name"] for s in host["sophia_decommission_services"]]
    assert names[-1] == "nginx-proxy" and "mcp-research" in names
    # secrets are only references to vault variables, never values
    with open(os.path.join(ROOT, "inventories", "production", "group_vars", "all", "main.yml")) as handle:
        text = handle.read()
    assert "vault_redis_password" in text and "FlyV1 fm2_" not in text
