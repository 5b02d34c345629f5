"""The migration ledger: a small JSON document that records every completed step.

Playbooks read it to resume after an interruption; rollback walks it backwards.
Writes are atomic (temporary file in the same directory, fsync, rename, fsync of the
directory) and serialised with an advisory lock, so a crash never leaves a half-written
ledger and two writers never lose each other's entries. A ledger that cannot be parsed is
never overwritten: the caller gets a LedgerError naming the file and the problem.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import json
import os
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write

LEDGER_FORMAT = 1
STATUSES = ("started", "done", "failed", "rolled_back")


class LedgerError(Exception):
    """A ledger that cannot be read or written; the message names the file."""


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


def empty_ledger(environment: str = "") -> dict[str, t.Any]:
    return {"format": LEDGER_FORMAT, "environment": environment, "entries": [], "state": {}}


def load(path: str) -> dict[str, t.Any]:
    """Return the ledger at ``path``, or an empty one when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return empty_ledger()
    except OSError as exc:
        raise LedgerError(f"ledger {path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise LedgerError(f"ledger {path}: not UTF-8 text (byte {exc.start}); refusing to overwrite it") from exc
    except ValueError as exc:  # a NUL byte in the path
        raise LedgerError(f"ledger {path!r}: not a usable path ({exc})") from exc
    if not raw.strip():
        raise LedgerError(f"ledger {path}: file is empty; refusing to overwrite it (move it aside to start anew)")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise LedgerError(f"ledger {path}: not valid JSON ({exc}); refusing to overwrite it") from exc
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise LedgerError(f"ledger {path}: not a ledger document (no 'entries' list); refusing to overwrite it")
    if not isinstance(data.get("format", LEDGER_FORMAT), int) or isinstance(data.get("format"), bool):
        raise LedgerError(f"ledger {path}: format {data.get('format')!r} is not a format number; "
                          "refusing to overwrite it")
    if data.get("format", LEDGER_FORMAT) > LEDGER_FORMAT:
        raise LedgerError(f"ledger {path}: format {data.get('format')} is newer than this collection understands")
    data.setdefault("state", {})
    return data


def write_atomic(path: str, data: dict[str, t.Any], mode: int = 0o600) -> None:
    """Write ``data`` as JSON to ``path`` atomically (see _files.atomic_write)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


@contextlib.contextmanager
def locked(path: str) -> t.Iterator[dict[str, t.Any]]:
    """Hold the ledger lock, yield the loaded ledger, write it back if it changed."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        lock_fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise LedgerError(f"ledger {path}: cannot create lock file: {exc.strerror}") from exc
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        data = load(path)
        before = copy.deepcopy(data)
        yield data
        if data != before:
            try:
                write_atomic(path, data)
            except OSError as exc:
                raise LedgerError(f"ledger {path}: cannot write: {exc.strerror}") from exc
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)


def find(data: dict[str, t.Any], step: str) -> dict[str, t.Any] | None:
    """The most recent entry for ``step``, or None."""
    for entry in reversed(data.get("entries", [])):
        if entry.get("step") == step:
            return entry
    return None


def is_done(data: dict[str, t.Any], step: str) -> bool:
    entry = find(data, step)
    return bool(entry and entry.get("status") == "done")


def record(
    path: str,
    step: str,
    status: str = "done",
    phase: str = "",
    data: dict[str, t.Any] | None = None,
    undo: dict[str, t.Any] | None = None,
    check_mode: bool = False,
) -> tuple[bool, dict[str, t.Any]]:
    """Record ``step`` with ``status``. Returns (changed, entry).

    Recording the same step again with the same status, data and undo is not a change.
    """
    if status not in STATUSES:
        raise LedgerError(f"ledger {path}: status '{status}' is not one of {', '.join(STATUSES)}")
    if not step:
        raise LedgerError(f"ledger {path}: a step name is required")
    entry = {"step": step, "status": status, "phase": phase, "data": data or {}, "undo": undo or {}}
    if check_mode:
        current = find(load(path), step)
        same = current is not None and all(current.get(k) == v for k, v in entry.items())
        return (not same, current if same else entry)
    with locked(path) as ledger:
        current = find(ledger, step)
        if current is not None and all(current.get(k) == v for k, v in entry.items()):
            return False, current
        entry["at"] = now_iso()
        entry["seq"] = len(ledger["entries"]) + 1
        ledger["entries"].append(entry)
        return True, entry


def set_state(path: str, key: str, value: t.Any, check_mode: bool = False) -> bool:
    """Set ``state[key] = value`` (e.g. the live weight of a route). Returns changed."""
    if check_mode:
        return load(path).get("state", {}).get(key) != value
    with locked(path) as ledger:
        if ledger["state"].get(key) == value:
            return False
        ledger["state"][key] = value
        return True


def get_state(path: str, key: str, default: t.Any = None) -> t.Any:
    return load(path).get("state", {}).get(key, default)


def pending_undo(data: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Entries to undo, newest first: the latest entry per step whose status is 'done'."""
    latest: dict[str, dict[str, t.Any]] = {}
    for entry in data.get("entries", []):
        latest[entry["step"]] = entry
    done = [e for e in latest.values() if e.get("status") == "done" and e.get("undo")]
    return sorted(done, key=lambda e: e.get("seq", 0), reverse=True)
