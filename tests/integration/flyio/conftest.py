"""Fixtures for the Fly.io tests: the Machines API stand-in (validated against the OpenAPI document)."""

from __future__ import annotations

import typing as t

import pytest
from standins.fly_machines_standin import FlyMachinesStandin, machine, volume

TOKEN = "fm2_sEcReTtOkEn-4f9a2c"


@pytest.fixture
def fly() -> t.Iterator[FlyMachinesStandin]:
    with FlyMachinesStandin(token=TOKEN) as api:
        api.retry_after = "0"
        yield api
        assert api.violations == [], api.violations


@pytest.fixture
def legacy(fly: FlyMachinesStandin) -> FlyMachinesStandin:
    fly.add_app(
        "sophiaai-jobs-v2",
        machines=[machine("148ed193b95089", state="stopped", image="registry.fly.io/sophiaai-jobs-v2:deployment-7")],
        volumes=[volume("vol_jobs0001", "jobs_data", 10, "148ed193b95089")],
        certificates=["jobs.sophia-intel.ai"],
        ips=[{"address": "2a09:8280:1::7", "type": "v6"}],
        secrets={"REDIS_URL": "redis://:hunter2@x:6379"},
    )
    return fly
