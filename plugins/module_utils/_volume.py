"""Back up a directory (a Docker named volume's data, a bind mount) to a tar.gz with sha256.

- One pass: the archive is written to a temporary name while its sha256 is computed, then
  fsync'ed and renamed, so a crash never leaves a partial archive under the final name.
- A manifest (sha256 of every regular file, its size and mode) is built in the same walk; it
  is what ``verify`` compares after a restore, and it proves what the archive contains.
- An existing archive whose sha256 matches the recorded one is reused, not rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import tempfile
import typing as t

CHUNK = 1024 * 1024


class VolumeError(Exception):
    pass


class _HashingWriter:
    """A file object that hashes what passes through it."""

    def __init__(self, handle: t.BinaryIO):
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self) -> None:
        self.handle.flush()


def file_sha256(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


def manifest(root: str) -> dict[str, dict[str, t.Any]]:
    """sha256, size and mode of every regular file under ``root``, keyed by relative path."""
    if not os.path.isdir(root):
        raise VolumeError(f"{root}: not a directory")
    out: dict[str, dict[str, t.Any]] = {}
    for current, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(current, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                out[rel] = {"link": os.readlink(path)}
            elif os.path.isfile(path):
                out[rel] = {"sha256": file_sha256(path), "size": st.st_size, "mode": st.st_mode & 0o7777,
                            "uid": st.st_uid, "gid": st.st_gid}
    return out


def manifest_digest(entries: dict[str, dict[str, t.Any]]) -> str:
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()


def backup(source: str, dest: str, expected_sha256: str | None = None, check_mode: bool = False) -> dict[str, t.Any]:
    """Archive ``source`` into ``dest`` (tar.gz). Returns path, size, sha256, files, manifest digest, changed."""
    if not os.path.isdir(source):
        raise VolumeError(f"source {source}: not a directory (is the volume's mountpoint readable here?)")
    if os.path.exists(dest):
        current = file_sha256(dest)
        if expected_sha256 is None or current == expected_sha256:
            return {"path": dest, "size": os.path.getsize(dest), "sha256": current, "changed": False, "reused": True}
        raise VolumeError(f"{dest} exists but its sha256 {current} differs from the recorded {expected_sha256}; "
                          "refusing to overwrite a backup (move it aside)")
    entries = manifest(source)
    result = {"path": dest, "files": len(entries), "manifest_sha256": manifest_digest(entries), "changed": True,
              "reused": False}
    if check_mode:
        return result
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".backup-", suffix=".tar.gz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as raw:
            writer = _HashingWriter(raw)
            with tarfile.open(fileobj=writer, mode="w|gz") as tar:  # type: ignore[call-overload]
                tar.add(source, arcname=".", recursive=True)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    result.update(size=writer.size, sha256=writer.sha.hexdigest())
    # Read it back: the archive on disk must hash to what we wrote and list every file.
    if file_sha256(dest) != result["sha256"]:
        raise VolumeError(f"{dest}: sha256 after writing differs from the one computed while writing")
    with tarfile.open(dest, "r:gz") as tar:
        members = {os.path.normpath(m.name) for m in tar.getmembers() if m.isfile() or m.issym()}
    missing = [p for p in entries if os.path.normpath(os.path.join(".", p)) not in members]
    if missing:
        raise VolumeError(f"{dest}: archive misses {len(missing)} file(s), first {missing[0]}")
    return result


def restore(archive: str, dest: str, expected_sha256: str, check_mode: bool = False) -> dict[str, t.Any]:
    """Unpack a verified archive into ``dest`` (which must be empty or absent)."""
    actual = file_sha256(archive)
    if actual != expected_sha256:
        raise VolumeError(f"{archive}: sha256 {actual} differs from the recorded {expected_sha256}; not restoring")
    if os.path.isdir(dest) and os.listdir(dest):
        raise VolumeError(f"{dest} is not empty; refusing to restore over existing data")
    if check_mode:
        return {"changed": True}
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            target = os.path.normpath(os.path.join(dest, member.name))
            if not target.startswith(os.path.normpath(dest)):
                raise VolumeError(f"{archive}: member {member.name} would escape {dest}")
        tar.extractall(dest, numeric_owner=True)  # noqa: S202 - members checked above
    return {"changed": True, "manifest_sha256": manifest_digest(manifest(dest))}


def compare_trees(source: str, target: str, limit: int = 20, owners: bool = True) -> dict[str, t.Any]:
    """Compare two directory trees file by file (sha256, size, mode, owner, symlink targets)."""
    left, right = manifest(source), manifest(target)
    keys = ("sha256", "size", "mode", "uid", "gid", "link") if owners else ("sha256", "size", "mode", "link")
    differences: list[dict[str, t.Any]] = []
    for path in sorted(set(left) | set(right)):
        a, b = left.get(path), right.get(path)
        if a is None or b is None:
            differences.append({"path": path, "problem": "missing in target" if b is None else "only in target"})
            continue
        changed = [k for k in keys if a.get(k) != b.get(k)]
        if changed:
            differences.append({"path": path, "problem": f"differs in {', '.join(changed)}"})
    return {
        "equal": not differences,
        "files_source": len(left),
        "files_target": len(right),
        "manifest_sha256_source": manifest_digest(left),
        "manifest_sha256_target": manifest_digest(right),
        "differences": len(differences),
        "first_differences": differences[:limit],
    }
