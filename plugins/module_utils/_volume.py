"""Back up a directory (a Docker named volume's data, a bind mount) to a tar.gz with sha256.

- One pass: the archive is written to a temporary name while its sha256 is computed, then
  fsync'ed and renamed, so a crash never leaves a partial archive under the final name.
- A manifest (sha256 of every regular file, its size and mode) is built in the same walk; it
  is what ``verify`` compares after a restore, and it proves what the archive contains.
- Every archive has a sidecar ``<archive>.manifest.json`` that records the archive's sha256 and the
  digest of the content it holds (computed from the archive itself when it is read back). An existing
  archive is reused only when it still hashes to that sha256 and the directory's current content digest
  equals the recorded one; otherwise a new archive is written under a content-addressed name and the
  old one is kept.
- ``verify`` checks, right before data is deleted, that the archive exists, hashes to the recorded
  sha256 and holds exactly the directory's current content.
- ``restore`` checks every member before anything is written (no path, symbolic or hard link outside
  the target, no device or FIFO, no write through a symbolic link) and strips setuid, setgid and
  sticky bits; a corrupt, truncated or non-gzip archive is a clean error.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import json
import os
import posixpath
import tarfile
import typing as t
import zlib

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_open, atomic_write, sha256_file

CHUNK = 1024 * 1024
SIDECAR_SUFFIX = ".manifest.json"
SIDECAR_FORMAT = 1
# The tarfile extraction filters (PEP 706) exist from Python 3.11.4 / 3.12 on.
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
_SPECIAL_BITS = 0o7000  # setuid, setgid, sticky


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
    return sha256_file(path, CHUNK)


def manifest(root: str) -> dict[str, dict[str, t.Any]]:
    """sha256, size and mode of every regular file under ``root``, keyed by relative path."""
    if not os.path.isdir(root):
        raise VolumeError(f"{root}: not a directory")
    out: dict[str, dict[str, t.Any]] = {}
    for current, dirs, files in os.walk(root):
        dirs.sort()
        # os.walk lists a symbolic link to a directory among the directories (and does not follow it)
        dir_links = [d for d in dirs if os.path.islink(os.path.join(current, d))]
        for name in sorted(files + dir_links):
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


def tree_digest(root: str) -> tuple[str, int]:
    """The content digest of a directory tree (the one ``tree_compare`` compares) and its file count."""
    entries = manifest(root)
    return manifest_digest(entries), len(entries)


def archive_manifest(path: str) -> dict[str, dict[str, t.Any]]:
    """The manifest of what a tar.gz holds, in the format of ``manifest`` (so their digests compare)."""
    out: dict[str, dict[str, t.Any]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            rel = posixpath.normpath(member.name)
            if rel == ".":
                continue
            if member.isreg():
                sha = hashlib.sha256()
                handle = tar.extractfile(member)
                while handle is not None and (block := handle.read(CHUNK)):
                    sha.update(block)
                out[rel] = {"sha256": sha.hexdigest(), "size": member.size, "mode": member.mode & 0o7777,
                            "uid": member.uid, "gid": member.gid}
            elif member.issym():
                out[rel] = {"link": member.linkname}
            elif member.islnk():
                target = out.get(posixpath.normpath(member.linkname))
                if target is not None and "sha256" in target:
                    out[rel] = dict(target)
    return out


def sidecar_path(archive: str) -> str:
    return archive + SIDECAR_SUFFIX


def read_sidecar(archive: str) -> dict[str, t.Any] | None:
    """The sidecar manifest of ``archive`` (its sha256 and content digest), or None when there is none."""
    path = sidecar_path(archive)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise VolumeError(f"backup manifest {path} cannot be read ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("sha256", "manifest_sha256")):
        raise VolumeError(f"backup manifest {path} is not a backup manifest (no sha256 and manifest_sha256)")
    return data


def _write_sidecar(archive: str, data: dict[str, t.Any]) -> None:
    atomic_write(sidecar_path(archive), json.dumps(data, indent=2, sort_keys=True) + "\n", 0o600)


def versioned_path(dest: str, digest: str) -> str:
    """Where a backup of content ``digest`` goes when ``dest`` already holds other content."""
    base, ext = (dest[: -len(".tar.gz")], ".tar.gz") if dest.endswith(".tar.gz") else (dest, "")
    return f"{base}.{digest[:16]}{ext}"


def _holds(path: str, actual_sha256: str) -> str | None:
    """The content digest the sidecar of ``path`` records, when the sidecar describes this very archive."""
    try:
        side = read_sidecar(path)
    except VolumeError:
        return None
    if side is None or side["sha256"] != actual_sha256:
        return None
    return side["manifest_sha256"]


def backup(source: str, dest: str, expected_sha256: str | None = None, check_mode: bool = False,
           reuse: str = "matching", recorded: dict[str, str] | None = None) -> dict[str, t.Any]:
    """Archive ``source`` into ``dest`` (tar.gz) unless an archive of its current content exists.

    ``expected_sha256`` is the sha256 the archive at ``dest`` must have; ``recorded`` maps further archive
    paths to the sha256 recorded for them (the ledger). An existing archive with another sha256 than the
    recorded one is never overwritten. With ``reuse='matching'`` an archive is reused only when its sidecar
    records the current content digest of ``source``; with ``reuse='recorded'`` a recorded archive that
    still hashes to its recorded sha256 is reused whatever the source holds now (a point-in-time snapshot).
    When ``dest`` holds other content the new archive goes to ``versioned_path(dest, digest)`` and the old
    one is kept (returned in ``superseded``).
    """
    if not os.path.isdir(source):
        raise VolumeError(f"source {source}: not a directory (is the volume's mountpoint readable here?)")
    expected = dict(recorded or {})
    if expected_sha256:
        expected[dest] = expected_sha256
    entries = manifest(source)
    digest = manifest_digest(entries)
    superseded: list[str] = []
    for path in dict.fromkeys([*expected, dest, versioned_path(dest, digest)]):
        if not os.path.isfile(path):
            continue
        actual = file_sha256(path)
        want = expected.get(path)
        if want is not None and actual != want:
            raise VolumeError(f"{path} exists but its sha256 {actual} differs from the recorded {want}; "
                              "refusing to overwrite a backup (move it aside)")
        holds = _holds(path, actual)
        if holds == digest or (reuse == "recorded" and want is not None):
            out = {"path": path, "size": os.path.getsize(path), "sha256": actual, "changed": False, "reused": True,
                   "superseded": superseded}
            if holds:
                out["manifest_sha256"] = holds
            return out
        superseded.append(path)
    target = dest if not os.path.lexists(dest) else versioned_path(dest, digest)
    if os.path.lexists(target):
        raise VolumeError(f"{target} exists but its manifest {sidecar_path(target)} does not record the current "
                          f"content of {source} (digest {digest}); refusing to overwrite a backup (move it aside)")
    result: dict[str, t.Any] = {"path": target, "files": len(entries), "manifest_sha256": digest, "changed": True,
                                "reused": False, "superseded": superseded}
    if check_mode:
        return result
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    # 0600 from the start; renamed to ``target`` when the block ends, removed if anything in it fails
    with atomic_open(target, 0o600) as raw:
        tmp = raw.name
        writer = _HashingWriter(raw)
        with tarfile.open(fileobj=writer, mode="w|gz") as tar:  # type: ignore[call-overload]
            tar.add(source, arcname=".", recursive=True)
        raw.flush()
        # Read it back before it gets its name: it must hash to what we wrote and hold every file; the
        # content digest recorded for it is the one of what it actually holds.
        if file_sha256(tmp) != writer.sha.hexdigest():
            raise VolumeError(f"{target}: sha256 after writing differs from the one computed while writing")
        held = archive_manifest(tmp)
        missing = [p for p in entries if p not in held]
        if missing:
            raise VolumeError(f"{target}: archive misses {len(missing)} file(s), first {missing[0]}")
        result.update(size=writer.size, sha256=writer.sha.hexdigest(), files=len(held),
                      manifest_sha256=manifest_digest(held))
        _write_sidecar(target, {
            "format": SIDECAR_FORMAT, "archive": os.path.basename(target), "sha256": result["sha256"],
            "size": result["size"], "manifest_sha256": result["manifest_sha256"], "files": result["files"],
            "source": source, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        })
    return result


def verify(source: str, archive: str, expected_sha256: str, expected_manifest_sha256: str | None = None
           ) -> dict[str, t.Any]:
    """Prove that ``archive`` still is the recorded backup of exactly what ``source`` holds now.

    Checked right before ``source`` is deleted: the archive exists, hashes to the recorded sha256, its sidecar
    agrees, and the content digest recorded for it equals the current digest of ``source``.
    """
    if not os.path.isfile(archive):
        raise VolumeError(f"the backup {archive} does not exist")
    actual = file_sha256(archive)
    if actual != expected_sha256:
        raise VolumeError(f"the backup {archive} was modified: its sha256 {actual} differs from the recorded "
                          f"{expected_sha256}")
    side = read_sidecar(archive)
    recorded = expected_manifest_sha256
    if side is not None:
        if side["sha256"] != actual:
            raise VolumeError(f"the backup manifest {sidecar_path(archive)} records sha256 {side['sha256']}, "
                              f"not the archive's {actual}")
        if recorded and side["manifest_sha256"] != recorded:
            raise VolumeError(f"the backup manifest {sidecar_path(archive)} records content digest "
                              f"{side['manifest_sha256']}, not the recorded {recorded}")
        recorded = side["manifest_sha256"]
    if not recorded:
        raise VolumeError(f"no content digest is recorded for the backup {archive} (no manifest "
                          f"{sidecar_path(archive)}); it cannot prove what it holds")
    if not os.path.isdir(source):
        raise VolumeError(f"source {source}: not a directory (is the volume's mountpoint readable here?)")
    current, files = tree_digest(source)
    if current != recorded:
        raise VolumeError(f"the backup {archive} is stale: it holds content digest {recorded}, but {source} now "
                          f"has {current} (changed since the backup; take a new one)")
    return {"path": archive, "sha256": actual, "manifest_sha256": current, "files": files, "verified": True}


def _resolve(path: str, links: dict[str, str]) -> str | None:
    """Resolve an archive-relative path as it would be on disk after extraction into an empty directory,
    following the archive's own symbolic links (``links``: name -> target). None when it leaves the directory."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    out: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if not out:
                return None
            out.pop()
            continue
        here = "/".join([*out, part])
        if here in links:
            hops += 1
            if hops > 40 or links[here].startswith("/"):
                return None
            pending[:0] = [p for p in links[here].split("/") if p not in ("", ".")]
            continue
        out.append(part)
    return "/".join(out)


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"special file (tar type {member.type!r})"


