"""The ledger: atomic writes, locking, idempotent records, clear errors on corrupt files."""

from __future__ import annotations

import json
import multiprocessing
import os

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger
from ansible_collections.sophia.migrate.plugins.modules import ledger as ledger_module
from support.modules import run_module


def test_missing_file_is_empty_ledger(tmp_path):
    data = _ledger.load(str(tmp_path / "none.json"))
    assert data["entries"] == [] and data["state"] == {}


def test_record_is_idempotent(tmp_path):
    path = str(tmp_path / "l.json")
    changed, entry = _ledger.record(path, "redis/backup", data={"sha256": "ab"})
    assert changed and entry["seq"] == 1
    changed, entry = _ledger.record(path, "redis/backup", data={"sha256": "ab"})
    assert not changed and entry["seq"] == 1
    changed, _entry = _ledger.record(path, "redis/backup", data={"sha256": "cd"})
    assert changed
    assert len(_ledger.load(path)["entries"]) == 2
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_check_mode_writes_nothing(tmp_path):
    path = str(tmp_path / "l.json")
    changed, _entry = _ledger.record(path, "x", check_mode=True)
    assert changed and not os.path.exists(path)
    assert _ledger.set_state(path, "k", 1, check_mode=True) and not os.path.exists(path)


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "empty"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a ledger"),
        ('{"format": 99, "entries": []}', "newer"),
    ],
)
def test_corrupt_ledger_is_refused_and_kept(tmp_path, content, needle):
    path = tmp_path / "l.json"
    path.write_text(content)
    with pytest.raises(_ledger.LedgerError, match=needle) as err:
        _ledger.record(str(path), "x")
    assert str(path) in str(err.value)
    assert path.read_text() == content  # never overwritten


def test_unknown_status_refused(tmp_path):
    with pytest.raises(_ledger.LedgerError, match="status 'bogus'"):
        _ledger.record(str(tmp_path / "l.json"), "x", status="bogus")


def test_pending_undo_newest_first(tmp_path):
    path = str(tmp_path / "l.json")
    _ledger.record(path, "a", undo={"do": "A"})
    _ledger.record(path, "b", undo={"do": "B"})
    _ledger.record(path, "c")  # nothing to undo
    _ledger.record(path, "a", status="rolled_back", undo={"do": "A"})
    steps = [e["step"] for e in _ledger.pending_undo(_ledger.load(path))]
    assert steps == ["b"]


def _writer(path, n, tag):
    for i in range(n):
        _ledger.record(path, f"{tag}/{i}")


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "l.json")
    procs = [multiprocessing.Process(target=_writer, args=(path, 25, f"w{k}")) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    with open(path) as handle:
        data = json.load(handle)
    assert len(data["entries"]) == 100
    assert sorted(e["seq"] for e in data["entries"]) == list(range(1, 101))


def test_state_roundtrip(tmp_path):
    path = str(tmp_path / "l.json")
    assert _ledger.set_state(path, "traffic/www", 25)
    assert not _ledger.set_state(path, "traffic/www", 25)
    assert _ledger.get_state(path, "traffic/www") == 25


def test_module_record_read_and_errors(tmp_path, capsys):
    path = str(tmp_path / "l.json")
    res = run_module(ledger_module, {"path": path, "step": "s1", "undo": {"x": 1}}, capsys)
    assert res["changed"] and res["entry"]["step"] == "s1"
    res = run_module(ledger_module, {"path": path, "step": "s1", "undo": {"x": 1}}, capsys)
    assert not res["changed"]
    res = run_module(ledger_module, {"path": path, "operation": "read", "step": "s1"}, capsys)
    assert res["entry"]["status"] == "done" and res["undo"][0]["step"] == "s1"
    res = run_module(ledger_module, {"path": path}, capsys)
    assert res["failed"] and "option 'step' is required" in res["msg"]
    (tmp_path / "bad.json").write_text("{")
    res = run_module(ledger_module, {"path": str(tmp_path / "bad.json"), "step": "s"}, capsys)
    assert res["failed"] and "bad.json" in res["msg"] and "refusing to overwrite" in res["msg"]


def test_module_check_mode(tmp_path, capsys):
    path = str(tmp_path / "l.json")
    res = run_module(ledger_module, {"path": path, "operation": "set_state", "key": "k", "value": 3}, capsys,
                     check_mode=True)
    assert res["changed"] and not os.path.exists(path)
