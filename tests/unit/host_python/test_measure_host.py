"""Phase 2C runs usage_report and success_criteria on the measuring host (the K3s server in production), whose own
Python may lack what they import: the playbook gives that host the modules through host_python first."""

from __future__ import annotations

import ast
import os

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
THIRD_PARTY = {"requests", "redis", "docker", "qdrant_client", "dns", "yaml", "kubernetes", "kubernetes_validate"}


def third_party_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """The third-party packages a collection module imports, through the module_utils it uses."""
    seen = seen if seen is not None else set()
    if module in seen:
        return set()
    seen.add(module)
    path = os.path.join(ROOT, "plugins", *module.split("/")) + ".py"
    with open(path) as handle:
        tree = ast.parse(handle.read())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.endswith("plugins.module_utils"):
                names = [f"module_utils/{alias.name}" for alias in node.names]
            elif ".plugins.module_utils." in node.module:
                names = ["module_utils/" + node.module.rsplit(".", 1)[1]]
            else:
                names = [node.module]
        for name in names:
            if name.startswith("module_utils/"):
                found |= third_party_imports(name, seen)
            elif name.split(".")[0] in THIRD_PARTY:
                found.add(name.split(".")[0])
    return found


def test_the_measuring_host_gets_what_the_measurements_import():
    with open(os.path.join(ROOT, "playbooks", "phase2c.yml")) as handle:
        plays = yaml.safe_load(handle)
    measured_at = None
    needed: set[str] = set()
    for index, play in enumerate(plays):
        for task in play.get("tasks", []):
            module = next((k for k in task if k.startswith("sophia.migrate.")), None)
            if module and task.get("delegate_to") == "{{ phase2c_measure_host }}":
                measured_at = index if measured_at is None else measured_at
                needed |= third_party_imports("modules/" + module.split(".")[-1])
    assert measured_at is not None and "requests" in needed, needed
    grouped = [p for p in plays[:measured_at] for t in p.get("tasks", []) if "ansible.builtin.add_host" in t]
    assert grouped and grouped[0]["tasks"][0]["ansible.builtin.add_host"]["groups"] == "phase2c_measure"
    name = grouped[0]["tasks"][0]["ansible.builtin.add_host"]["name"]
    assert "sophia_measure_host" in name and "groups['k3s_server'][0]" in name
    given: set[str] = set()
    for play in plays[:measured_at]:
        if play["hosts"] != "phase2c_measure":
            continue
        for task in play.get("tasks", []):
            if task.get("ansible.builtin.include_role", {}).get("name") == "sophia.migrate.host_python":
                given |= set(task["vars"]["host_python_modules"])
    assert needed <= given, f"the measuring host needs {sorted(needed)}, host_python gives it {sorted(given)}"
