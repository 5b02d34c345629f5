"""The per-route latency table: built from the ledger's latency/<route>/<kind> entries (latency_table filter) and
written into the phase report (migration_report's latency option)."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.latency_table import latency_table
from ansible_collections.sophia.migrate.plugins.modules import migration_report as mod
from support.modules import run_module


def figures(p95: float, count: int = 50, error_rate: float = 0.0, **verdict) -> dict:
    return {"p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95 * 1.5, "max_ms": p95 * 2, "error_rate": error_rate,
            "count": count, "statuses": {"200": count}, "first_errors": [], **verdict}


def entry(step: str, data: dict, status: str = "done") -> dict:
    return {"step": step, "status": status, "phase": "phase2b", "data": data}


ENTRIES = [
    entry("traffic/www-root/5", {"share": 5}),
    entry("latency/www-root/baseline", figures(10, regressions=[], within_baseline=None)),
    entry("latency/www-root/prewarm", figures(12, regressions=[], within_baseline=True)),
    entry("latency/www-root/after", figures(11, regressions=[], within_baseline=True)),
    entry("latency/api/baseline", figures(5, regressions=[], within_baseline=None)),
    entry("latency/api/prewarm", figures(9, regressions=[], within_baseline=True)),
    entry("latency/api/after", figures(300, regressions=["p95 300 ms > 60 ms (...)"], within_baseline=False)),
    entry("latency/api/now", figures(7, regressions=[], within_baseline=True)),
    entry("latency/api/now", figures(8), status="started"),  # not done: ignored
    entry("latency/old/baseline", figures(4)),
    entry("latency/old/unknown", figures(4)),  # not a kind this table knows
]


def test_one_row_per_route_with_the_latest_of_each_measurement():
    rows = latency_table(ENTRIES)
    assert [r["route"] for r in rows] == ["api", "old", "www-root"]
    api, old, root = rows
    # Phase 2C measured after the 100% measurement: its verdict counts
    assert api["after"]["p95_ms"] == 300 and api["now"]["p95_ms"] == 7 and api["maintained"] is True
    assert api["regressions"] == []
    assert set(api["baseline"]) == {"p50_ms", "p95_ms", "p99_ms", "error_rate", "count"}
    assert root["maintained"] is True and root["now"] is None
    assert old["maintained"] is None and old["after"] is None  # nothing measured after its walk


def test_a_walk_redone_after_phase_2c_counts_its_own_measurement():
    redone = figures(400, regressions=["p95 400 ms > 60 ms"], within_baseline=False)
    again = [*ENTRIES, entry("latency/api/after", redone)]
    api = latency_table(again)[0]
    assert api["maintained"] is False and api["regressions"] == ["p95 400 ms > 60 ms"]


@pytest.mark.parametrize("bad", [None, "entries", {"entries": []}])
def test_anything_but_the_entries_is_refused(bad):
    with pytest.raises(AnsibleFilterError, match="latency_table: expects the ledger's entries"):
        latency_table(bad)


def test_the_report_has_the_table(tmp_path, capsys):
    rows = latency_table(ENTRIES)
    res = run_module(mod, {"directory": str(tmp_path), "run_id": "r1", "phase": "phase2c", "environment": "staging",
                           "steps": [{"name": "x", "outcome": "ran"}], "latency": rows}, capsys)
    assert not res.get("failed"), res
    md = (tmp_path / "r1" / "phase2c.md").read_text()
    assert "## Latency per route" in md
    assert ("| api | 2.5 / 5 / 7.5, 0.0, 50 | 4.5 / 9 / 13.5, 0.0, 50 | 150 / 300 / 450, 0.0, 50 "
            "| 3.5 / 7 / 10.5, 0.0, 50 | yes |") in md
    assert "| old | 2 / 4 / 6, 0.0, 50 | - | - | - | - |" in md
    assert json.loads((tmp_path / "r1" / "phase2c.json").read_text())["latency"] == rows
    # a report without the table has no such section
    res = run_module(mod, {"directory": str(tmp_path), "run_id": "r2", "phase": "phase2a",
                           "steps": [{"name": "x", "outcome": "ran"}]}, capsys)
    assert "Latency per route" not in (tmp_path / "r2" / "phase2a.md").read_text()
