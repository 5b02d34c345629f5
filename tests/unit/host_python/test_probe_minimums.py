"""host_python's probe of the interpreter in use: a module that imports but is older than its minimum counts as
lacking (certbot pulls Debian 12's python3-cryptography 38 into the system's Python; the TLS checks need 42), so the
role gives the modules its virtualenv instead. Runs the probe from roles/host_python/vars/main.yml as the role does."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def role_vars() -> dict:
    with open(os.path.join(ROOT, "roles", "host_python", "vars", "main.yml")) as handle:
        return yaml.safe_load(handle)


def probe(*args: str) -> str:
    return subprocess.run([sys.executable, "-c", role_vars()["_host_python_probe"], *args], capture_output=True,
                          text=True, check=True, timeout=60).stdout.strip()


def test_minimum_versions_count_and_every_minimum_is_a_pinned_module():
    minimums = role_vars()["_host_python_minimums"]
    assert minimums == {"cryptography": "cryptography>=42"}
    assert set(minimums) <= set(role_vars()["_host_python_pins"])


def test_a_module_older_than_its_minimum_is_lacking_and_a_recent_one_is_not():
    assert probe("cryptography=cryptography>=42", "yaml") == ""  # the test environment's cryptography is pinned 50
    assert probe("cryptography=cryptography>=999", "yaml") == "cryptography"
    assert probe("yaml", "no_such_module_here", "cryptography=no-such-distribution>=1") == \
        "no_such_module_here cryptography"