def check_members(archive: str, dest: str, members: list[tarfile.TarInfo]) -> None:
    """Refuse the whole archive when any member could write outside ``dest`` (which is empty) or is special.

    Also runs the tarfile ``data`` filter on every member when Python has it. Raises VolumeError naming the
    first offending member; nothing is written by this check.
    """
    root = os.path.realpath(dest)

    def refuse(member: tarfile.TarInfo, why: str) -> t.NoReturn:
        raise VolumeError(f"{archive}: member '{member.name}' {why}; refusing to restore any of the archive")

    names: dict[str, tarfile.TarInfo] = {}
    links: dict[str, str] = {}
    for member in members:
        if member.name.startswith("/") or os.path.isabs(member.name):
            refuse(member, "has an absolute path")
        name = posixpath.normpath(member.name)
        if name == ".." or name.startswith("../"):
            refuse(member, f"would be written outside {dest}")
        if name in names and not (member.isdir() and names[name].isdir()):
            refuse(member, "appears more than once in the archive")
        names[name] = member
        if member.issym():
            links[name] = member.linkname
    regular: set[str] = set()
    for member in members:
        name = posixpath.normpath(member.name)
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            refuse(member, f"is a {_kind(member)}")
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in links:
                refuse(member, f"would be written through the symbolic link '{parent}' -> {links[parent]}")
        if member.issym():
            target = None if member.linkname.startswith("/") else _resolve(
                posixpath.join(posixpath.dirname(name), member.linkname), links)
            if target is None:
                refuse(member, f"is a symbolic link to {member.linkname}, outside {dest}")
        if member.islnk():
            target = None if member.linkname.startswith("/") else _resolve(member.linkname, links)
            if target is None:
                refuse(member, f"is a hard link to {member.linkname}, outside {dest}")
            if target not in regular:
                refuse(member, f"is a hard link to {member.linkname}, which is not a regular file earlier in the "
                               "archive")
        if HAS_DATA_FILTER:
            try:
                tarfile.data_filter(member, root)
            except tarfile.FilterError as exc:
                refuse(member, f"is refused by the tarfile data filter ({exc})")
        if member.isreg():
            regular.add(name)


