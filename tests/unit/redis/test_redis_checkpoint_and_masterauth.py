"""Unit tests: a dump checkpoint resumes only the copy it belongs to; masterauth does not outlive the cutover."""

from __future__ import annotations

import json

import pytest
from test_redis_migrate_unit import SRC, TGT, Clock, FakeServer, _patch_connect

from ansible_collections.sophia.migrate.plugins.module_utils import _redis_client, _redis_copy, _redis_replicate

SOURCE = {"address": "10.0.0.1:6379", "run_id": "a" * 40, "master_replid": "b" * 40}
TARGET = {"address": "10.0.0.2:6380", "run_id": "c" * 40, "master_replid": "d" * 40}
GOOD = {"db": 0, "cursor": 448, "copied": 300, "skipped": 0, "databases": [0, 2], "run_id": "f" * 32,
        "source": SOURCE, "target": TARGET}


def test_a_checkpoint_of_this_copy_matches():
    assert _redis_copy.checkpoint_mismatches(GOOD, SOURCE, TARGET, [0, 2]) == []


@pytest.mark.parametrize(("checkpoint", "expected"), [
    # the stale checkpoint: no servers named, so it cannot stand for this copy
    ({"db": 0, "cursor": 0}, "does not record copied, run_id, databases, source, target"),
    ({**GOOD, "target": {**TARGET, "address": "10.0.0.9:6380"}},
     "target address is '10.0.0.2:6380', the checkpoint's '10.0.0.9:6380'"),
    ({**GOOD, "target": {**TARGET, "run_id": "e" * 40}}, "target run_id is 'cccc"),
    ({**GOOD, "source": {**SOURCE, "run_id": "e" * 40}}, "the server restarted, or it is another server"),
    ({**GOOD, "source": {**SOURCE, "master_replid": "e" * 40}}, "source master_replid is 'bbbb"),
    ({**GOOD, "databases": [0]}, "it covers databases [0], this run [0, 2] (option databases)"),
    ({**GOOD, "db": 5}, "its database 5 is not among [0, 2]"),
    ({**GOOD, "cursor": "x"}, "its cursor 'x' is not a non-negative integer"),
    ({**GOOD, "copied": -1}, "its copied -1 is not a non-negative integer"),
    ({**GOOD, "source": "10.0.0.1:6379"}, "its source '10.0.0.1:6379' is not a server identity"),
    ([1, 2], "it is not a checkpoint of this module (list)"),
])
def test_a_checkpoint_of_another_copy_is_refused_naming_the_mismatch(checkpoint, expected):
    problems = _redis_copy.checkpoint_mismatches(checkpoint, SOURCE, TARGET, [0, 2])
    assert any(expected in p for p in problems), problems


def test_every_mismatch_is_listed():
    stale = {**GOOD, "source": {**SOURCE, "address": "10.9.9.9:6379"}, "target": {**TARGET, "run_id": "0"}}
    problems = _redis_copy.checkpoint_mismatches(stale, SOURCE, TARGET, [0, 2])
    assert len(problems) == 2 and problems[0].startswith("source address") and problems[1].startswith("target run_id")


def _cutover(monkeypatch, src: FakeServer, tgt: FakeServer, **opts):
    tgt.upstream = src
    _patch_connect(monkeypatch, src, tgt)
    clock = Clock()
    return _redis_replicate.replicate(SRC, TGT, _redis_replicate.ReplicateOptions(cutover=True, **opts), clock=clock,
                                      sleep=clock.sleep)


def test_masterauth_the_user_configured_on_the_target_is_put_back_after_the_cutover(monkeypatch):
    src, tgt = FakeServer(offset=10), FakeServer()
    tgt.config["masterauth"] = "configured-by-the-user"
    result = _cutover(monkeypatch, src, tgt)
    assert tgt.config["masterauth"] == "configured-by-the-user"
    assert result["masterauth"]["target"] == {"masterauth": "restored"}
    assert "configured-by-the-user" not in json.dumps(result) and '"x"' not in json.dumps(result)


def test_masterauth_already_equal_to_the_source_password_was_the_users_and_is_kept(monkeypatch):
    src, tgt = FakeServer(offset=10), FakeServer()
    tgt.config["masterauth"] = "x"  # SRC's password, configured before the migration
    result = _cutover(monkeypatch, src, tgt)
    assert tgt.config["masterauth"] == "x" and result["masterauth"]["target"] == {"masterauth": "kept"}


def test_masterauth_set_by_an_earlier_run_is_cleared_at_the_cutover(monkeypatch):
    src, tgt = FakeServer(offset=10), FakeServer(role="slave")
    tgt.master, tgt.config["masterauth"] = ("10.0.0.1", 6379), "x"  # replication started by an earlier run
    result = _cutover(monkeypatch, src, tgt)
    assert result["state_before"] == "replicating"
    assert tgt.config["masterauth"] == "" and result["masterauth"]["target"] == {"masterauth": "cleared"}


def test_without_the_way_back_the_old_source_gets_its_own_masterauth_back(monkeypatch):
    src, tgt = FakeServer(offset=10), FakeServer()
    src.config["masterauth"] = "source-own"
    result = _cutover(monkeypatch, src, tgt, way_back=False, cutover_method="pause")
    assert src.role == "master" and src.config["masterauth"] == "source-own"
    assert tgt.config["masterauth"] == ""
    assert result["masterauth"] == {"target": {"masterauth": "cleared"}, "source": {}}


def test_a_failed_cutover_leaves_the_source_without_the_targets_password(monkeypatch):
    src, tgt = FakeServer(offset=900), FakeServer(role="slave", offset=100, follows=False)
    tgt.master, tgt.link = ("10.0.0.1", 6379), "up"
    clock = Clock()
    with pytest.raises(_redis_client.RedisMigrateError, match="nothing was promoted"):
        _redis_replicate.cutover(SRC, src, TGT, tgt,
                                 _redis_replicate.ReplicateOptions(cutover_timeout=2, cutover_method="pause"),
                                 ("10.0.0.2", 6380), clock, clock.sleep)
    assert src.role == "master" and src.config["masterauth"] == ""
