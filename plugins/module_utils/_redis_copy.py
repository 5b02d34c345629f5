"""Redis copy for sophia.migrate.redis_migrate mode=dump: SCAN + DUMP/RESTORE, resumable from the ledger.

For targets that cannot replicate (e.g. managed Redis): keys are read with ``SCAN`` and copied with
``DUMP``/``RESTORE`` pipelined per batch, TTLs preserved. After each batch the cursor is checkpointed in
the migration ledger together with the identity of both servers, so an interrupted copy resumes where it
stopped, and only the copy the checkpoint belongs to.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t
import uuid

# connect is looked up at call time (_redis_client.connect): the unit tests put fake servers in its place
from ansible_collections.sophia.migrate.plugins.module_utils import _ledger, _redis_client
from ansible_collections.sophia.migrate.plugins.module_utils._redis_client import (
    Endpoint,
    RedisMigrateError,
    as_text,
    call,
    info,
    keyspace,
    keyspace_public,
    show_key,
)


def _db_list(ep: Endpoint, client: t.Any, databases: list[int] | None) -> list[int]:
    return sorted(databases) if databases else sorted(keyspace(ep, client)) or [0]


CHECKPOINT_FIELDS = ("db", "cursor", "copied", "run_id", "databases", "source", "target")


def server_identity(ep: Endpoint, client: t.Any) -> dict[str, t.Any]:
    """Which server this is: the address we reach it at, its ``run_id`` (new at every start) and its
    ``master_replid`` (new at every start and promotion), from INFO server / INFO replication."""
    return {"address": f"{ep.host}:{ep.port}", "run_id": as_text(info(ep, client, "server").get("run_id", "")),
            "master_replid": as_text(info(ep, client, "replication").get("master_replid", ""))}


def checkpoint_mismatches(checkpoint: t.Any, source: dict[str, t.Any], target: dict[str, t.Any],
                          databases: list[int]) -> list[str]:
    """Why ``checkpoint`` (the ledger state of a dump copy) does not belong to this source, target and
    database list; empty when a run may resume from it. A checkpoint that does not name its servers
    (written by hand or by an older version) never matches."""
    if not isinstance(checkpoint, dict):
        return [f"it is not a checkpoint of this module ({type(checkpoint).__name__})"]
    absent = [f for f in CHECKPOINT_FIELDS if f not in checkpoint]
    if absent:
        return [f"it does not record {', '.join(absent)}, so it cannot be tied to this source and target"]
    out: list[str] = []
    for field in ("db", "cursor", "copied"):
        value = checkpoint[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            out.append(f"its {field} {value!r} is not a non-negative integer")
    saved_dbs = checkpoint["databases"]
    if not isinstance(saved_dbs, list) or sorted(saved_dbs) != sorted(databases):
        out.append(f"it covers databases {saved_dbs!r}, this run {databases!r} (option databases)")
    elif isinstance(checkpoint["db"], int) and checkpoint["db"] not in databases:
        out.append(f"its database {checkpoint['db']} is not among {databases!r}")
    for label, now in (("source", source), ("target", target)):
        saved = checkpoint[label]
        if not isinstance(saved, dict):
            out.append(f"its {label} {saved!r} is not a server identity")
            continue
        for field, why in (("address", ""), ("run_id", " (the server restarted, or it is another server)"),
                           ("master_replid", " (the server restarted or was promoted, or it is another server)")):
            if saved.get(field) != now.get(field):
                out.append(f"{label} {field} is {now.get(field)!r}, the checkpoint's {saved.get(field)!r}{why}")
    return out


@dataclasses.dataclass
class _CopyProgress:
    """Where a dump copy stands; ``save`` keeps it in the ledger (when there is one) as the checkpoint."""

    ledger_path: str | None
    ledger_step: str
    dbs: list[int]
    run_id: str
    identity: dict[str, t.Any]
    copied: int = 0
    skipped: int = 0
    batches: int = 0

    def save(self, db: int, cursor: int) -> None:
        if self.ledger_path:
            try:
                _ledger.set_state(self.ledger_path, self.ledger_step,
                                  {"db": db, "cursor": cursor, "copied": self.copied, "skipped": self.skipped,
                                   "databases": self.dbs, "run_id": self.run_id, **self.identity})
            except _ledger.LedgerError as exc:
                raise RedisMigrateError(f"option ledger_path: {exc}") from exc


def _ledger_position(ledger_path: str, ledger_step: str, identity: dict[str, t.Any],
                     result: dict[str, t.Any]) -> tuple[bool, t.Any]:
    """(done, checkpoint) from the ledger; when the step is done already, ``result`` holds its figures.

    A step done for another pair of servers is refused.
    """
    try:
        ledger = _ledger.load(ledger_path)
        if _ledger.is_done(ledger, ledger_step):
            entry = _ledger.find(ledger, ledger_step) or {}
            data = entry.get("data") or {}
            done_for = {k: data.get(f"{k}_address") for k in ("source", "target")}
            now_for = {k: identity[k]["address"] for k in ("source", "target")}
            if data.get("source_address") is not None and done_for != now_for:
                raise RedisMigrateError(
                    f"ledger {ledger_path}: step '{ledger_step}' was done from {done_for['source']} to "
                    f"{done_for['target']}, not from {now_for['source']} to {now_for['target']}; "
                    "use another ledger_step for another pair of servers")
            result.update(msg=f"already done according to ledger step {ledger_step}", **data)
            result["changed"] = False
            return True, None
        return False, ledger.get("state", {}).get(ledger_step)
    except _ledger.LedgerError as exc:
        raise RedisMigrateError(f"option ledger_path: {exc}") from exc


def _refuse_foreign_checkpoint(checkpoint: t.Any, identity: dict[str, t.Any], dbs: list[int], where: str,
                               ledger_step: str) -> None:
    """Raise when ``checkpoint`` does not belong to this source, target and database list."""
    wrong = checkpoint_mismatches(checkpoint, identity["source"], identity["target"], dbs)
    if wrong:
        raise RedisMigrateError(
            f"the dump checkpoint in {where} does not belong to this copy: {'; '.join(wrong)}. "
            "Nothing was copied. If the checkpoint is stale, remove it (sophia.migrate.ledger "
            f"operation=set_state key={ledger_step} value=null) and run again: a new copy starts from "
            "the beginning and refuses a non-empty target unless overwrite_target=true")


def _copy_databases(src: Endpoint, tgt: Endpoint, progress: _CopyProgress, start_db: int, start_cursor: int,
                    batch_size: int, replace: bool, stop_after_batches: int | None) -> dict[str, int] | None:
    """Copy batch by batch from ``start_db``/``start_cursor`` on, saving the checkpoint after each batch.

    Returns where the copy stopped (db, cursor) when ``stop_after_batches`` cut it short, else None.
    """
    dbs = progress.dbs
    for db in dbs:
        if db < start_db:
            continue
        sdb = _redis_client.connect(src, db)
        tdb = _redis_client.connect(tgt, db)
        cursor = start_cursor if db == start_db else 0
        first = True
        while first or cursor != 0:
            first = False
            cursor, keys = call(src, f"SCAN db{db}", sdb.scan, cursor, count=batch_size)
            cursor = int(cursor)
            if keys:
                n, k = _copy_batch(src, sdb, tgt, tdb, db, keys, replace)
                progress.copied += n
                progress.skipped += k
            progress.batches += 1
            progress.save(db, cursor)
            if stop_after_batches is not None and progress.batches >= stop_after_batches and cursor != 0:
                return {"db": db, "cursor": cursor}
        progress.save(dbs[dbs.index(db) + 1] if db != dbs[-1] else db, 0)
    return None


def _record_done(ledger_path: str, ledger_step: str, figures: dict[str, t.Any], tgt: Endpoint,
                 dbs: list[int]) -> None:
    try:
        _ledger.record(ledger_path, ledger_step, "done", data=figures,
                       undo={"action": "redis_flush_target", "target": f"{tgt.host}:{tgt.port}", "databases": dbs})
    except _ledger.LedgerError as exc:
        raise RedisMigrateError(f"option ledger_path: {exc}") from exc


def dump_copy(src: Endpoint, tgt: Endpoint, databases: list[int] | None = None, batch_size: int = 1000,
              replace: bool = True, overwrite_target: bool = False, ledger_path: str | None = None,
              ledger_step: str = "redis/dump", check_mode: bool = False,
              stop_after_batches: int | None = None,
              clock: t.Callable[[], float] = time.monotonic) -> dict[str, t.Any]:
    """mode=dump: SCAN + DUMP/RESTORE (pipelined), TTLs kept, cursor checkpointed in the ledger.

    The checkpoint names the source and the target (address, ``run_id``, ``master_replid``), the
    databases and the copy's own run id; a run resumes only from a checkpoint that matches, so a stale
    one can never stand in for the ``overwrite_target`` check.
    ``stop_after_batches`` stops early (as an interruption would), leaving the checkpoint; tests use it.
    """
    started = clock()
    s = _redis_client.connect(src)
    tc = _redis_client.connect(tgt)
    dbs = _db_list(src, s, databases)
    result: dict[str, t.Any] = {"changed": False, "mode": "dump", "databases": dbs}
    identity = {"source": server_identity(src, s), "target": server_identity(tgt, tc)}
    checkpoint: dict[str, t.Any] | None = None
    if ledger_path:
        done, checkpoint = _ledger_position(ledger_path, ledger_step, identity, result)
        if done:
            return result
    if checkpoint is not None:
        _refuse_foreign_checkpoint(checkpoint, identity, dbs, f"ledger {ledger_path}, state key '{ledger_step}'",
                                   ledger_step)
    src_keys = keyspace(src, s)
    result["source_keys"] = keyspace_public({db: src_keys.get(db, 0) for db in dbs})
    if not checkpoint:
        busy = {db: n for db, n in keyspace(tgt, tc).items() if db in dbs and n}
        if busy and not overwrite_target:
            raise RedisMigrateError(f"{tgt.name}: already holds keys ({keyspace_public(busy)}); set "
                                    "overwrite_target=true to copy over them")
    if check_mode:
        result.update(changed=True, msg=f"would copy about {sum(src_keys.get(db, 0) for db in dbs)} keys",
                      resume_from=checkpoint)
        return result

    copied = int(checkpoint["copied"]) if checkpoint else 0
    skipped = int(checkpoint.get("skipped", 0)) if checkpoint else 0
    start_db = int(checkpoint["db"]) if checkpoint else dbs[0]
    start_cursor = int(checkpoint["cursor"]) if checkpoint else 0
    run_id = str(checkpoint["run_id"]) if checkpoint else uuid.uuid4().hex
    result["run_id"] = run_id
    result["resumed_from"] = {"db": start_db, "cursor": start_cursor, "copied": copied} if checkpoint else None
    progress = _CopyProgress(ledger_path, ledger_step, dbs, run_id, identity, copied, skipped)
    result["changed"] = True
    stopped = _copy_databases(src, tgt, progress, start_db, start_cursor, batch_size, replace, stop_after_batches)
    if stopped is not None:
        result.update(interrupted=True, keys_copied=progress.copied, batches=progress.batches, checkpoint=stopped)
        return result
    seconds = clock() - started
    figures = {"keys_copied": progress.copied, "keys_skipped": progress.skipped, "batches": progress.batches,
               "duration_seconds": round(seconds, 3),
               "keys_per_second": round(progress.copied / seconds, 1) if seconds > 0 else None,
               "source_keys": result["source_keys"],
               "target_keys": keyspace_public({db: n for db, n in keyspace(tgt, tc).items() if db in dbs}),
               "run_id": run_id, "source_address": identity["source"]["address"],
               "target_address": identity["target"]["address"]}
    result.update(figures)
    if ledger_path:
        _record_done(ledger_path, ledger_step, figures, tgt, dbs)
    result["msg"] = f"copied {progress.copied} keys"
    return result


def _copy_batch(src: Endpoint, sdb: t.Any, tgt: Endpoint, tdb: t.Any, db: int, keys: list[bytes],
                replace: bool) -> tuple[int, int]:
    pipe = sdb.pipeline(transaction=False)
    for key in keys:
        pipe.pttl(key)
        pipe.dump(key)
    values = call(src, f"DUMP of {len(keys)} keys in db{db}", pipe.execute)
    tpipe = tdb.pipeline(transaction=False)
    sent: list[bytes] = []
    skipped = 0
    for i, key in enumerate(keys):
        ttl, payload = values[2 * i], values[2 * i + 1]
        if payload is None or ttl == -2:  # expired or deleted between SCAN and DUMP
            skipped += 1
            continue
        tpipe.restore(key, max(int(ttl), 0), payload, replace=replace)
        sent.append(key)
    if not sent:
        return 0, skipped
    answers = call(tgt, f"RESTORE of {len(sent)} keys in db{db}", tpipe.execute, raise_on_error=False)
    errors = [(k, a) for k, a in zip(sent, answers, strict=True) if isinstance(a, Exception)]
    if errors:
        key, exc = errors[0]
        hint = " (key exists and replace=false)" if "BUSYKEY" in str(exc) else ""
        raise RedisMigrateError(f"{tgt.name}: RESTORE failed for {len(errors)} keys in db{db}, first "
                                f"'{show_key(key)}': {exc}{hint}")
    return len(sent), skipped
