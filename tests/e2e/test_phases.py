"""The phase playbooks the rehearsal does not walk under load, run on the lab and run again: each second run
changes nothing (Phase 2C). Phase 1 and Phase 2A run with production's own settings on the staging lab instead
(tests/e2e/test_staging.py: check mode, a real run, a second run that changes nothing), which supersedes the lab-only
runs that were here.

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


def test_phase2c_measures_and_a_rerun_changes_nothing(lab):
    first = playbook("playbooks/phase2c.yml")
    assert first.returncode == 0, explain(first.stdout)
    assert any(e["step"].startswith("phase2c") for e in ledger()["entries"])
    again = playbook("playbooks/phase2c.yml")
    assert again.returncode == 0 and recap_changed(again.stdout) == 0, explain(again.stdout)
