"""A set of files written into one or more directories: what differs, then atomic writes (manifest_files).

``FileSet`` checks every name, mode, owner and group before anything is written, compares each target with what it
should hold (content, then mode, owner and group), and writes only what differs, each file through
``_files.atomic_open`` (mode and owner set on the temporary file, before its rename). A symbolic link at a target is
refused: the set is written into directories the collection owns, and a link there was put by something else.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_open


class FileSetError(Exception):
    """A name, mode, owner, group or directory the set cannot be written with (the message names it)."""


def _file_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise FileSetError(f"file name {name!r} is not a plain file name (no directory part, not '.' or '..')")
    return name


def _mode(mode: str) -> int:
    try:
        value = int(str(mode), 8)
    except ValueError:
        raise FileSetError(f"mode {mode!r} is not an octal mode such as '0600'") from None
    if not 0 <= value <= 0o7777:
        raise FileSetError(f"mode {mode!r} is out of range (0000-7777)")
    return value


def _id(value: str | None, kind: str) -> int | None:
    if value is None or value == "":
        return None
    if str(value).isdigit():
        if int(value) > 0xFFFFFFFE:  # (uid_t)-1 means "leave it", and larger ids do not exist
            raise FileSetError(f"{kind} {value!r:.40} is not a valid numeric id")
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid if kind == "owner" else grp.getgrnam(value).gr_gid
    except (KeyError, ValueError):  # ValueError: a name with a NUL byte
        raise FileSetError(f"{kind} {value!r:.80} does not exist on this host") from None


class FileSet:
    """``files`` ({name, content}) to be written into each of ``dest`` with ``mode``, ``owner`` and ``group``."""

    def __init__(self, files: list[dict[str, t.Any]], dest: list[str], mode: str = "0600",
                 owner: str | None = None, group: str | None = None) -> None:
        names = [_file_name(f["name"]) for f in files]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise FileSetError(f"file names given twice: {', '.join(twice)}")
        if not dest:
            raise FileSetError("dest names no directory")
        self.files = [(f["name"], f["content"].encode("utf-8")) for f in files]
        self.dest = list(dict.fromkeys(dest))
        self.mode = _mode(mode)
        self.uid, self.gid = _id(owner, "owner"), _id(group, "group")

    def _state(self, path: str, data: bytes) -> tuple[str, bytes | None]:
        """('same' | 'attributes' | 'content', the current bytes or None) for the file at ``path``."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return "content", None
        if stat.S_ISLNK(info.st_mode):
            raise FileSetError(f"{path} is a symbolic link; refusing to write through it")
        if not stat.S_ISREG(info.st_mode):
            raise FileSetError(f"{path} exists and is not a regular file")
        with open(path, "rb") as handle:
            current = handle.read()
        if current != data:
            return "content", current
        wrong = (stat.S_IMODE(info.st_mode) != self.mode or (self.uid is not None and info.st_uid != self.uid)
                 or (self.gid is not None and info.st_gid != self.gid))
        return ("attributes" if wrong else "same"), current

    def _write(self, path: str, data: bytes) -> None:
        with atomic_open(path, self.mode, refuse_symlink=True) as handle:
            if self.uid is not None or self.gid is not None:
                os.fchown(handle.fileno(), -1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid)
            handle.write(data)

    def _fix(self, path: str) -> None:
        if self.uid is not None or self.gid is not None:
            os.chown(path, -1 if self.uid is None else self.uid, -1 if self.gid is None else self.gid,
                     follow_symlinks=False)
        os.chmod(path, self.mode)

    def plan(self, check: bool = False) -> list[tuple[str, str, bytes, bytes | None]]:
        """(path, 'attributes' | 'content', data, current bytes) for every target that differs; raises before any
        write on a missing directory, a link or a non-file at a target."""
        actions = []
        for directory in self.dest:
            exists = os.path.isdir(directory)
            if not exists and not (check and not os.path.lexists(directory)):
                raise FileSetError(f"directory {directory} does not exist (or is not a directory)")
            for name, data in self.files:
                path = os.path.join(directory, name)
                state, current = self._state(path, data) if exists else ("content", None)
                actions.append((path, state, data, current))
        return actions

    def apply(self, check: bool = False) -> dict[str, t.Any]:
        """Write what differs (nothing in ``check``); return written, fixed, unchanged and the content diffs."""
        result: dict[str, t.Any] = {"written": [], "fixed": [], "unchanged": 0, "diff": []}
        for path, state, data, current in self.plan(check):
            if state == "same":
                result["unchanged"] += 1
            elif state == "attributes":
                result["fixed"].append(path)
                if not check:
                    self._fix(path)
            else:
                result["written"].append(path)
                result["diff"].append({"before_header": path, "after_header": path,
                                       "before": (current or b"").decode("utf-8", "replace"),
                                       "after": data.decode("utf-8")})
                if not check:
                    self._write(path, data)
        return result
