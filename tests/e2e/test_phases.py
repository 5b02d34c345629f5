"""The phase playbooks the rehearsal does not walk under load, run on the lab and run again: each second run
changes nothing (Phase 1's Fly.io audit, Phase 2A, Phase 2C).

Real: the lab (Docker engine, the lab node, Prometheus from Debian for Phase 2C's measurements), the
repository scan over tests/fixtures/flyio/repo. Stand-in: the Fly.io Machines API
(tests/standins/fly_machines_standin.py; every answer is validated against the Machines OpenAPI document in
specs/, and the test asserts that no answer broke it), seeded with the seed's eight legacy apps.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import explain, ledger, playbook, recap_changed
from standins.fly_machines_standin import FlyMachinesStandin, seed_legacy

TOKEN = "lab-e2e-token"  # the stand-in's token


def report(out: str) -> dict:
    """The JSON report whose path the phase role printed ("Report: <md> (and <json>)")."""
    match = re.search(r"Report: \S+ \(and (\S+\.json)\)", out)
    assert match, out[-3000:]
    with open(match.group(1)) as handle:
        return json.load(handle)


@pytest.fixture
def fly():
    with FlyMachinesStandin(token=TOKEN, port=18470) as api:
        seed_legacy(api)
        yield api
        assert api.violations == [], api.violations


def test_phase1_audits_the_legacy_apps_and_a_rerun_changes_nothing(lab, fly):
    args = ("playbooks/phase1.yml", "-e", f"sophia_fly_api_token={TOKEN}")
    first = playbook(*args)
    assert first.returncode == 0, explain(first.stdout)
    assert any(r["path"].startswith("/v1/apps") for r in fly.requests)  # the API was really asked
    result = report(first.stdout)
    steps = {s["name"]: s for s in result["steps"]}
    assert steps["flyio inventory (Machines API)"]["outcome"] == "ran"
    assert steps["repository scan"]["outcome"] == "ran"
    verdicts = steps["verdicts"]["details"]
    assert set(verdicts) >= {"sophiaai-jobs-v2", "sophiaai-dashboard-v2"}, verdicts
    assert set(fly.apps) >= {"sophiaai-jobs-v2", "sophiaai-dashboard-v2"}  # nothing destroyed unasked
    again = playbook(*args)
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, explain(again.stdout)


def test_phase2a_rerun_changes_nothing(lab):
    again = playbook("playbooks/phase2a.yml")
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, explain(again.stdout)
    # the lab has no K3s binary: K3s was prepared and written, not started, and the report says so
    steps = {s["name"].split(" ")[0]: s for s in report(again.stdout)["steps"]}
    assert steps["k3s_gpu"]["outcome"] == "staged", steps["k3s_gpu"]
    assert "k3s_gpu_service_enabled=false" in steps["k3s_gpu"]["reason"]


def test_phase2c_measures_and_a_rerun_changes_nothing(lab):
    first = playbook("playbooks/phase2c.yml")
    assert first.returncode == 0, explain(first.stdout)
    assert any(e["step"].startswith("phase2c") for e in ledger()["entries"])
    again = playbook("playbooks/phase2c.yml")
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, explain(again.stdout)
