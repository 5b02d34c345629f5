"""Staging runs production's own settings: the rule of inventories/staging, checked on what Ansible merges.

inventories/staging links production's hosts.yml and every group_vars file, and adds one file of overrides
(group_vars/staging.yml), each key with the reason it must differ. These tests read the merged host variables of
both inventories with `ansible-inventory --list` (raw, unrendered values, as the files give them) and fail when:
- a production vars file is not linked as it is (vault files and the host's address excepted);
- a setting differs, or exists only in staging, without being a key of the override file;
- an override key has no reason written above it, or does not take effect (a production group outranking it);
- fewer than 85% of production's host settings (host x top-level key) are unchanged in staging.
The figure is written to tests/output/figures/staging_settings.txt; `make test` prints it at the end.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

from support.figures import write_figure

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BIN = os.path.join(ROOT, ".venv", "bin")
ENV = {**os.environ, "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg")}
PRODUCTION = os.path.join(ROOT, "inventories", "production")
STAGING = os.path.join(ROOT, "inventories", "staging")
OVERRIDES = os.path.join(STAGING, "group_vars", "staging.yml")
# production files staging must not take: the encrypted vault (real secrets) and the host's real address
NOT_LINKED = {"group_vars/all/vault.yml", "group_vars/all/vault.yml.example", "host_vars/lambda-gpu-01.yml"}
# staging's own files: the group that carries the overrides, and the overrides
STAGING_OWN = {"staging.yml", "group_vars/staging.yml"}
MIN_SHARED = 0.85


def _inventory(path):
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-inventory"), "-i", path, "--list"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _files(top):
    found = set()
    for base, dirs, files in os.walk(top):
        dirs.sort()
        for name in files:
            found.add(os.path.relpath(os.path.join(base, name), top))
    return found


def _override_keys():
    with open(OVERRIDES, encoding="utf-8") as handle:
        text = handle.read()
    return text, set(yaml.safe_load(text))


@pytest.fixture(scope="module")
def inventories():
    return _inventory(PRODUCTION), _inventory(STAGING)


def test_every_production_vars_file_is_linked_as_it_is():
    production = _files(PRODUCTION)
    staging = _files(STAGING)
    for rel in sorted(production - NOT_LINKED):
        link = os.path.join(STAGING, rel)
        assert os.path.islink(link), f"inventories/staging/{rel} must be a link to inventories/production/{rel}"
        assert os.path.realpath(link) == os.path.realpath(os.path.join(PRODUCTION, rel)), rel
    extra = staging - production - STAGING_OWN
    assert not extra, f"files only staging has (settings belong in group_vars/staging.yml): {sorted(extra)}"
    for rel in NOT_LINKED:
        assert not os.path.exists(os.path.join(STAGING, rel)), f"staging must not take production's {rel}"


def test_topology_is_production_s(inventories):
    production, staging = inventories
    for group, body in production.items():
        if group == "_meta":
            continue
        assert staging.get(group, {}).get("hosts", []) == body.get("hosts", []), group
        children = [c for c in staging.get(group, {}).get("children", []) if c != "staging"]
        assert children == body.get("children", []), group
    assert sorted(staging["staging"]["hosts"]) == sorted(production["_meta"]["hostvars"]), "staging covers every host"


def test_every_override_has_a_reason_and_takes_effect(inventories):
    staging = inventories[1]
    text, keys = _override_keys()
    values = yaml.safe_load(text)
    paragraph_has_reason = False
    for line in text.splitlines():
        if not line.strip():
            paragraph_has_reason = False
        elif line.startswith("#"):
            paragraph_has_reason = True
        elif not line.startswith((" ", "-")) and ":" in line:
            key = line.split(":", 1)[0]
            assert paragraph_has_reason, f"group_vars/staging.yml: {key} has no reason (a comment above it)"
    host = staging["_meta"]["hostvars"]["lambda-gpu-01"]
    for key in keys:
        assert host.get(key) == values[key], f"override {key} does not take effect on lambda-gpu-01: {host.get(key)!r}"
    # the controller keeps its local connection: the host variable of hosts.yml outranks the group's
    assert staging["_meta"]["hostvars"]["localhost"]["ansible_connection"] == "local"


def test_only_listed_settings_differ_and_most_are_shared(inventories):
    production, staging = inventories
    keys = _override_keys()[1]
    shared = total = 0
    unlisted = []
    for host, pvars in sorted(production["_meta"]["hostvars"].items()):
        svars = staging["_meta"]["hostvars"].get(host)
        assert svars is not None, f"staging lacks production's host {host}"
        for key in sorted(set(pvars) | set(svars)):
            same = key in pvars and key in svars and pvars[key] == svars[key]
            if key in pvars:
                total += 1
                shared += same
            if not same and key not in keys:
                unlisted.append(f"{host}: {key}")
    assert not unlisted, ("settings that differ from production without being in group_vars/staging.yml: "
                          + ", ".join(unlisted))
    ratio = shared / total
    line = (f"staging settings: {shared}/{total} of production's host settings rehearsed unchanged ({ratio:.0%}); "
            f"{len(keys)} overrides, each with its reason, in inventories/staging/group_vars/staging.yml")
    write_figure("staging_settings", line)
    print(line)
    assert ratio >= MIN_SHARED, line
