"""redis_migrate mode=dump (all types, TTLs, resume from the ledger), mode=rdb (sha256) and mode=verify."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil

import pytest
from redis_migrate_support import MigrateRedis, load_all_types

from ansible_collections.sophia.migrate.plugins.module_utils import _redis_client, _redis_copy
from ansible_collections.sophia.migrate.plugins.modules import redis_migrate
from support.modules import run_module

pytestmark = pytest.mark.slow

TYPES = {"string", "hash", "list", "set", "zset", "stream"}


def _types(c) -> set[str]:
    return {c.type(k).decode() for k in c.scan_iter(count=1000)}


def test_dump_preserves_types_and_ttls_and_resumes_from_the_ledger(servers, capsys, tmp_path):
    src = servers(password="s")
    tgt = servers(password="t")
    load_all_types(src.client(), 1200)
    load_all_types(src.client(2), 60, prefix="db2")
    src.client().set("persistent", "no ttl")
    ledger = str(tmp_path / "ledger.json")
    ep_s = _redis_client.Endpoint.from_params("source", src.conn())
    ep_t = _redis_client.Endpoint.from_params("target", tgt.conn())
    # an interrupted first run leaves its cursor in the ledger
    first = _redis_copy.dump_copy(ep_s, ep_t, batch_size=100, ledger_path=ledger, ledger_step="redis/dump",
                                  stop_after_batches=3)
    assert first["interrupted"] is True and first["keys_copied"] > 0
    state = json.loads(pathlib.Path(ledger).read_text())["state"]["redis/dump"]
    assert state["cursor"] != 0 and state["copied"] == first["keys_copied"]
    args = {"mode": "dump", "source": src.conn(), "target": tgt.conn(), "batch_size": 100,
            "ledger_path": ledger, "ledger_step": "redis/dump"}
    result = run_module(redis_migrate, args, capsys)
    assert not result.get("failed"), result
    assert result["resumed_from"]["cursor"] == state["cursor"]
    assert result["databases"] == [0, 2]
    assert result["target_keys"] == {"db0": 1201, "db2": 60}
    assert result["keys_copied"] >= 1261  # SCAN may return a key twice; RESTORE REPLACE makes that harmless
    for db in (0, 2):
        assert _types(tgt.client(db)) == TYPES
    s, t = src.client(), tgt.client()
    for key in s.scan_iter(count=500):
        ttl_s, ttl_t = s.pttl(key), t.pttl(key)
        assert (ttl_s < 0) == (ttl_t < 0), key
        assert abs(ttl_s - ttl_t) < 3000, (key, ttl_s, ttl_t)
    assert t.ttl("persistent") == -1 and t.ttl("k:0:0") > 900
    verify = run_module(redis_migrate, {"mode": "verify", "source": src.conn(), "target": tgt.conn()}, capsys)
    assert verify["verified"] is True and verify["checked_keys"] == 1261, verify
    # done according to the ledger: a new run copies nothing
    again = run_module(redis_migrate, args, capsys)
    assert again["changed"] is False and "already done" in again["msg"]
    entry = json.loads(pathlib.Path(ledger).read_text())["entries"][-1]
    assert entry["step"] == "redis/dump" and entry["status"] == "done"
    assert entry["data"]["keys_copied"] == result["keys_copied"]


def test_dump_refuses_a_non_empty_target_and_check_mode_copies_nothing(servers, capsys):
    src = servers()
    tgt = servers()
    load_all_types(src.client(), 30)
    checked = run_module(redis_migrate, {"mode": "dump", "source": src.conn(), "target": tgt.conn()}, capsys,
                         check_mode=True)
    assert checked["changed"] is True and "would copy about 30 keys" in checked["msg"]
    assert tgt.client().dbsize() == 0
    tgt.client().set("x", "1")
    refused = run_module(redis_migrate, {"mode": "dump", "source": src.conn(), "target": tgt.conn()}, capsys)
    assert refused["failed"] and "overwrite_target" in refused["msg"]


def test_rdb_backup_has_sha256_and_loads_into_a_fresh_server(servers, capsys, tmp_path):
    src = servers(password="pw")
    load_all_types(src.client(), 600)
    dest = str(tmp_path / "backup.rdb")
    result = run_module(redis_migrate, {"mode": "rdb", "source": src.conn(), "dest": dest}, capsys)
    assert not result.get("failed"), result
    data = pathlib.Path(dest).read_bytes()
    assert data.startswith(b"REDIS") and len(data) == result["size_bytes"]
    assert hashlib.sha256(data).hexdigest() == result["sha256"]
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"
    assert result["keys_total"] == 600 and result["keys"] == {"db0": 600}
    again = run_module(redis_migrate, {"mode": "rdb", "source": src.conn(), "dest": dest}, capsys)
    assert again["changed"] is False and again["sha256"] == result["sha256"]
    restored = MigrateRedis()
    shutil.copy(dest, os.path.join(restored.dir, "dump.rdb"))
    restored.extra += ["--dbfilename", "dump.rdb"]
    try:
        restored.start()
        assert restored.client().dbsize() == 600
        assert _types(restored.client()) == TYPES
    finally:
        restored.cleanup()
    bad = run_module(redis_migrate, {"mode": "rdb", "source": {**src.conn(), "password": "nope"},
                                     "dest": str(tmp_path / "x.rdb"), "force": True}, capsys)
    assert bad["failed"] and "authentication failed" in bad["msg"] and not os.path.exists(tmp_path / "x.rdb")


def test_verify_reports_each_kind_of_difference(servers, capsys):
    src = servers()
    tgt = servers()
    load_all_types(src.client(), 120)
    ep_s = _redis_client.Endpoint.from_params("source", src.conn())
    ep_t = _redis_client.Endpoint.from_params("target", tgt.conn())
    _redis_copy.dump_copy(ep_s, ep_t)
    t = tgt.client()
    t.set("k:0:6", "changed", keepttl=True)  # value
    t.delete("k:1:7")  # missing
    t.expire("k:2:8", 5000)  # ttl (was none)
    t.delete("k:3:9")
    t.set("k:3:9", "now a string")  # type
    t.zadd("k:4:10", {"z0": 99})  # zset score
    args = {"mode": "verify", "source": src.conn(), "target": tgt.conn(), "max_differences": 10}
    result = run_module(redis_migrate, args, capsys)
    assert result["failed"] and result["verified"] is False
    problems = {d["key"]: d["problem"] for d in result["differences"]}
    assert problems["k:0:6"] == "value differs"
    assert problems["k:1:7"] == "missing on target"
    assert problems["k:2:8"].startswith("ttl -1 ms on source")
    assert problems["k:3:9"] == "type set on source, string on target"
    assert problems["k:4:10"] == "value differs"
    assert problems[None] == "key count 120 on source, 119 on target"
    assert result["differing_keys"] == 5
    sampled = run_module(redis_migrate, {**args, "sample": 30, "fail_on_difference": False}, capsys)
    assert not sampled.get("failed") and sampled["method"] == "sample" and 0 < sampled["checked_keys"] <= 30


def test_verify_reports_the_longest_server_block_per_batch(servers, capsys):
    """longest_block_ms bounds what the servers themselves measured for each verify script (SLOWLOG)."""
    src = servers()
    tgt = servers()
    load_all_types(src.client(), 600)
    _redis_copy.dump_copy(_redis_client.Endpoint.from_params("source", src.conn()),
                          _redis_client.Endpoint.from_params("target", tgt.conn()))
    for srv in (src, tgt):
        srv.client().config_set("slowlog-log-slower-than", 0)
        srv.client().config_set("slowlog-max-len", 10000)
        srv.client().slowlog_reset()
    result = run_module(redis_migrate, {"mode": "verify", "source": src.conn(), "target": tgt.conn(),
                                        "batch_size": 150}, capsys)
    assert result["verified"] is True and result["batch_size"] == 150, result
    assert set(result["block_ms"]) == {"source", "target"}
    assert result["longest_block_ms"] == max(result["block_ms"].values()) > 0
    for label, srv in (("source", src), ("target", tgt)):
        scripts = [e for e in srv.client().slowlog_get(10000)
                   if e["command"].split(b" ")[0].upper() in (b"EVAL_RO", b"EVAL")]
        assert len(scripts) >= 4  # 600 keys in batches of 150: at least 4 scripts per server
        longest_us = max(e["duration"] for e in scripts)
        assert longest_us / 1000 <= result["block_ms"][label]
