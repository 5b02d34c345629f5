"""redis_migrate mode=replicate against real redis-server processes: 0 lost writes, the way back, faults."""

from __future__ import annotations

import threading
import time

import pytest
from redis_migrate_support import load_all_types

from ansible_collections.sophia.migrate.plugins.modules import redis_migrate
from support.modules import run_module

pytestmark = pytest.mark.slow


def _role(srv) -> dict:
    return srv.client().info("replication")


def _wait_link(srv, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _role(srv)
        if info.get("master_link_status") == "up":
            return info
        time.sleep(0.1)
    raise AssertionError(f"replication link of {srv.port} not up: {_role(srv)}")


@pytest.mark.parametrize("method", ["auto", "pause"])
def test_cutover_under_writes_loses_nothing_and_keeps_a_way_back(servers, writer, capsys, method):
    src = servers(password="src-pw")
    tgt = servers(password="tgt-pw")
    load_all_types(src.client(), 3000)
    w = writer([(src.port, src.password), (tgt.port, tgt.password)], rate=300)
    time.sleep(1.0)
    args = {"source": src.conn(), "target": tgt.conn(), "cutover": True, "cutover_method": method,
            "sync_timeout": 60, "cutover_timeout": 10}
    result = run_module(redis_migrate, args, capsys)
    assert not result.get("failed"), result
    assert result["changed"] is True
    assert result["state_before"] == "independent" and result["state_after"] == "cut_over"
    assert result["cutover"]["method"] == ("failover" if method == "auto" else "pause")
    assert result["replication"]["caught_up_seconds"] >= result["replication"]["initial_sync_seconds"]
    assert result["target"]["role"] == "master"
    time.sleep(1.5)  # the writer keeps going on the new primary
    w.stop()
    assert w.acked_by_port[tgt.port] > 100, w.acked_by_port
    assert w.acked_by_port[src.port] > 100, w.acked_by_port
    lost = w.check(tgt.client())
    assert lost == [], f"{len(lost)} of {len(w.acked)} acknowledged writes lost: {lost[:10]}"
    # the way back: the old source replicates from the new primary and holds the same data
    info = _wait_link(src)
    assert info["role"] == "slave" and int(info["master_port"]) == tgt.port
    verify = run_module(redis_migrate, {"mode": "verify", "source": tgt.conn(), "target": src.conn()}, capsys)
    assert verify["verified"] is True, verify["differences"]
    assert verify["checked_keys"] == tgt.client().dbsize()
    # a second run changes nothing
    again = run_module(redis_migrate, args, capsys)
    assert again["changed"] is False and again["state_before"] == "cut_over", again


def test_rollback_by_reverse_replication_under_writes(servers, writer, capsys):
    src = servers(password="pw")
    tgt = servers(password="pw")
    base = {"sync_timeout": 60, "cutover_timeout": 10}
    first = run_module(redis_migrate, {"source": src.conn(), "target": tgt.conn(), "cutover": True, **base}, capsys)
    assert first["state_after"] == "cut_over", first
    _wait_link(src)
    w = writer([(tgt.port, tgt.password), (src.port, src.password)], rate=300)
    time.sleep(1.0)
    back = run_module(redis_migrate, {"source": tgt.conn(), "target": src.conn(), "cutover": True, **base}, capsys)
    assert not back.get("failed"), back
    assert back["state_before"] == "replicating" and back["state_after"] == "cut_over"
    time.sleep(1.0)
    w.stop()
    assert w.acked_by_port[src.port] > 50
    assert w.check(src.client()) == []
    assert _role(src)["role"] == "master"
    assert int(_wait_link(tgt)["master_port"]) == src.port


def test_check_mode_changes_nothing(servers, capsys):
    src = servers()
    tgt = servers()
    src.client().set("a", "1")
    result = run_module(redis_migrate, {"source": src.conn(), "target": tgt.conn(), "cutover": True}, capsys,
                        check_mode=True)
    assert result["changed"] is True and "would make the target a replica" in result["msg"]
    assert result["diff"]["after"]["target_role"] == "slave"
    assert _role(tgt)["role"] == "master" and tgt.client().dbsize() == 0


def test_non_empty_target_is_refused(servers, capsys):
    src = servers()
    tgt = servers()
    tgt.client().set("precious", "1")
    result = run_module(redis_migrate, {"source": src.conn(), "target": tgt.conn()}, capsys)
    assert result["failed"] and "overwrite_target" in result["msg"] and "1 keys" in result["msg"]
    assert tgt.client().get("precious") == b"1" and _role(tgt)["role"] == "master"


def test_wrong_password_is_a_clear_error_and_changes_nothing(servers, capsys):
    src = servers(password="right")
    tgt = servers()
    conn = {**src.conn(), "password": "wrong"}
    result = run_module(redis_migrate, {"source": conn, "target": tgt.conn(), "cutover": True}, capsys)
    assert result["failed"]
    assert f"source 127.0.0.1:{src.port}: authentication failed" in result["msg"]
    assert "source.password" in result["msg"] and "wrong" not in result["msg"].replace("wrongpass", "")
    assert _role(tgt)["role"] == "master"


def test_source_restarted_mid_sync_module_waits_then_cuts_over(servers, capsys):
    # appendonly keeps the data over the restart; rdb-key-save-delay stretches the full sync to seconds
    src = servers(extra=["--appendonly", "yes", "--rdb-key-save-delay", "200"])
    tgt = servers()
    load_all_types(src.client(), 6000)
    restarter = threading.Timer(1.0, src.restart, kwargs={"down_for": 1.0})
    restarter.start()
    result = run_module(redis_migrate, {"source": src.conn(), "target": tgt.conn(), "cutover": True,
                                        "sync_timeout": 60, "cutover_timeout": 10}, capsys)
    restarter.join()
    assert not result.get("failed"), result
    links = [s["link"] for s in result["replication"]["progress"]]
    assert "down" in links, links  # the link did drop, and the module waited
    assert result["replication"]["initial_sync_seconds"] > 1.0
    assert tgt.client().dbsize() == 6000 and _role(tgt)["role"] == "master"


def test_blocked_link_times_out_without_promoting_then_resumes(servers, proxy, capsys):
    src = servers(extra=["--rdb-key-save-delay", "300"])
    tgt = servers()
    load_all_types(src.client(), 6000)
    px = proxy(src.port)
    args = {"source": src.conn(), "target": tgt.conn(), "replicaof": {"host": "127.0.0.1", "port": px.port},
            "cutover": True, "sync_timeout": 3, "cutover_timeout": 5}
    threading.Timer(0.7, px.block).start()
    failed = run_module(redis_migrate, args, capsys)
    assert failed["failed"] and "did not catch up" in failed["msg"] and "nothing was promoted" in failed["msg"]
    assert "link down" in failed["msg"]
    assert _role(tgt)["role"] == "slave" and _role(src)["role"] == "master"
    px.unblock()
    src.client().config_set("rdb-key-save-delay", 0)
    done = run_module(redis_migrate, {**args, "sync_timeout": 30}, capsys)
    assert not done.get("failed"), done
    assert done["state_before"] == "replicating" and done["state_after"] == "cut_over"
    assert tgt.client().dbsize() == 6000
