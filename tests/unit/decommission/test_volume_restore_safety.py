"""Restoring a volume backup never writes outside the target, whatever the archive holds.

Each archive is built by hand in tmp_path (the way a tampered or foreign archive would be); the restore
must refuse it whole, naming the offending member, before anything is written.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _volume
from ansible_collections.sophia.migrate.plugins.modules import volume_backup
from support.modules import run_module


def sha256(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "", mode: int = 0o644,
           uid: int = 0, gid: int = 0, **extra) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.linkname = linkname
    for key, value in extra.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def make_archive(path, members) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return sha256(path)


@pytest.fixture
def layout(tmp_path):
    """dest = <tmp>/data; a sibling <tmp>/data2 and <tmp>/elsewhere that a restore must never touch."""
    (tmp_path / "data2").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "outside.txt").write_text("outside")
    return tmp_path


def outside_untouched(root) -> None:
    assert os.listdir(root / "data2") == []
    assert os.listdir(root / "elsewhere") == []
    assert (root / "outside.txt").read_text() == "outside"
    assert os.stat(root / "outside.txt").st_nlink == 1
    assert not (root / "data").exists() or os.listdir(root / "data") == []


def refused(root, members, match):
    archive = root / "evil.tar.gz"
    digest = make_archive(archive, [member("ok.txt", data=b"fine"), *members])
    with pytest.raises(_volume.VolumeError, match=match) as err:
        _volume.restore(str(archive), str(root / "data"), digest)
    assert "refusing to restore any of the archive" in str(err.value)
    outside_untouched(root)
    return str(err.value)


def test_dot_dot_into_a_sibling_with_the_same_prefix(layout):
    # the old check compared '<tmp>/data2/x'.startswith('<tmp>/data') and let it through
    msg = refused(layout, [member("../data2/x", data=b"evil")], r"member '\.\./data2/x' would be written outside")
    assert str(layout / "data") in msg


def test_dot_dot_in_the_middle(layout):
    refused(layout, [member("sub/../../data2/x", data=b"evil")],
            r"member 'sub/\.\./\.\./data2/x' would be written outside")


def test_absolute_member(layout):
    name = str(layout / "data2" / "x")
    refused(layout, [member(name, data=b"evil")], "has an absolute path")


@pytest.mark.parametrize("target", ["ABS", "../elsewhere"])
def test_symlink_out_then_a_write_through_it(layout, target):
    target = str(layout / "elsewhere") if target == "ABS" else target
    refused(layout, [member("lnk", tarfile.SYMTYPE, linkname=target), member("lnk/file", data=b"evil")],
            r"member 'lnk' is a symbolic link to .*, outside")


def test_symlink_chain_that_only_escapes_once_extracted(layout):
    # 's' -> '.' is inside; 't' -> 's/..' looks inside on an empty target but is the parent once 's' exists
    refused(layout, [member("s", tarfile.SYMTYPE, linkname="."), member("t", tarfile.SYMTYPE, linkname="s/.."),
                     member("u", data=b"x")], r"member 't' is a symbolic link to s/\.\., outside")


def test_write_through_an_inside_symlink_is_refused(layout):
    # even a link that stays inside is never written through: a backup made by volume_backup never does that
    refused(layout, [member("d", tarfile.DIRTYPE, mode=0o755), member("lnk", tarfile.SYMTYPE, linkname="d"),
                     member("lnk/file", data=b"x")], "would be written through the symbolic link 'lnk'")


@pytest.mark.parametrize("linkname", ["../outside.txt", "ABS"])
def test_hard_link_to_outside(layout, linkname):
    linkname = str(layout / "outside.txt") if linkname == "ABS" else linkname
    refused(layout, [member("hl", tarfile.LNKTYPE, linkname=linkname)], r"member 'hl' is a hard link to .*outside")


def test_hard_link_through_a_symlink(layout):
    refused(layout, [member("up", tarfile.SYMTYPE, linkname=str(layout)),
                     member("hl", tarfile.LNKTYPE, linkname="up/outside.txt")], "member 'up' is a symbolic link")


@pytest.mark.parametrize(("kind", "word"), [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
                                            (tarfile.FIFOTYPE, "FIFO")])
def test_device_and_fifo_members(layout, kind, word):
    refused(layout, [member("dev", kind, devmajor=1, devminor=3)], f"member 'dev' is a {word}")


def test_duplicate_member_that_would_replace_a_link(layout):
    refused(layout, [member("x", data=b"a"), member("x", tarfile.SYMTYPE, linkname="ok.txt")],
            "appears more than once")


def test_setuid_setgid_sticky_stripped_owners_and_modes_kept(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    digest = make_archive(archive, [
        member(".", tarfile.DIRTYPE, mode=0o775, uid=1234, gid=2345),
        member("bin", data=b"#!/bin/sh\n", mode=0o6775, uid=1234, gid=2345),
        member("shared", tarfile.DIRTYPE, mode=0o1777),
        member("shared/file", data=b"x", mode=0o664, uid=1234, gid=2345),
        member("shared/hard", tarfile.LNKTYPE, linkname="shared/file", mode=0o664, uid=1234, gid=2345),
        member("rel", tarfile.SYMTYPE, linkname="shared/file"),
    ])
    out = _volume.restore(str(archive), str(tmp_path / "data"), digest)
    assert out["changed"]
    st = os.stat(tmp_path / "data" / "bin")
    assert stat.S_IMODE(st.st_mode) == 0o775  # setuid and setgid gone, group write kept
    assert (st.st_uid, st.st_gid) == (1234, 2345)  # owners kept (the plain 'data' filter would drop them)
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "shared").st_mode) == 0o777  # sticky gone
    assert stat.S_IMODE(os.stat(tmp_path / "data" / "shared" / "file").st_mode) == 0o664
    shared = tmp_path / "data" / "shared"
    assert os.stat(shared / "hard").st_ino == os.stat(shared / "file").st_ino
    assert os.readlink(tmp_path / "data" / "rel") == "shared/file"
    assert (os.stat(tmp_path / "data").st_uid, stat.S_IMODE(os.stat(tmp_path / "data").st_mode)) == (1234, 0o775)


def test_check_mode_refuses_too_and_writes_nothing(layout):
    archive = layout / "evil.tar.gz"
    digest = make_archive(archive, [member("../data2/x", data=b"evil")])
    with pytest.raises(_volume.VolumeError, match="would be written outside"):
        _volume.restore(str(archive), str(layout / "data"), digest, check_mode=True)
    outside_untouched(layout)


def test_non_gzip_file_is_a_clean_error(tmp_path, capsys):
    archive = tmp_path / "plain.tar.gz"
    archive.write_text("this is not a backup\n")
    with pytest.raises(_volume.VolumeError, match="not a complete gzip-compressed archive") as err:
        _volume.restore(str(archive), str(tmp_path / "data"), sha256(archive))
    assert str(archive) in str(err.value)
    assert not (tmp_path / "data").exists()
    res = run_module(volume_backup, {"state": "restored", "source": str(tmp_path / "data"), "dest": str(archive),
                                     "expected_sha256": sha256(archive)}, capsys)
    assert res["failed"] and res["msg"].startswith(f"volume_backup: {archive}: not a complete gzip")


def test_gzip_of_something_else_is_a_clean_error(tmp_path):
    archive = tmp_path / "other.tar.gz"
    archive.write_bytes(gzip.compress(b"no tar header here" * 100))
    with pytest.raises(_volume.VolumeError, match=f"{archive}: not a readable tar archive"):
        _volume.restore(str(archive), str(tmp_path / "data"), sha256(archive))
    assert not (tmp_path / "data").exists()


def test_truncated_gzip_is_a_clean_error_and_nothing_is_written(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(20):
        (src / f"f{i}").write_bytes(os.urandom(50_000))
    out = _volume.backup(str(src), str(tmp_path / "b.tar.gz"))
    data = (tmp_path / "b.tar.gz").read_bytes()
    (tmp_path / "b.tar.gz").write_bytes(data[: len(data) // 2])
    short = sha256(tmp_path / "b.tar.gz")
    assert short != out["sha256"]
    with pytest.raises(_volume.VolumeError, match="not a complete gzip-compressed archive") as err:
        _volume.restore(str(tmp_path / "b.tar.gz"), str(tmp_path / "data"), short)
    assert str(tmp_path / "b.tar.gz") in str(err.value)
    assert not (tmp_path / "data").exists()