def _restore_filter(member: tarfile.TarInfo, dest_path: str) -> tarfile.TarInfo:
    """Extraction filter of a restore: the ``data`` filter's checks, against the disk as it is at this moment.

    The ``data`` filter's attribute changes (owner dropped, group/other write bits and directory modes
    reset) are not applied: a restored volume must keep its owners and modes. Only setuid, setgid and
    sticky bits are stripped.
    """
    tarfile.data_filter(member, dest_path)  # raises FilterError on anything unsafe
    if member.mode is not None and member.mode & _SPECIAL_BITS:
        return member.replace(mode=member.mode & ~_SPECIAL_BITS, deep=False)
    return member


_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def restore(archive: str, dest: str, expected_sha256: str, check_mode: bool = False) -> dict[str, t.Any]:
    """Unpack a verified archive into ``dest`` (which must be empty or absent).

    Every member is checked (``check_members``) before anything is written.
    """
    actual = file_sha256(archive)
    if actual != expected_sha256:
        raise VolumeError(f"{archive}: sha256 {actual} differs from the recorded {expected_sha256}; not restoring")
    if os.path.isdir(dest) and os.listdir(dest):
        raise VolumeError(f"{dest} is not empty; refusing to restore over existing data")
    try:  # the whole gzip stream first: a truncated or corrupt archive is refused before anything is written
        with gzip.open(archive, "rb") as stream:
            while stream.read(CHUNK):
                pass
    except _ARCHIVE_ERRORS as exc:
        raise VolumeError(f"{archive}: not a complete gzip-compressed archive ({exc}); nothing restored") from exc
    step = "reading"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            check_members(archive, dest, members)
            if check_mode:
                return {"changed": True}
            step = "extracting"
            os.makedirs(dest, exist_ok=True)
            if HAS_DATA_FILTER:
                tar.extractall(dest, numeric_owner=True, filter=_restore_filter)  # noqa: S202 - checked and filtered
            else:  # Python < 3.11.4: no filters; every member was checked above
                for member in members:
                    member.mode &= ~_SPECIAL_BITS
                tar.extractall(dest, numeric_owner=True)  # noqa: S202 - every member checked above
    except _ARCHIVE_ERRORS as exc:
        if step == "reading":
            raise VolumeError(f"{archive}: not a readable tar archive ({exc}); nothing restored") from exc
        raise VolumeError(f"{archive}: restoring into {dest} failed ({exc})") from exc
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
