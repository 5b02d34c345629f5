"""Against real redis-server: a stale dump checkpoint never bypasses overwrite_target, and the replication
credential (masterauth) does not stay on a server that no longer replicates."""

from __future__ import annotations

import json
import os
import pathlib
import time

import pytest
from redis_migrate_support import load_all_types

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger, _redis_client, _redis_copy
from ansible_collections.sophia.migrate.plugins.modules import redis_migrate
from support.modules import run_module

pytestmark = pytest.mark.slow


def _dump_args(src, tgt, ledger: str) -> dict:
    return {"mode": "dump", "source": src.conn(), "target": tgt.conn(), "batch_size": 50,
            "ledger_path": ledger, "ledger_step": "redis/dump"}


def test_a_stale_checkpoint_does_not_overwrite_a_non_empty_target(servers, capsys, tmp_path):
    src = servers()
    tgt = servers()
    load_all_types(src.client(), 60)
    tgt.client().set("precious", "kept")
    tgt.client().set("k:0:0", "the target's own value")  # a key the copy would replace
    ledger = str(tmp_path / "ledger.json")
    _ledger.set_state(ledger, "redis/dump", {"db": 0, "cursor": 0})  # the checkpoint of the issue
    refused = run_module(redis_migrate, _dump_args(src, tgt, ledger), capsys)
    assert refused["failed"], refused
    assert f"ledger {ledger}, state key 'redis/dump'" in refused["msg"]
    assert "does not record" in refused["msg"] and "value=null" in refused["msg"]
    assert tgt.client().dbsize() == 2 and tgt.client().get("k:0:0") == b"the target's own value"
    # check mode refuses the same way
    checked = run_module(redis_migrate, _dump_args(src, tgt, ledger), capsys, check_mode=True)
    assert checked["failed"] and "does not belong to this copy" in checked["msg"]
    # once the user removes the checkpoint, the copy is the usual one: a non-empty target is refused
    _ledger.set_state(ledger, "redis/dump", None)
    again = run_module(redis_migrate, _dump_args(src, tgt, ledger), capsys)
    assert again["failed"] and "overwrite_target" in again["msg"] and tgt.client().dbsize() == 2


def test_a_checkpoint_resumes_only_the_copy_that_wrote_it(servers, capsys, tmp_path):
    src = servers(password="source-password")
    tgt = servers(password="target-password")
    other = servers(password="target-password")
    load_all_types(src.client(), 600)
    ledger = str(tmp_path / "ledger.json")
    ep_s = _redis_client.Endpoint.from_params("source", src.conn())
    ep_t = _redis_client.Endpoint.from_params("target", tgt.conn())
    first = _redis_copy.dump_copy(ep_s, ep_t, batch_size=50, ledger_path=ledger, stop_after_batches=2)
    assert first["interrupted"] is True
    # the checkpoint names both servers and the run, in a ledger only its owner can read
    assert oct(os.stat(ledger).st_mode & 0o777) == "0o600"
    saved = json.loads(pathlib.Path(ledger).read_text())["state"]["redis/dump"]
    assert saved["source"]["address"] == f"127.0.0.1:{src.port}"
    assert saved["target"]["address"] == f"127.0.0.1:{tgt.port}"
    assert saved["source"]["run_id"] == src.client().info("server")["run_id"]
    assert saved["target"]["master_replid"] == tgt.client().info("replication")["master_replid"]
    assert saved["run_id"] == first["run_id"] and saved["databases"] == [0]
    # another (empty) target: the checkpoint is not its own
    elsewhere = run_module(redis_migrate, _dump_args(src, other, ledger), capsys)
    assert elsewhere["failed"] and f"target address is '127.0.0.1:{other.port}'" in elsewhere["msg"], elsewhere
    assert other.client().dbsize() == 0
    # the same target restarted without persistence (its copied keys are gone): refused too
    tgt.restart()
    restarted = run_module(redis_migrate, _dump_args(src, tgt, ledger), capsys)
    assert restarted["failed"] and "target run_id is" in restarted["msg"] and "restarted" in restarted["msg"]
    assert "target master_replid is" in restarted["msg"] and tgt.client().dbsize() == 0
    # removed by the user: a new copy from the start, with a new run id
    _ledger.set_state(ledger, "redis/dump", None)
    fresh = run_module(redis_migrate, _dump_args(src, tgt, ledger), capsys)
    assert not fresh.get("failed"), fresh
    assert fresh["resumed_from"] is None and fresh["run_id"] != first["run_id"]
    assert tgt.client().dbsize() == 600
    done = _ledger.find(_ledger.load(ledger), "redis/dump")
    assert done["data"]["target_address"] == f"127.0.0.1:{tgt.port}"
    # a step done for one target is not taken as done for another
    not_here = run_module(redis_migrate, _dump_args(src, other, ledger), capsys)
    assert not_here["failed"] and "use another ledger_step" in not_here["msg"]


def _config(srv, name: str) -> str:
    value = {(k.decode() if isinstance(k, bytes) else k): v for k, v in srv.client().config_get(name).items()}[name]
    return value.decode() if isinstance(value, bytes) else value


def _wait_link(srv, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while srv.client().info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, srv.client().info("replication")
        time.sleep(0.1)


@pytest.mark.parametrize("method", ["auto", "pause"])
def test_masterauth_is_cleared_on_the_new_primary_after_the_cutover(servers, capsys, method):
    src = servers(password="src-secret")
    tgt = servers(password="tgt-secret")
    tgt.client().config_set("masterauth", "")  # no replication credential configured on the target
    src.client().config_set("masterauth", "")
    load_all_types(src.client(), 30)
    base = {"source": src.conn(), "target": tgt.conn(), "sync_timeout": 30, "cutover_timeout": 10,
            "cutover_method": method}
    # replication in one run, the cutover in the next (as the data_migration role does)
    first = run_module(redis_migrate, base, capsys)
    assert first["state_after"] == "replicating", first
    assert _config(tgt, "masterauth") == "src-secret"  # needed while it replicates
    second = run_module(redis_migrate, {**base, "cutover": True}, capsys)
    assert second["state_after"] == "cut_over", second
    assert second["masterauth"] == {"target": {"masterauth": "cleared"}, "source": {"masterauth": "in use"}}
    assert _config(tgt, "masterauth") == ""
    assert _config(src, "masterauth") == "tgt-secret"  # the way back replicates with it
    _wait_link(src)
    out = json.dumps([first, second])
    assert "src-secret" not in out and "tgt-secret" not in out


def test_masterauth_the_user_configured_is_kept(servers, capsys):
    src = servers(password="src-secret")
    tgt = servers(password="tgt-secret")  # started with --masterauth tgt-secret: the user's setting
    result = run_module(redis_migrate, {"source": src.conn(), "target": tgt.conn(), "cutover": True,
                                        "cutover_method": "pause", "way_back": False, "sync_timeout": 30}, capsys)
    assert result["state_after"] == "cut_over", result
    assert _config(tgt, "masterauth") == "tgt-secret"
    assert _config(src, "masterauth") == "src-secret"  # the old source, stand-alone again, as it was
    assert result["masterauth"] == {"target": {"masterauth": "restored"}, "source": {}}
    assert "src-secret" not in json.dumps(result) and "tgt-secret" not in json.dumps(result)
