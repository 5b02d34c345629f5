"""_files: atomic, private writes under a random temporary name; one sha256 of a file."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _files, _report
from ansible_collections.sophia.migrate.plugins.modules import compose_to_k8s


def _listing(directory):
    return sorted(os.listdir(directory))


def test_text_bytes_and_writer(tmp_path):
    dest = tmp_path / "out"
    _files.atomic_write(str(dest), "héllo\n")
    assert dest.read_bytes() == "héllo\n".encode()
    _files.atomic_write(str(dest), b"\x00\x01")
    assert dest.read_bytes() == b"\x00\x01"
    _files.atomic_write(str(dest), lambda handle: handle.write(b"from a writer"))
    assert dest.read_bytes() == b"from a writer"
    assert _listing(tmp_path) == ["out"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_mode_is_set_before_anything_is_written_and_kept(tmp_path, mode):
    dest = tmp_path / "out"
    dest.write_text("old")
    dest.chmod(0o666)  # an existing, too open file does not lend its mode to the new one
    seen = {}

    def writer(handle):
        st = os.fstat(handle.fileno())
        seen["mode"] = stat.S_IMODE(st.st_mode)
        seen["size"] = st.st_size
        seen["names"] = _listing(tmp_path)
        seen["dest"] = dest.read_text()
        handle.write(b"new")

    old_umask = os.umask(0)  # a permissive umask must not matter either
    try:
        _files.atomic_write(str(dest), writer, mode=mode)
    finally:
        os.umask(old_umask)
    assert seen["mode"] == mode and seen["size"] == 0
    assert seen["dest"] == "old"  # nothing renamed before the data is complete
    assert stat.S_IMODE(os.stat(dest).st_mode) == mode and dest.read_text() == "new"


def test_temporary_name_is_random_and_in_the_same_directory(tmp_path):
    names = []

    def writer(handle):
        names.append(os.path.basename(handle.name))
        assert os.path.dirname(handle.name) == str(tmp_path)
        assert set(_listing(tmp_path)) - {"ledger.json"} == {names[-1]}

    for _run in range(2):
        _files.atomic_write(str(tmp_path / "ledger.json"), writer)
    assert names[0] != names[1]
    assert all(n.startswith(".ledger.json.") and n not in {".ledger.json.tmp", "ledger.json.tmp"} for n in names)


def test_planted_tmp_symlink_is_neither_followed_nor_touched(tmp_path):
    """A link at the old fixed temporary name pointing at another file: that file keeps its content."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    dest = tmp_path / "out.md"
    for planted in ("out.md.tmp", ".out.md.tmp", f"out.md.tmp{os.getpid()}"):
        (tmp_path / planted).symlink_to(victim)
    _files.atomic_write(str(dest), "report")
    assert victim.read_text() == "precious"
    assert dest.read_text() == "report" and not dest.is_symlink()
    for planted in ("out.md.tmp", ".out.md.tmp", f"out.md.tmp{os.getpid()}"):
        assert os.readlink(tmp_path / planted) == str(victim)


def test_report_markdown_does_not_write_through_a_planted_tmp_symlink(tmp_path):
    """The report wrote its Markdown to the fixed name <phase>.md.tmp, following a link planted there."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    run_dir = tmp_path / "reports" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "p.md.tmp").symlink_to(victim)
    out = _report.write_report(str(tmp_path / "reports"), "r1", "p", "lab", "", [{"name": "s", "outcome": "ran"}],
                               [], [])
    assert victim.read_text() == "precious"
    assert os.readlink(run_dir / "p.md.tmp") == str(victim)
    assert "| s | ran |" in Path(out["paths"]["markdown"]).read_text(encoding="utf-8")
    for path in out["paths"].values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_no_temporary_file_is_left_after_an_error(tmp_path):
    dest = tmp_path / "out"
    dest.write_text("old")

    def writer(handle):
        handle.write(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _files.atomic_write(str(dest), writer)
    assert _listing(tmp_path) == ["out"] and dest.read_text() == "old"
    with pytest.raises(ValueError), _files.atomic_open(str(tmp_path / "new")) as handle:
        handle.write(b"x")
        raise ValueError
    assert _listing(tmp_path) == ["out"]


def test_error_on_rename_leaves_no_temporary_file(tmp_path):
    (tmp_path / "target").mkdir()  # a directory cannot be replaced by a file
    with pytest.raises(IsADirectoryError):
        _files.atomic_write(str(tmp_path / "target"), "x")
    assert _listing(tmp_path) == ["target"]


def test_file_and_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        st = os.fstat(fd)
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    dest = tmp_path / "out"
    _files.atomic_write(str(dest), "data")
    assert ("file", os.stat(dest).st_ino) in synced
    assert ("dir", os.stat(tmp_path).st_ino) in synced
    assert [kind for kind, _ino in synced] == ["file", "dir"]  # the file before the rename, the directory after


def test_symlink_at_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    dest = tmp_path / "ledger.json"
    dest.symlink_to(victim)
    _files.atomic_write(str(dest), "new")
    assert victim.read_text() == "precious"
    assert not dest.is_symlink() and dest.read_text() == "new"
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_symlink_at_target_is_refused_when_asked(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    dest = tmp_path / "out"
    dest.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link") as info:
        _files.atomic_write(str(dest), "new", refuse_symlink=True)
    assert info.value.filename == str(dest)
    assert dest.is_symlink() and victim.read_text() == "precious"
    assert _listing(tmp_path) == ["out", "victim"]


def test_streaming_exposes_the_temporary_path_and_raw_descriptor(tmp_path):
    dest = tmp_path / "snap.part-test"
    with _files.atomic_open(str(dest), 0o600, suffix=".part", buffering=0) as handle:
        os.write(handle.fileno(), b"abc")
        assert handle.name.endswith(".part") and os.path.basename(handle.name).startswith(".snap.part-test.")
        assert Path(handle.name).read_bytes() == b"abc" and not dest.exists()
    assert dest.read_bytes() == b"abc" and _listing(tmp_path) == ["snap.part-test"]


def test_missing_directory_is_a_clean_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        _files.atomic_write(str(tmp_path / "nope" / "out"), "x")
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 65536 + 5])
def test_sha256_file(tmp_path, size):
    path = tmp_path / "f"
    data = os.urandom(size)
    path.write_bytes(data)
    assert _files.sha256_file(str(path), 65536) == hashlib.sha256(data).hexdigest()
    assert _files.sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_compose_manifest_does_not_write_through_a_planted_tmp_symlink(tmp_path):
    """compose_to_k8s wrote manifests through <file>.tmp<pid> opened with O_TRUNC and without O_EXCL."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    dest = tmp_path / "deployment.yaml"
    (tmp_path / f"deployment.yaml.tmp{os.getpid()}").symlink_to(victim)
    compose_to_k8s._write(str(dest), "kind: Deployment\n")
    assert victim.read_text() == "precious"
    assert dest.read_text() == "kind: Deployment\n" and stat.S_IMODE(os.stat(dest).st_mode) == 0o600
