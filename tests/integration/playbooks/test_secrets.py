"""Secrets in the production inventory: refused by name when missing or empty, and vault.yml.example in sync.

The production inventory is never run against its host here: the phase preflight runs on the controller
(localhost) and stops the playbook before any play reaches the GPU host; as a second guard every run points
the hosts at a closed loopback port (-e ansible_host=127.0.0.1 -e ansible_port=1).
"""

from __future__ import annotations

import glob
import os
import re
import subprocess

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, ".venv", "bin")
ENV = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
PROD = os.path.join(ROOT, "inventories", "production", "group_vars")
GUARD = ["-e", "ansible_host=127.0.0.1", "-e", "ansible_port=1", "-e", "ansible_ssh_timeout=3"]


def _phase(playbook, *extra):
    return subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/production", f"playbooks/{playbook}", "--check",
         *GUARD, *extra],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180, check=False)


def _recap_hosts(out):
    return re.findall(r"^(\S+)\s*:\s*ok=", out, re.M)


def test_phase2a_without_a_vault_names_every_missing_secret_and_stops_on_the_controller():
    proc = _phase("phase2a.yml")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "vault_acme_email (sophia_acme_email)" in out and "vault_k3s_token (sophia_k3s_token)" in out
    assert "Traceback" not in out and "Module failed" not in out
    assert _recap_hosts(proc.stdout) == ["localhost"], proc.stdout[-2000:]


def test_an_empty_secret_is_refused_like_a_missing_one():
    proc = _phase("phase2b.yml", "-e", "vault_redis_password=", "-e", "vault_qdrant_api_key=set-in-test")
    out = proc.stdout
    assert proc.returncode != 0
    assert "vault_redis_password (sophia_redis_password)" in out
    assert "vault_qdrant_api_key" not in out.split("missing or empty:")[1].split(".")[0]
    assert "set-in-test" not in out  # values are never printed


def test_with_every_secret_the_preflight_lets_the_phase_go_on():
    # phase2b: after the preflight the next play runs on the controller and stops there (no Compose file here);
    # nothing leaves the machine
    proc = _phase("phase2b.yml", "-e", "vault_redis_password=pw-set-in-test",
                  "-e", "vault_qdrant_api_key=key-set-in-test")
    out = proc.stdout
    assert "needs these secrets" not in out
    # the preflight passed; the run went on past it (and fails later only for what a test machine lacks)
    assert re.search(r"TASK \[sophia\.migrate\.phase : Phase \| where we are\]", out), out[-2000:]
    assert "pw-set-in-test" not in out and "key-set-in-test" not in out


def _vault_keys_referenced():
    keys = set()
    for path in glob.glob(os.path.join(PROD, "**", "*.yml"), recursive=True):
        with open(path) as handle:
            keys |= set(re.findall(r"\bvault_[a-z0-9_]+", handle.read()))
    return keys


def test_vault_example_lists_exactly_the_keys_the_inventory_reads():
    with open(os.path.join(PROD, "all", "vault.yml.example")) as handle:
        example = yaml.safe_load(handle)
    assert set(example) == _vault_keys_referenced()


def test_every_required_secret_maps_a_variable_fed_by_its_vault_key():
    with open(os.path.join(PROD, "all", "main.yml")) as handle:
        text = handle.read()
    mains = yaml.safe_load(text)
    required = mains["sophia_phase_secrets"]
    assert {"phase1", "phase2a", "phase2b", "rollback"} <= set(required)
    for phase, mapping in required.items():
        for var, key in mapping.items():
            assert var in mains, f"{phase}: {var} is not defined in main.yml"
            assert key in mains[var], f"{phase}: {var} is not fed by {key}"
