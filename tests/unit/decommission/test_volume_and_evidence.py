"""Volume backups (tar.gz + sha256 + manifest) and the decommission evidence filter."""

from __future__ import annotations

import hashlib
import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sophia.migrate.plugins.filter.evidence import missing_evidence
from ansible_collections.sophia.migrate.plugins.module_utils import _volume
from ansible_collections.sophia.migrate.plugins.modules import volume_backup
from support.modules import run_module


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "src"
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.txt").write_text("top")
    (root / "a" / "b" / "deep.bin").write_bytes(os.urandom(300_000))
    os.chmod(root / "top.txt", 0o640)
    os.symlink("top.txt", root / "link")
    return root


def test_backup_restore_roundtrip_keeps_manifest(tree, tmp_path):
    out = _volume.backup(str(tree), str(tmp_path / "b.tar.gz"))
    assert out["changed"] and out["files"] == 3
    with open(tmp_path / "b.tar.gz", "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == out["sha256"]
    restored = _volume.restore(str(tmp_path / "b.tar.gz"), str(tmp_path / "dst"), out["sha256"])
    assert restored["manifest_sha256"] == out["manifest_sha256"]
    assert oct(os.stat(tmp_path / "dst" / "top.txt").st_mode & 0o777) == "0o640"


def test_existing_backup_reused_or_protected(tree, tmp_path):
    dest = str(tmp_path / "b.tar.gz")
    first = _volume.backup(str(tree), dest)
    again = _volume.backup(str(tree), dest, expected_sha256=first["sha256"])
    assert again["reused"] and not again["changed"]
    with pytest.raises(_volume.VolumeError, match="refusing to overwrite a backup"):
        _volume.backup(str(tree), dest, expected_sha256="0" * 64)


def test_corrupt_archive_is_not_restored(tree, tmp_path):
    dest = tmp_path / "b.tar.gz"
    out = _volume.backup(str(tree), str(dest))
    data = bytearray(dest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    with pytest.raises(_volume.VolumeError, match="differs from the recorded"):
        _volume.restore(str(dest), str(tmp_path / "dst"), out["sha256"])
    assert not (tmp_path / "dst").exists()


def test_restore_refuses_non_empty_target(tree, tmp_path):
    out = _volume.backup(str(tree), str(tmp_path / "b.tar.gz"))
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep").write_text("precious")
    with pytest.raises(_volume.VolumeError, match="not empty"):
        _volume.restore(str(tmp_path / "b.tar.gz"), str(tmp_path / "dst"), out["sha256"])
    assert (tmp_path / "dst" / "keep").read_text() == "precious"


def test_module_check_mode_and_ledger(tree, tmp_path, capsys):
    args = {"source": str(tree), "dest": str(tmp_path / "b.tar.gz"), "ledger_path": str(tmp_path / "l.json"),
            "ledger_step": "backup/volume/x"}
    res = run_module(volume_backup, args, capsys, check_mode=True)
    assert res["changed"] and not os.path.exists(tmp_path / "b.tar.gz") and not os.path.exists(tmp_path / "l.json")
    res = run_module(volume_backup, args, capsys)
    assert res["changed"] and res["sha256"]
    res2 = run_module(volume_backup, args, capsys)
    assert not res2["changed"] and res2["sha256"] == res["sha256"]
    res = run_module(volume_backup, {"source": str(tmp_path / "nope"), "dest": str(tmp_path / "c.tar.gz")}, capsys)
    assert res["failed"] and "not a directory" in res["msg"]


LEDGER = {
    "entries": [
        {"step": "data/redis/cutover", "status": "done"},
        {"step": "data/qdrant/restore", "status": "done"},
        {"step": "data/qdrant/restore", "status": "rolled_back"},
    ],
    "state": {"traffic/www": 100, "traffic/api": 25},
}


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ({"name": "edge", "traffic_key": "traffic/www"}, []),
        ({"name": "api", "traffic_key": "traffic/api"}, ["traffic 'traffic/api' is at 25% on the new side, not 100%"]),
        ({"name": "x", "traffic_key": "traffic/none"}, ["no traffic record 'traffic/none' in the ledger "
                                                        "(traffic_shift has not moved this route)"]),
        ({"name": "redis", "data_steps": ["data/redis/cutover"]}, []),
        ({"name": "qdrant", "data_steps": ["data/qdrant/restore"]},
         ["data step 'data/qdrant/restore' is 'rolled_back', not 'done'"]),
        ({"name": "q2", "data_steps": ["data/none"]}, ["data step 'data/none' is not in the ledger"]),
    ],
)
def test_missing_evidence(service, expected):
    assert missing_evidence(LEDGER, [service]) == {service["name"]: expected}


def test_missing_evidence_bad_input():
    with pytest.raises(AnsibleFilterError, match="must be a ledger document"):
        missing_evidence({"x": 1}, [])
    with pytest.raises(AnsibleFilterError, match=r"services\[0\] needs a 'name'"):
        missing_evidence(LEDGER, [{"traffic_key": "a"}])
