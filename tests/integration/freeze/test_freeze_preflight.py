"""data_migration's preflight checks the write freeze's splitter hold against the running splitter (real HAProxy
configured by traffic_shift's template, the fixtures of conftest.py) before anything stops."""

from __future__ import annotations

from conftest import BACKEND, ROUTE

from support.playbooks import role_play, run_play


def test_the_preflight_refuses_a_hold_the_splitter_cannot_give_before_anything_stops(splitter, tmp_path):
    """The role's preflight checks the hold against the running splitter (check mode, nothing changed) when the
    Qdrant freeze will run: K3s taking a share of the route, or an unreachable Runtime API, stops the run before the
    freeze's start command. A hold left by a killed run (health checks still disabled) is released first."""
    marker = tmp_path / "stopped"
    base = {
        "data_migration_ledger_path": str(tmp_path / "ledger.json"),
        "data_migration_backup_dir": str(tmp_path / "backups"),
        "data_migration_report_dir": "",
        "data_migration_qdrant": {"source": {"url": "http://127.0.0.1:9"}, "target": {"url": "http://127.0.0.1:9"},
                                  "collections": ["docs"]},
        "traffic_shift_routes": [splitter["route"]],
        "traffic_shift_splitter_bind": "127.0.0.1",
    }
    freeze = {"start": ["touch", str(marker)], "end": ["true"],
              "hold": {"runtime_api": splitter["socket"], "routes": [ROUTE]}}
    splitter["api"].set_servers(BACKEND, [("k3s1", 25, "ready")])
    splitter["api"].set_health(BACKEND, [("compose1", False)])  # the hold of a run killed during its freeze
    res = run_play(tmp_path, role_play("data_migration"), {**base, "data_migration_write_freeze": freeze})
    assert res.returncode != 0
    assert "k3s1 (weight 25, ready) also take(s) the route's traffic" in res.stdout, res.stdout[-4000:]
    # the killed run's hold was released, and the check (check mode) held nothing
    assert splitter["api"].servers(BACKEND)["compose1"]["health"] == "enabled"
    gone = {**freeze, "hold": {**freeze["hold"], "runtime_api": str(tmp_path / "no-splitter.sock")}}
    res = run_play(tmp_path, role_play("data_migration"), {**base, "data_migration_write_freeze": gone})
    assert res.returncode != 0
    assert "cannot reach the HAProxy Runtime API at" in res.stdout and "no-splitter.sock" in res.stdout
    assert not marker.exists()  # nothing was stopped
