"""The decommission evidence gate: every retired service needs evidence of its kind, or is refused by name."""

from __future__ import annotations

import pathlib

import pytest
import yaml

from ansible_collections.sophia.migrate.plugins.filter.evidence import missing_evidence

ROOT = pathlib.Path(__file__).resolve().parents[3]
LEDGER = {
    "entries": [
        {"step": "phase2a", "status": "done",
         "data": {"steps": ["observability (basic monitoring) on k3s"], "outcomes": ["ran"]}},
        {"step": "phase2c", "status": "failed"},
        {"step": "redis/cutover", "status": "done"},
    ],
    "state": {"traffic/www": 100},
}
NONE_DECLARED = ("no evidence declared: give traffic_key, data_steps or replacement_key (a ledger step that proves "
                 "its replacement runs on K3s), or retire_without_replacement with the reason")


def test_the_issue_example_a_service_without_evidence_is_refused_by_name():
    assert missing_evidence({"entries": []}, [{"name": "redis"}]) == {"redis": [NONE_DECLARED]}


@pytest.mark.parametrize(("service", "expected"), [
    # a replacement on K3s, proven by a ledger step
    ({"name": "grafana", "replacement_key": "phase2a"}, []),
    ({"name": "loki", "replacement_key": "phase2c"}, ["replacement step 'phase2c' is 'failed', not 'done'"]),
    ({"name": "cadvisor", "replacement_key": "phase2z"}, ["replacement step 'phase2z' is not in the ledger"]),
    ({"name": "x", "replacement_key": " "}, ["replacement_key must be a non-empty string (a ledger step)"]),
    ({"name": "x", "replacement_key": ["phase2a"]}, ["replacement_key must be a non-empty string (a ledger step)"]),
    # an explicit retirement, with its reason
    ({"name": "old-cron", "retire_without_replacement": "the nightly export moved into sophia-jobs"}, []),
    ({"name": "x", "retire_without_replacement": ""},
     ["retire_without_replacement needs the reason (a non-empty string)"]),
    ({"name": "x", "retire_without_replacement": True},
     ["retire_without_replacement needs the reason (a non-empty string)"]),
    # both: each must hold
    ({"name": "node-exporter", "replacement_key": "phase2a", "retire_without_replacement": "host metrics via K3s"}, []),
    ({"name": "x", "replacement_key": "phase2z", "retire_without_replacement": "why"},
     ["replacement step 'phase2z' is not in the ledger"]),
    # nothing, or only empty declarations
    ({"name": "prometheus"}, [NONE_DECLARED]),
    ({"name": "prometheus", "observe_max_packets": 5000, "health": []}, [NONE_DECLARED]),
    ({"name": "x", "traffic_key": None, "data_steps": None}, [NONE_DECLARED]),
    ({"name": "x", "traffic_key": ""}, ["traffic_key must be a non-empty string"]),
    ({"name": "x", "data_steps": []}, ["data_steps must be a non-empty list of ledger step names"]),
    # a string is not a list of steps (it used to be read letter by letter)
    ({"name": "x", "data_steps": "redis/cutover"}, ["data_steps must be a non-empty list of ledger step names"]),
    # the kinds that existed keep working
    ({"name": "redis", "data_steps": ["redis/cutover"]}, []),
    ({"name": "www", "traffic_key": "traffic/www"}, []),
])
def test_each_kind_of_evidence(service, expected):
    assert missing_evidence(LEDGER, [service]) == {service["name"]: expected}


def test_only_the_services_without_evidence_are_named():
    services = [{"name": "grafana", "replacement_key": "phase2a"}, {"name": "loki"},
                {"name": "www", "traffic_key": "traffic/www"}]
    out = missing_evidence(LEDGER, services)
    assert [name for name, missing in out.items() if missing] == ["loki"]


def _phase_steps(playbook: str) -> set[str]:
    """Ledger steps a phase playbook records through the phase role's finish (its phase_name)."""
    plays = yaml.safe_load((ROOT / "playbooks" / playbook).read_text())
    names = set()
    for play in plays:
        for task in play.get("tasks", []) or []:
            role = task.get("ansible.builtin.include_role") or {}
            if role.get("name") == "sophia.migrate.phase" and role.get("tasks_from") == "finish":
                names.add(task["vars"]["phase_name"])
    return names


@pytest.mark.parametrize("inventory", ["production", "lab"])
def test_every_service_of_the_inventories_declares_evidence(inventory):
    services = yaml.safe_load((ROOT / "inventories" / inventory / "group_vars/all/main.yml").read_text())[
        "sophia_decommission_services"]
    # a ledger holding everything the inventory names as evidence: only undeclared evidence is left missing
    steps = {s for svc in services for s in svc.get("data_steps", [])} | {
        svc["replacement_key"] for svc in services if "replacement_key" in svc}
    ledger = {"entries": [{"step": s, "status": "done"} for s in steps],
              "state": {svc["traffic_key"]: 100 for svc in services if "traffic_key" in svc}}
    assert {k: v for k, v in missing_evidence(ledger, services).items() if v} == {}
    # the monitoring services stand on the K3s observability stack: the ledger step that phase2a records
    # (its entry is 'done' only when its observability step did not fail), which the lab runs before phase2d
    monitoring = [svc for svc in services if svc["name"] in {"prometheus", "grafana", "loki", "cadvisor",
                                                             "node-exporter"}]
    assert monitoring and all(svc.get("replacement_key") == "phase2a" for svc in monitoring)
    assert "phase2a" in _phase_steps("phase2a.yml")
