"""A backup is tied to the content it holds: reused only for that content, and checked before a deletion.

The scenario behind it: a decommission backs a volume up, a rollback starts the writers again, new data
arrives, and a second decommission with remove_data must neither reuse the old archive nor delete the
volume on the strength of it.
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger, _volume
from ansible_collections.sophia.migrate.plugins.modules import tree_compare, volume_backup
from support.modules import run_module


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("first version\n")
    (root / "sub" / "blob").write_bytes(os.urandom(200_000))
    os.symlink("sub", root / "dirlink")  # a symbolic link to a directory is content too
    os.symlink("a.txt", root / "filelink")
    return root


def sha256(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_sidecar_records_the_archive_and_the_content_it_holds(tree, tmp_path, capsys):
    dest = tmp_path / "b" / "vol.tar.gz"
    out = _volume.backup(str(tree), str(dest))
    side = json.loads((tmp_path / "b" / "vol.tar.gz.manifest.json").read_text())
    assert side["sha256"] == out["sha256"] == sha256(dest)
    assert side["manifest_sha256"] == out["manifest_sha256"]
    assert oct(os.stat(tmp_path / "b" / "vol.tar.gz.manifest.json").st_mode & 0o777) == "0o600"
    # the digest is the one tree_compare reports for the tree, and what the archive itself holds
    cmp = run_module(tree_compare, {"source": str(tree), "target": str(tree)}, capsys)
    assert cmp["manifest_sha256_source"] == out["manifest_sha256"]
    assert _volume.manifest_digest(_volume.archive_manifest(str(dest))) == out["manifest_sha256"]
    assert "dirlink" in _volume.manifest(str(tree))


def test_reuse_only_while_the_content_is_unchanged(tree, tmp_path):
    dest = str(tmp_path / "vol.tar.gz")
    first = _volume.backup(str(tree), dest)
    again = _volume.backup(str(tree), dest, expected_sha256=first["sha256"])
    assert again["reused"] and not again["changed"] and again["path"] == dest
    assert again["manifest_sha256"] == first["manifest_sha256"]

    (tree / "a.txt").write_text("newer data written after a rollback\n")
    fresh = _volume.backup(str(tree), dest, expected_sha256=first["sha256"])
    assert not fresh["reused"] and fresh["changed"]
    assert fresh["path"] != dest and fresh["path"].endswith(".tar.gz") and os.path.isfile(fresh["path"])
    assert fresh["superseded"] == [dest]
    assert sha256(dest) == first["sha256"]  # the old archive is kept, unchanged
    assert fresh["manifest_sha256"] == _volume.tree_digest(str(tree))[0] != first["manifest_sha256"]
    assert _volume.manifest_digest(_volume.archive_manifest(fresh["path"])) == fresh["manifest_sha256"]

    # that newer archive is reused from now on; going back to the first content reuses the first archive
    assert _volume.backup(str(tree), dest)["path"] == fresh["path"]
    (tree / "a.txt").write_text("first version\n")
    back = _volume.backup(str(tree), dest)
    assert back["reused"] and back["path"] == dest


def test_archive_without_a_sidecar_is_not_reused(tree, tmp_path):
    dest = tmp_path / "vol.tar.gz"
    first = _volume.backup(str(tree), str(dest))
    os.unlink(str(dest) + ".manifest.json")  # an archive made before sidecars existed proves nothing
    out = _volume.backup(str(tree), str(dest))
    assert not out["reused"] and out["path"] != str(dest) and sha256(dest) == first["sha256"]


def test_tampered_archive_is_never_overwritten(tree, tmp_path):
    dest = tmp_path / "vol.tar.gz"
    first = _volume.backup(str(tree), str(dest))
    dest.write_bytes(dest.read_bytes() + b"x")
    with pytest.raises(_volume.VolumeError, match="refusing to overwrite a backup"):
        _volume.backup(str(tree), str(dest), expected_sha256=first["sha256"])


def test_recorded_reuse_keeps_a_point_in_time_snapshot(tree, tmp_path):
    dest = str(tmp_path / "vol.tar.gz")
    first = _volume.backup(str(tree), dest)
    (tree / "a.txt").write_text("changed\n")
    out = _volume.backup(str(tree), dest, reuse="recorded", recorded={dest: first["sha256"]})
    assert out["reused"] and out["path"] == dest and out["manifest_sha256"] == first["manifest_sha256"]
    with pytest.raises(_volume.VolumeError, match="is stale"):  # but it is no proof before a deletion
        _volume.verify(str(tree), dest, first["sha256"])


def module_args(tree, tmp_path, **extra):
    return {"source": str(tree), "dest": str(tmp_path / "b" / "vol.tar.gz"), "ledger_path": str(tmp_path / "l.json"),
            "ledger_step": "backup/volume/vol", **extra}


def test_module_takes_a_new_backup_of_changed_content_and_records_it(tree, tmp_path, capsys):
    args = module_args(tree, tmp_path)
    first = run_module(volume_backup, args, capsys)
    assert first["changed"] and not first["reused"]
    (tree / "sub" / "new.txt").write_text("written after the rollback\n")
    second = run_module(volume_backup, args, capsys)
    assert second["changed"] and not second["reused"] and second["path"] != first["path"]
    assert second["superseded"] == [first["path"]] and sha256(first["path"]) == first["sha256"]
    entry = _ledger.find(_ledger.load(str(tmp_path / "l.json")), "backup/volume/vol")
    assert entry["data"]["path"] == second["path"] and entry["data"]["sha256"] == second["sha256"]
    assert entry["data"]["manifest_sha256"] == second["manifest_sha256"]
    third = run_module(volume_backup, args, capsys)
    assert not third["changed"] and third["reused"] and third["path"] == second["path"]
    assert len(_ledger.load(str(tmp_path / "l.json"))["entries"]) == 2


def verified(tree, tmp_path, capsys):
    return run_module(volume_backup, {**module_args(tree, tmp_path, state="verified"), "dest": None}, capsys)


def test_verified_passes_for_an_intact_current_backup(tree, tmp_path, capsys):
    made = run_module(volume_backup, module_args(tree, tmp_path), capsys)
    res = verified(tree, tmp_path, capsys)
    assert not res.get("failed"), res
    assert res["verified"] and not res["changed"] and res["path"] == made["path"]
    assert res["manifest_sha256"] == made["manifest_sha256"]


def test_deletion_refused_when_the_archive_is_missing(tree, tmp_path, capsys):
    made = run_module(volume_backup, module_args(tree, tmp_path), capsys)
    os.unlink(made["path"])
    res = verified(tree, tmp_path, capsys)
    assert res["failed"]
    assert res["msg"] == (f"volume_backup: directory {tree} is not safe to delete: the backup {made['path']} "
                          "does not exist")


def test_deletion_refused_when_the_archive_was_tampered_with(tree, tmp_path, capsys):
    made = run_module(volume_backup, module_args(tree, tmp_path), capsys)
    archive = tmp_path / "b" / os.path.basename(made["path"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    res = verified(tree, tmp_path, capsys)
    assert res["failed"] and f"is not safe to delete: the backup {made['path']} was modified" in res["msg"]


def test_deletion_refused_when_the_sidecar_was_rewritten(tree, tmp_path, capsys):
    made = run_module(volume_backup, module_args(tree, tmp_path), capsys)
    (tree / "a.txt").write_text("newer\n")
    sidecar = tmp_path / "b" / (os.path.basename(made["path"]) + ".manifest.json")
    side = json.loads(sidecar.read_text())
    side["manifest_sha256"] = _volume.tree_digest(str(tree))[0]  # claims the newer content
    sidecar.write_text(json.dumps(side))
    res = verified(tree, tmp_path, capsys)
    assert res["failed"] and "records content digest" in res["msg"] and "not the recorded" in res["msg"]


def test_deletion_refused_when_the_backup_is_stale(tree, tmp_path, capsys):
    made = run_module(volume_backup, module_args(tree, tmp_path), capsys)
    (tree / "sub" / "new.txt").write_text("written after the backup\n")
    res = verified(tree, tmp_path, capsys)
    assert res["failed"] and f"the backup {made['path']} is stale" in res["msg"]
    assert made["manifest_sha256"] in res["msg"]


def test_deletion_refused_without_a_recorded_backup(tree, tmp_path, capsys):
    res = verified(tree, tmp_path, capsys)
    assert res["failed"] and "no backup is recorded in ledger step 'backup/volume/vol'" in res["msg"]
    res = run_module(volume_backup, {"source": str(tree), "state": "verified"}, capsys)
    assert res["failed"] and "'dest' is required with state=verified" in res["msg"]
