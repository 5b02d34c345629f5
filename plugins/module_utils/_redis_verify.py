"""Redis verification for sophia.migrate.redis_migrate mode=verify: compare the source and the target.

Full or sampled comparison per database (read-only): key count, type, TTL within a tolerance, and value:
one digest per key from a server-side script first (the ``DUMP`` payload's sha1 and the TTL), then, for
the keys whose digests differ, the ``DUMP`` payloads and a type-aware read when payload encodings differ.
Keys found different are read again once after a delay, so that writes in flight are not reported.
"""

from __future__ import annotations

import time
import typing as t

# connect is looked up at call time (_redis_client.connect): the unit tests put fake servers in its place
from ansible_collections.sophia.migrate.plugins.module_utils import _redis_client
from ansible_collections.sophia.migrate.plugins.module_utils._redis_client import (
    Endpoint,
    RedisMigrateError,
    as_text,
    call,
    describe_error,
    keyspace,
    redis,  # redis-py, or None without it (HAS_REDIS)
    show_key,
)


def read_value(client: t.Any, key: bytes, kind: str) -> t.Any:
    """A type-aware, order-normalised value for comparison."""
    if kind == "string":
        return client.get(key)
    if kind == "hash":
        return sorted(client.hgetall(key).items())
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "stream":
        return client.xrange(key, "-", "+")
    return client.dump(key)


