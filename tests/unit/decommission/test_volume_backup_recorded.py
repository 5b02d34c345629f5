"""volume_backup takes the recorded backup as data (option ``recorded``) and returns what to record (``record``).

The migration ledger is on the controller while the module runs on the Compose host: the role reads the
ledger on the controller, passes the step's data in, and writes the returned record there. These tests
prove the module decides only from what it is given, and never reads or writes a ledger file itself.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from ansible.module_utils import _internal as module_internal

from ansible_collections.sophia.migrate.plugins.module_utils import _volume
from ansible_collections.sophia.migrate.plugins.modules import volume_backup
from support.modules import run_module


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("first version\n")
    (root / "sub" / "blob").write_bytes(os.urandom(100_000))
    return root


def sha256(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def files_under(root) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _dirs, fs in os.walk(root) for f in fs}


def backup(tree, tmp_path, capsys, recorded, **extra):
    args = {"source": str(tree), "dest": str(tmp_path / "b" / "vol.tar.gz"), "recorded": recorded, **extra}
    return run_module(volume_backup, args, capsys)


def verified(tree, capsys, recorded, **extra):
    return run_module(volume_backup, {"source": str(tree), "state": "verified", "recorded": recorded, **extra}, capsys)


def test_first_backup_returns_the_record_and_writes_no_ledger(tree, tmp_path, capsys):
    before = files_under(tmp_path)
    first = backup(tree, tmp_path, capsys, {})
    assert first["changed"] and not first["reused"]
    assert first["record"] == {"path": first["path"], "size": os.path.getsize(first["path"]),
                               "sha256": sha256(first["path"]), "manifest_sha256": _volume.tree_digest(str(tree))[0],
                               "source": str(tree)}
    # only the archive and its sidecar appeared: no ledger file (nor its lock) on the host the module ran on
    assert files_under(tmp_path) - before == {"b/vol.tar.gz", "b/vol.tar.gz.manifest.json"}
    assert "deprecations" not in first


def test_recorded_backup_is_reused_for_the_same_content(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    again = backup(tree, tmp_path, capsys, first["record"])
    assert not again["changed"] and again["reused"] and again["path"] == first["path"]
    assert again["record"] == first["record"]  # recording it again is no change
    assert files_under(tmp_path / "b") == {"vol.tar.gz", "vol.tar.gz.manifest.json"}


def test_changed_content_gets_a_new_archive_and_a_new_record(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    (tree / "sub" / "new.txt").write_text("written after a rollback\n")
    second = backup(tree, tmp_path, capsys, first["record"])
    assert second["changed"] and not second["reused"] and second["path"] != first["path"]
    assert second["superseded"] == [first["path"]] and sha256(first["path"]) == first["sha256"]
    assert second["record"]["path"] == second["path"] and second["record"]["sha256"] == sha256(second["path"])
    assert second["record"]["manifest_sha256"] == _volume.tree_digest(str(tree))[0] != first["manifest_sha256"]


def test_a_recorded_archive_that_changed_is_never_overwritten(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    with open(first["path"], "ab") as handle:
        handle.write(b"tampered")
    res = backup(tree, tmp_path, capsys, first["record"])
    assert res["failed"] and f"differs from the recorded {first['sha256']}" in res["msg"]
    assert "refusing to overwrite a backup" in res["msg"]


def test_reuse_recorded_keeps_the_snapshot_and_its_recorded_digest(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {}, reuse="recorded")
    os.unlink(first["path"] + ".manifest.json")  # the record, not the sidecar, carries the content digest
    (tree / "a.txt").write_text("the writers go on\n")
    again = backup(tree, tmp_path, capsys, first["record"], reuse="recorded")
    assert again["reused"] and not again["changed"] and again["record"] == first["record"]


def test_verified_passes_on_the_record_of_an_intact_current_backup(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    res = verified(tree, capsys, first["record"])
    assert not res.get("failed"), res
    assert res["verified"] and not res["changed"] and res["path"] == first["path"]
    assert res["manifest_sha256"] == first["manifest_sha256"]


def test_verified_refuses_when_no_backup_is_recorded(tree, capsys):
    res = verified(tree, capsys, {})
    assert res["failed"]
    assert res["msg"] == (f"volume_backup: directory {tree}: no backup is recorded (option 'recorded' is empty); "
                          "it is not safe to delete")
    res = run_module(volume_backup, {"source": str(tree), "state": "verified"}, capsys)
    assert res["failed"] and "'dest' is required with state=verified (or 'recorded'" in res["msg"]


def test_verified_refuses_a_missing_archive(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    os.unlink(first["path"])
    res = verified(tree, capsys, first["record"])
    assert res["failed"]
    assert res["msg"] == (f"volume_backup: directory {tree} is not safe to delete: the backup {first['path']} "
                          "does not exist")


def test_verified_refuses_a_tampered_archive(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    with open(first["path"], "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    with open(first["path"], "wb") as handle:
        handle.write(bytes(data))
    res = verified(tree, capsys, first["record"])
    assert res["failed"] and f"the backup {first['path']} was modified" in res["msg"]
    assert first["sha256"] in res["msg"]


def test_verified_refuses_a_stale_archive(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    (tree / "sub" / "new.txt").write_text("written after the backup\n")
    res = verified(tree, capsys, first["record"])
    assert res["failed"] and f"the backup {first['path']} is stale" in res["msg"]
    assert first["manifest_sha256"] in res["msg"]


def test_verified_trusts_the_record_over_a_rewritten_sidecar(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    (tree / "a.txt").write_text("newer\n")
    sidecar = first["path"] + ".manifest.json"
    with open(sidecar) as handle:
        side = json.load(handle)
    side["manifest_sha256"] = _volume.tree_digest(str(tree))[0]  # claims the newer content
    with open(sidecar, "w") as handle:
        json.dump(side, handle)
    res = verified(tree, capsys, first["record"])
    assert res["failed"] and "records content digest" in res["msg"]
    assert f"not the recorded {first['manifest_sha256']}" in res["msg"]


def test_verified_refuses_a_record_of_another_archive_or_sha256(tree, tmp_path, capsys):
    first = backup(tree, tmp_path, capsys, {})
    res = verified(tree, capsys, first["record"], dest=str(tmp_path / "other.tar.gz"))
    other = tmp_path / "other.tar.gz"
    assert res["failed"] and f"the ledger records the backup {first['path']}, not {other}" in res["msg"]
    res = verified(tree, capsys, first["record"], expected_sha256="0" * 64)
    assert res["failed"] and f"expected_sha256 {'0' * 64} differs from the recorded {first['sha256']}" in res["msg"]


@pytest.mark.parametrize(
    ("recorded", "problem"),
    [
        ({"path": "/b/vol.tar.gz"}, "'sha256' must be 64 lowercase hex digits"),
        ({"sha256": "a" * 64}, "'path' must be the archive's path"),
        ({"path": "/b/vol.tar.gz", "sha256": "not-a-digest"}, "'sha256' must be 64 lowercase hex digits"),
        ({"path": "/b/vol.tar.gz", "sha256": "a" * 64, "manifest_sha256": 5}, "'manifest_sha256' must be 64"),
    ],
)
@pytest.mark.parametrize("state", ["present", "verified"])
def test_a_malformed_record_is_a_clean_error(tree, tmp_path, capsys, recorded, problem, state):
    res = backup(tree, tmp_path, capsys, recorded, state=state)
    assert res["failed"] and res["msg"].startswith("volume_backup: option 'recorded' (the ledger's record")
    assert problem in res["msg"]
    assert not (tmp_path / "b").exists()


def test_recorded_and_the_deprecated_ledger_file_are_mutually_exclusive(tree, tmp_path, capsys):
    res = backup(tree, tmp_path, capsys, {}, ledger_path=str(tmp_path / "l.json"), ledger_step="backup/volume/vol")
    assert res["failed"] and "mutually exclusive" in res["msg"] and "recorded" in res["msg"]
    assert not (tmp_path / "b").exists() and not (tmp_path / "l.json").exists()


def test_the_ledger_file_options_are_deprecated(tree, tmp_path, capsys, monkeypatch):
    # a module runs on the target, where a deprecation goes into its result (another test of this process may
    # have imported controller code, which would send it to the controller's display instead)
    monkeypatch.setattr(module_internal, "is_controller", False)
    args = {"source": str(tree), "dest": str(tmp_path / "b" / "vol.tar.gz"), "ledger_path": str(tmp_path / "l.json"),
            "ledger_step": "backup/volume/vol"}
    res = run_module(volume_backup, args, capsys)
    assert res["changed"] and res["record"]["sha256"] == res["sha256"]
    [deprecation] = res["deprecations"]
    assert deprecation["version"] == "0.3.0"
    assert "pass the controller ledger's record as 'recorded'" in deprecation["event"]["msg"]