def _fetch(ep: Endpoint, client: t.Any, db: int, keys: list[bytes]) -> list[tuple[str, int, bytes | None]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
        pipe.pttl(key)
        pipe.dump(key)
    raw = call(ep, f"reading {len(keys)} keys in db{db}", pipe.execute)
    return [(as_text(raw[3 * i]), int(raw[3 * i + 1]), raw[3 * i + 2]) for i in range(len(keys))]


def compare_key(kind_s: str, ttl_s: int, dump_s: bytes | None, kind_t: str, ttl_t: int, dump_t: bytes | None,
                ttl_tolerance_ms: int) -> str | None:
    """The problem with one key (None when equal or when the value needs a type-aware read: 'value?')."""
    if kind_t == "none":
        return "missing on target"
    if kind_s != kind_t:
        return f"type {kind_s} on source, {kind_t} on target"
    if (ttl_s < 0) != (ttl_t < 0):
        return f"ttl {ttl_s} ms on source, {ttl_t} ms on target"
    if ttl_s >= 0 and abs(ttl_s - ttl_t) > ttl_tolerance_ms:
        return f"ttl {ttl_s} ms on source, {ttl_t} ms on target (tolerance {ttl_tolerance_ms} ms)"
    if dump_s != dump_t:
        return "value?"
    return None


# One round trip per batch and server: "<sha1 of DUMP> <PTTL>" per key, joined by newlines (parsed in C by
# bytes.split), instead of three replies per key; keys whose lines disagree get the detailed check.
DIGEST_SCRIPT = """
local out = {}
for _, k in ipairs(KEYS) do
  local d = redis.call('DUMP', k)
  local ttl = redis.call('PTTL', k)
  if d then out[#out + 1] = redis.sha1hex(d) .. ' ' .. ttl else out[#out + 1] = '- ' .. ttl end
end
return table.concat(out, '\\n')
"""


def _digests(ep: Endpoint, client: t.Any, db: int, keys: list[bytes], state: dict[str, t.Any],
             timer: t.Callable[[], float] = time.perf_counter) -> list[bytes] | None:
    """Per-key digest lines, or None when scripting is unavailable (then only the detailed check runs).

    The script runs atomically: the server serves nobody else meanwhile. Its round trip (an upper
    bound of that block) is kept per server in ``state["block_ms"]`` (the longest one seen).
    """
    if not state.get("scripting", True):
        return None
    for command in ("EVAL_RO", "EVAL"):
        try:
            began = timer()
            raw = client.execute_command(command, DIGEST_SCRIPT, len(keys), *keys)
            took = (timer() - began) * 1000
            blocks = state.setdefault("block_ms", {})
            blocks[ep.label] = max(blocks.get(ep.label, 0.0), took)
        except redis.ResponseError as exc:
            if "unknown command" in str(exc).lower() and command == "EVAL_RO":
                continue
            state["scripting"] = False  # NOPERM, scripting disabled, ...: fall back for good
            return None
        except Exception as exc:
            raise RedisMigrateError(describe_error(ep, f"reading {len(keys)} keys in db{db}", exc),
                                    transient=True) from exc
        lines = raw.split(b"\n") if raw else []
        return lines if len(lines) == len(keys) else None
    return None  # pragma: no cover


def _lines_match(a: bytes, b: bytes, ttl_tolerance_ms: int) -> bool:
    if a == b:
        return True
    da, _sep, ta = a.partition(b" ")
    db_, _sep, tb = b.partition(b" ")
    if da != db_ or da == b"-":
        return da == db_ == b"-"  # missing on both sides: expired meanwhile
    x, y = int(ta), int(tb)
    return (x < 0) == (y < 0) and (x < 0 or abs(x - y) <= ttl_tolerance_ms)


def _check_batch(src: Endpoint, sdb: t.Any, tgt: Endpoint, tdb: t.Any, db: int, keys: list[bytes],
                 ttl_tolerance_ms: int, state: dict[str, t.Any] | None = None) -> tuple[int, list[tuple[bytes, str]]]:
    state = state if state is not None else {}
    a = _digests(src, sdb, db, keys, state)
    b = _digests(tgt, tdb, db, keys, state) if a is not None else None
    if a is not None and b is not None:
        suspects = [k for k, x, y in zip(keys, a, b, strict=True) if not _lines_match(x, y, ttl_tolerance_ms)]
        vanished = sum(1 for x, y in zip(a, b, strict=True) if x.startswith(b"- ") and y.startswith(b"- "))
        if not suspects:
            return len(keys) - vanished, []
        n, bad = _check_detailed(src, sdb, tgt, tdb, db, suspects, ttl_tolerance_ms)
        return len(keys) - vanished - (len(suspects) - n), bad
    return _check_detailed(src, sdb, tgt, tdb, db, keys, ttl_tolerance_ms)


def _check_detailed(src: Endpoint, sdb: t.Any, tgt: Endpoint, tdb: t.Any, db: int, keys: list[bytes],
                    ttl_tolerance_ms: int) -> tuple[int, list[tuple[bytes, str]]]:
    a = _fetch(src, sdb, db, keys)
    b = _fetch(tgt, tdb, db, keys)
    checked = 0
    bad: list[tuple[bytes, str]] = []
    for key, (ks, ts, ds), (kt, tt, dt) in zip(keys, a, b, strict=True):
        if ks == "none":  # expired or deleted on the source meanwhile
            continue
        checked += 1
        problem = compare_key(ks, ts, ds, kt, tt, dt, ttl_tolerance_ms)
        if problem == "value?":  # payload encodings may differ (e.g. listpack vs hashtable)
            vs = call(src, f"reading '{show_key(key)}'", read_value, sdb, key, ks)
            vt = call(tgt, f"reading '{show_key(key)}'", read_value, tdb, key, kt)
            problem = None if vs == vt else "value differs"
        if problem:
            bad.append((key, problem))
    return checked, bad


def verify(src: Endpoint, tgt: Endpoint, databases: list[int] | None = None, sample: int = 0,
           ttl_tolerance_ms: int = 2000, max_differences: int = 20, batch_size: int = 1000,
           recheck_delay: float = 1.0, clock: t.Callable[[], float] = time.monotonic,
           sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    """mode=verify: compare the source and the target per database (read-only).

    Keys found different are read again once after ``recheck_delay`` seconds so that writes still in
    flight on a replicating pair are not reported.
    """
    if batch_size < 1:
        raise RedisMigrateError(f"option batch_size must be at least 1, got {batch_size}")
    started = clock()
    s = _redis_client.connect(src)
    tc = _redis_client.connect(tgt)
    ks_s, ks_t = keyspace(src, s), keyspace(tgt, tc)
    block_ms: dict[str, float] = {}
    dbs = sorted(databases) if databases else sorted(set(ks_s) | set(ks_t)) or [0]
    per_db: list[dict[str, t.Any]] = []
    differences: list[dict[str, t.Any]] = []
    total_checked = 0
    total_differing = 0
    for db in dbs:
        sdb = _redis_client.connect(src, db)
        tdb = _redis_client.connect(tgt, db)
        checked = 0
        suspects: list[tuple[bytes, str]] = []
        if sample:
            pipe = sdb.pipeline(transaction=False)
            for _i in range(sample):
                pipe.randomkey()
            picked = [k for k in dict.fromkeys(call(src, f"RANDOMKEY in db{db}", pipe.execute)) if k is not None]
            batches: t.Iterable[list[bytes]] = (picked[i:i + batch_size] for i in range(0, len(picked), batch_size))
        else:
            batches = _scan_batches(src, sdb, db, batch_size)
        state: dict[str, t.Any] = {"block_ms": block_ms}
        for keys in batches:
            n, bad = _check_batch(src, sdb, tgt, tdb, db, keys, ttl_tolerance_ms, state)
            checked += n
            suspects.extend(bad)
        confirmed: list[tuple[bytes, str]] = []
        if suspects:
            sleep(recheck_delay)
            for i in range(0, len(suspects), batch_size):
                _n, bad = _check_detailed(src, sdb, tgt, tdb, db, [k for k, _p in suspects[i:i + batch_size]],
                                          ttl_tolerance_ms)
                confirmed.extend(bad)
        n_s = int(call(src, f"DBSIZE db{db}", sdb.dbsize))
        n_t = int(call(tgt, f"DBSIZE db{db}", tdb.dbsize))
        if n_s != n_t:
            sleep(recheck_delay)
            n_s = int(call(src, f"DBSIZE db{db}", sdb.dbsize))
            n_t = int(call(tgt, f"DBSIZE db{db}", tdb.dbsize))
        entry = {"db": db, "keys_source": n_s, "keys_target": n_t, "checked": checked, "differing": len(confirmed),
                 "count_matches": n_s == n_t}
        per_db.append(entry)
        total_checked += checked
        total_differing += len(confirmed)
        if n_s != n_t and len(differences) < max_differences:
            differences.append({"db": db, "key": None, "problem": f"key count {n_s} on source, {n_t} on target"})
        for key, problem in confirmed:
            if len(differences) >= max_differences:
                break
            differences.append({"db": db, "key": show_key(key), "problem": problem})
    seconds = clock() - started
    ok = total_differing == 0 and all(e["count_matches"] for e in per_db)
    return {"changed": False, "mode": "verify", "verified": ok, "method": "sample" if sample else "full",
            "databases": per_db, "checked_keys": total_checked, "differing_keys": total_differing,
            "differences": differences, "duration_seconds": round(seconds, 3),
            "keys_per_second": round(total_checked / seconds, 1) if seconds > 0 else None,
            "batch_size": batch_size,
            "longest_block_ms": round(max(block_ms.values()), 2) if block_ms else None,
            "block_ms": {label: round(ms, 2) for label, ms in sorted(block_ms.items())},
            "msg": "source and target match" if ok
            else f"{total_differing} keys differ, counts match: {all(e['count_matches'] for e in per_db)} "
                 f"(first {len(differences)} differences listed)"}


def _scan_batches(ep: Endpoint, client: t.Any, db: int, batch_size: int) -> t.Iterator[list[bytes]]:
    cursor = 0
    pending: list[bytes] = []
    while True:
        cursor, keys = call(ep, f"SCAN db{db}", client.scan, cursor, count=batch_size)
        pending.extend(keys)
        if len(pending) >= batch_size:
            yield pending
            pending = []
        if int(cursor) == 0:
            break
    if pending:
        yield pending
