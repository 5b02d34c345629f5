"""Redis replication for sophia.migrate.redis_migrate mode=replicate: replica, catch-up and cutover.

``replicate`` makes the target a replica of the source (``REPLICAOF`` + ``masterauth``), waits for the
initial sync and for the replication offset to catch up, and on request cuts over: either ``FAILOVER TO``
the target (both in one replication setup, the source sees the target's address) or pause writers on the
source (``CLIENT PAUSE WRITE``), wait for offset equality and promote the target (``REPLICAOF NO ONE``);
optionally the old source then replicates from the new primary (the way back). Every wait has a deadline;
on a timeout nothing is promoted. The credentials the migration gives a server to replicate go again once
it no longer replicates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import time
import typing as t

# connect is looked up at call time (_redis_client.connect): the unit tests put fake servers in its place
from ansible_collections.sophia.migrate.plugins.module_utils import _redis_client
from ansible_collections.sophia.migrate.plugins.module_utils._redis_client import (
    Endpoint,
    RedisMigrateError,
    as_text,
    call,
    info,
    keyspace,
    keyspace_public,
    total_keys,
)

CUTOVER_METHODS = ("auto", "failover", "pause")
PROGRESS_SAMPLES = 60


@dataclasses.dataclass
class ReplicateOptions:
    cutover: bool = False
    cutover_method: str = "auto"
    way_back: bool = True
    replicaof_host: str | None = None  # how the target reaches the source (default: source host/port)
    replicaof_port: int | None = None
    way_back_host: str | None = None  # how the old source reaches the target (default: target host/port)
    way_back_port: int | None = None
    sync_timeout: float = 600.0
    cutover_timeout: float = 30.0
    overwrite_target: bool = False
    poll_interval: float = 0.2  # the longest pause between two looks at the servers (see Pacer)


class Pacer:
    """How long to wait before the next look at the servers: short at first, longer while nothing changes.

    The pause is ``fraction`` of the time spent in the current phase, between ``first`` and ``cap``
    seconds, so a phase that ends is seen within about ``fraction`` of its own length (a 2 s full sync
    within ~40 ms, a 0.2 s one within ~5 ms) while a long sync is looked at no more than 1/``cap``
    times a second. ``reset`` starts a new phase (the link came up, the offset moved): the pause is
    short again.
    """

    def __init__(self, cap: float, clock: t.Callable[[], float], first: float = 0.005,
                 fraction: float = 0.02) -> None:
        self.cap = max(cap, first)
        self.first = first
        self.fraction = fraction
        self.clock = clock
        self.since = clock()
        self.looks = 0

    def reset(self) -> None:
        self.since = self.clock()

    def pause(self, deadline: float | None = None) -> float:
        """The next pause (never past ``deadline``, never negative)."""
        self.looks += 1
        now = self.clock()
        delay = min(self.cap, max(self.first, self.fraction * (now - self.since)))
        if deadline is not None:
            delay = min(delay, max(deadline - now, 0.0))
        return delay


def replication_state(si: dict[str, t.Any], ti: dict[str, t.Any], up: tuple[str, int],
                      back: tuple[str, int]) -> str:
    """'cut_over', 'replicating' or 'independent' from the two INFO replication sections."""
    if (ti.get("role") == "master" and si.get("role") == "slave"
            and (str(si.get("master_host")), int(si.get("master_port", 0))) == back):
        return "cut_over"
    if ti.get("role") == "slave" and (str(ti.get("master_host")), int(ti.get("master_port", 0))) == up:
        return "replicating"
    return "independent"


def replica_entries(si: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The ``slaveN`` entries of a primary's INFO replication (redis-py parses them into dicts)."""
    out = []
    for key, value in si.items():
        if str(key).startswith("slave") and str(key)[5:].isdigit() and isinstance(value, dict):
            out.append(value)
    return out


def find_replica(si: dict[str, t.Any], host: str, port: int) -> dict[str, t.Any] | None:
    """The source's view of the target (ip/port as the source sees it), or None."""
    try:
        addresses = {ai[4][0] for ai in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except OSError:
        addresses = set()
    addresses.add(host)
    for entry in replica_entries(si):
        if int(entry.get("port", 0)) == int(port) and str(entry.get("ip")) in addresses:
            return entry
    return None


def offsets(ep_s: Endpoint, s: t.Any, ep_t: Endpoint, tc: t.Any) -> tuple[dict[str, t.Any], dict[str, t.Any], int, int]:
    """Read the source first, then the target: target_offset >= source_offset means caught up."""
    si = info(ep_s, s, "replication")
    ti = info(ep_t, tc, "replication")
    return si, ti, int(si.get("master_repl_offset", 0)), int(ti.get("slave_repl_offset", -1))


def wait_caught_up(ep_s: Endpoint, s: t.Any, ep_t: Endpoint, tc: t.Any, timeout: float, poll: float,
                   clock: t.Callable[[], float] = time.monotonic,
                   sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    """Wait until the target's link is up, its sync done and its offset has reached the source's.

    ``poll`` is the longest pause between two looks; the pauses start at a few milliseconds and grow
    with the time spent in the current phase (see Pacer), so the end of the sync is seen within a few
    percent of its length instead of up to ``poll`` late.
    """
    start = clock()
    deadline = start + timeout
    pacer = Pacer(poll, clock)
    phase: tuple[t.Any, ...] | None = None
    progress: list[dict[str, t.Any]] = []
    synced_at: float | None = None
    last_sample = -1.0
    ti: dict[str, t.Any] = {}
    lag = None
    unreachable_since: float | None = None
    while True:
        now = clock()
        try:
            _si, ti, s_off, t_off = offsets(ep_s, s, ep_t, tc)
            unreachable_since = None
        except RedisMigrateError as exc:
            # a source (or target) restarting is waited for until the deadline, never promoted past
            if not exc.transient or now >= deadline:
                raise RedisMigrateError(f"{exc}; nothing was promoted", progress=progress) from exc
            if unreachable_since is None:
                unreachable_since = now
                progress.append({"t": round(now - start, 2), "link": "down", "unreachable": str(exc)})
                del progress[:-PROGRESS_SAMPLES]
            sleep(pacer.pause(deadline))
            continue
        if ti.get("role") != "slave":
            raise RedisMigrateError(f"{ep_t.name}: stopped being a replica while waiting for the sync "
                                    f"(role {ti.get('role')}); someone else changed it")
        link_up = ti.get("master_link_status") == "up" and not int(ti.get("master_sync_in_progress", 0))
        now_phase = (ti.get("master_link_status"), int(ti.get("master_sync_in_progress", 0)))
        if now_phase != phase:  # link up, sync started or over: the next event may be close, look often again
            phase = now_phase
            pacer.reset()
        lag = s_off - t_off if link_up else None
        if link_up and synced_at is None:
            synced_at = now
        if now - last_sample >= 1.0:
            last_sample = now
            sample = {"t": round(now - start, 2), "link": ti.get("master_link_status"),
                      "sync_in_progress": bool(int(ti.get("master_sync_in_progress", 0))),
                      "source_offset": s_off, "target_offset": t_off, "lag_bytes": lag}
            if int(ti.get("master_sync_in_progress", 0)):
                sample["sync_read_bytes"] = ti.get("master_sync_read_bytes")
                sample["sync_total_bytes"] = ti.get("master_sync_total_bytes")
            progress.append(sample)
            del progress[:-PROGRESS_SAMPLES]
        if link_up and t_off >= s_off:
            return {"initial_sync_seconds": round((synced_at or now) - start, 3),
                    "caught_up_seconds": round(now - start, 3),
                    "source_offset": s_off, "target_offset": t_off, "lag_bytes": 0,
                    "looks": pacer.looks + 1, "progress": progress}
        if now >= deadline:
            detail = (f"link {ti.get('master_link_status')}, sync in progress "
                      f"{bool(int(ti.get('master_sync_in_progress', 0)))}, source offset {s_off}, "
                      f"target offset {t_off}")
            if ti.get("master_link_status") != "up":
                down = ti.get("master_link_down_since_seconds")
                detail += (f", link down for {down}s: check that the target reaches the source at "
                           f"{ti.get('master_host')}:{ti.get('master_port')} and that the source password is right")
            raise RedisMigrateError(
                f"{ep_t.name}: replication did not catch up with {ep_s.name} within {timeout:g}s ({detail}); "
                "nothing was promoted, the target is left replicating and a new run continues from here",
                progress=progress, lag_bytes=lag)
        sleep(pacer.pause(deadline))


def _role_summary(ep: Endpoint, client: t.Any) -> dict[str, t.Any]:
    ri = info(ep, client, "replication")
    out = {**ep.public(), "role": ri.get("role"), "master_repl_offset": int(ri.get("master_repl_offset", 0)),
           "keys": keyspace_public(keyspace(ep, client))}
    if ri.get("role") == "slave":
        out.update(master=f"{ri.get('master_host')}:{ri.get('master_port')}",
                   master_link_status=ri.get("master_link_status"))
    return out


def _config_value(ep: Endpoint, client: t.Any, name: str) -> str:
    raw = call(ep, f"reading {name} (CONFIG GET)", client.config_get, name) or {}
    return next((as_text(v) for k, v in raw.items() if as_text(k) == name), "")


def _replication_credentials(upstream: Endpoint) -> list[tuple[str, str]]:
    return [(name, value) for name, value in (("masterauth", upstream.password), ("masteruser", upstream.username))
            if value]


def _set_masterauth(ep: Endpoint, client: t.Any, upstream: Endpoint) -> dict[str, str]:
    """Give ``client``'s server the credentials it needs to replicate from ``upstream``.

    Returns the values these settings had before, for those this call changed (kept in memory to put
    them back once the server no longer replicates; never returned to the caller of the module).
    """
    prior: dict[str, str] = {}
    for name, value in _replication_credentials(upstream):
        before = _config_value(ep, client, name)
        if before != value:
            call(ep, f"setting {name} (CONFIG SET)", client.config_set, name, value)
            prior[name] = before
    return prior


def _unset_masterauth(ep: Endpoint, client: t.Any, upstream: Endpoint, prior: dict[str, str] | None) -> dict[str, str]:
    """``ep`` no longer replicates from ``upstream``: remove the credentials the migration gave it.

    ``prior`` holds the values before this run changed them (put back as they were: an empty one is
    cleared). A setting this run did not change but that holds exactly ``upstream``'s credential was
    set by an earlier run of the migration (replication started, cutover now) and is cleared; any
    other value was configured by someone else and is kept. Returns, per setting, what was done
    (cleared, restored, kept), never a value.
    """
    out: dict[str, str] = {}
    for name, value in _replication_credentials(upstream):
        if prior is not None and name in prior:  # this run changed it
            before = prior[name]
        elif prior is None and _config_value(ep, client, name) == value:  # an earlier run set it
            before = ""
        else:  # configured before the migration (this run found it in place), or another value
            out[name] = "kept"
            continue
        call(ep, f"{'restoring' if before else 'clearing'} {name} (CONFIG SET)", client.config_set, name, before)
        out[name] = "restored" if before else "cleared"
    return out


def _finish(result: dict[str, t.Any], state_after: str, before: dict[str, t.Any], src: Endpoint, s: t.Any,
            tgt: Endpoint, tc: t.Any, started: float, clock: t.Callable[[], float]) -> dict[str, t.Any]:
    """Complete ``result`` of a replicate run: both servers' roles as they are now, the diff, the undo."""
    result["state_after"] = state_after
    result["source"] = _role_summary(src, s)
    result["target"] = _role_summary(tgt, tc)
    after = {"source_role": result["source"]["role"], "target_role": result["target"]["role"],
             "target_master": result["target"].get("master")}
    result["diff"] = {"before": before, "after": after}
    result["duration_seconds"] = round(clock() - started, 3)
    if state_after == "cut_over":
        result["undo"] = {"action": "redis_migrate", "mode": "replicate", "cutover": True,
                          "new_primary": f"{tgt.host}:{tgt.port}", "old_primary": f"{src.host}:{src.port}",
                          "hint": "run redis_migrate again with source and target swapped to go back"}
    elif state_after == "replicating":
        result["undo"] = {"action": "redis_replicaof_no_one", "replica": f"{tgt.host}:{tgt.port}"}
    return result


def replicate(src: Endpoint, tgt: Endpoint, opts: ReplicateOptions, check_mode: bool = False,
              clock: t.Callable[[], float] = time.monotonic,
              sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    """mode=replicate: see the module documentation."""
    started = clock()
    s = _redis_client.connect(src)
    tc = _redis_client.connect(tgt)
    up = (opts.replicaof_host or src.host, int(opts.replicaof_port or src.port))
    back = (opts.way_back_host or tgt.host, int(opts.way_back_port or tgt.port))
    si = info(src, s, "replication")
    ti = info(tgt, tc, "replication")
    state = replication_state(si, ti, up, back)
    prior_t: dict[str, str] | None = None  # masterauth/masteruser of the target before this run set them
    result: dict[str, t.Any] = {"changed": False, "mode": "replicate", "state_before": state,
                                "replicaof": f"{up[0]}:{up[1]}", "cutover_requested": opts.cutover}
    t_master = f"{ti.get('master_host')}:{ti.get('master_port')}" if ti.get("role") == "slave" else None
    before = {"source_role": si.get("role"), "target_role": ti.get("role"), "target_master": t_master}

    def finish(state_after: str) -> dict[str, t.Any]:
        return _finish(result, state_after, before, src, s, tgt, tc, started, clock)

    if state == "cut_over":
        result["msg"] = "already cut over: the target is primary and the old source replicates from it"
        if not check_mode:  # the new primary keeps no replication credential a former run left on it
            cleaned = _unset_masterauth(tgt, tc, src, None)
            result["masterauth"] = {"target": cleaned}
            result["changed"] = any(v != "kept" for v in cleaned.values())
        return finish("cut_over")

    if state == "independent":
        if si.get("role") != "master":
            raise RedisMigrateError(f"{src.name}: is a replica of {si.get('master_host')}:{si.get('master_port')}, "
                                    "not a primary; point option 'source' at the primary")
        target_keys = total_keys(keyspace(tgt, tc))
        if target_keys and not opts.overwrite_target:
            raise RedisMigrateError(f"{tgt.name}: holds {target_keys} keys that replication would replace; "
                                    "set overwrite_target=true if that is intended")
        if check_mode:
            result.update(changed=True, msg=f"would make the target a replica of {up[0]}:{up[1]}"
                          + (" and cut over" if opts.cutover else ""))
            planned = {**before, "target_role": "slave", "target_master": f"{up[0]}:{up[1]}"}
            result["diff"] = {"before": before, "after": planned}
            return result
        prior_t = _set_masterauth(tgt, tc, src)
        call(tgt, f"starting replication (REPLICAOF {up[0]} {up[1]})", tc.execute_command, "REPLICAOF", up[0], up[1])
        result["changed"] = True

    if check_mode:  # replicating already; only the cutover would change something
        if opts.cutover:
            result.update(changed=True, msg="would wait for the target to catch up and cut over")
        else:
            result["msg"] = "the target already replicates from the source"
        result["state_after"] = state
        return result

    result["replication"] = wait_caught_up(src, s, tgt, tc, opts.sync_timeout, opts.poll_interval, clock, sleep)
    if not opts.cutover:
        result["msg"] = "the target replicates from the source and has caught up"
        return finish("replicating")

    result["cutover"] = cutover(src, s, tgt, tc, opts, back, clock, sleep)
    result["changed"] = True
    # The new primary replicates from nobody: the credential it used to reach the source goes (or is put back
    # as the user had it); the old source keeps its own only while it replicates (the way back).
    result["masterauth"] = {"target": _unset_masterauth(tgt, tc, src, prior_t),
                            "source": result["cutover"].pop("masterauth_source")}
    result["msg"] = f"cut over by {result['cutover']['method']}: the target is primary" + (
        ", the old source replicates from it" if opts.way_back else "")
    return finish("cut_over")


def cutover(src: Endpoint, s: t.Any, tgt: Endpoint, tc: t.Any, opts: ReplicateOptions,
            back: tuple[str, int], clock: t.Callable[[], float] = time.monotonic,
            sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    si = info(src, s, "replication")
    seen = find_replica(si, tgt.host, tgt.port)
    method = opts.cutover_method
    if method == "auto":
        method = "failover" if seen and opts.way_back and back == (tgt.host, tgt.port) else "pause"
    if method == "failover" and not seen:
        listed = [f"{e.get('ip')}:{e.get('port')}" for e in replica_entries(si)]
        raise RedisMigrateError(f"{src.name}: does not list {tgt.host}:{tgt.port} among its replicas "
                                f"({listed}), so "
                                "FAILOVER TO cannot be used; use cutover_method=pause (nothing was promoted)")
    if method == "failover" and seen is not None:
        seen = _wait_replica_online(src, s, tgt, seen, opts, clock, sleep)
    # The old primary replicates from the target during FAILOVER and, with the way back, afterwards.
    prior_s = _set_masterauth(src, s, tgt) if method == "failover" or opts.way_back else None
    try:
        if method == "failover":
            out = _cutover_failover(src, s, tgt, tc, opts, seen or {}, clock, sleep)
        else:
            out = _cutover_pause(src, s, tgt, tc, opts, back, clock, sleep)
    except RedisMigrateError:
        if prior_s:  # nothing promoted, the source still primary: it needs no replication credential
            with contextlib.suppress(RedisMigrateError):
                if info(src, s, "replication").get("role") == "master":
                    _unset_masterauth(src, s, tgt, prior_s)
        raise
    if opts.way_back:
        out["way_back"] = _wait_way_back(src, s, opts.cutover_timeout, opts.poll_interval, clock, sleep)
        out["masterauth_source"] = {name: "in use" for name, _v in _replication_credentials(tgt)}
    else:
        out["masterauth_source"] = _unset_masterauth(src, s, tgt, prior_s) if prior_s is not None else {}
    return out


def _wait_replica_online(src: Endpoint, s: t.Any, tgt: Endpoint, seen: dict[str, t.Any], opts: ReplicateOptions,
                         clock: t.Callable[[], float], sleep: t.Callable[[float], None]) -> dict[str, t.Any]:
    """The source's own view of the target must be ``online`` before FAILOVER TO (else Redis refuses it).

    The target reports its link up and its offset caught up a moment before the source has its first
    acknowledgement and lists it online (a few milliseconds on a small data set): wait for that, within
    ``cutover_timeout``; nothing is promoted on a timeout.
    """
    deadline = clock() + opts.cutover_timeout
    pacer = Pacer(opts.poll_interval / 4, clock, first=0.001)
    while str(seen.get("state", "online")) != "online":
        if clock() >= deadline:
            raise RedisMigrateError(f"{src.name}: lists {tgt.host}:{tgt.port} as '{seen.get('state')}', not online, "
                                    f"after {opts.cutover_timeout:g}s, so FAILOVER TO cannot be used yet; nothing was "
                                    "promoted (run again, or use cutover_method=pause)")
        sleep(pacer.pause(deadline))
        seen = find_replica(info(src, s, "replication"), tgt.host, tgt.port) or seen
    return seen


def _cutover_failover(src: Endpoint, s: t.Any, tgt: Endpoint, tc: t.Any, opts: ReplicateOptions,
                      seen: dict[str, t.Any], clock: t.Callable[[], float],
                      sleep: t.Callable[[float], None]) -> dict[str, t.Any]:
    start = clock()
    ms = int(opts.cutover_timeout * 1000)
    call(src, f"FAILOVER TO {seen.get('ip')} {seen.get('port')}", s.execute_command,
         "FAILOVER", "TO", seen.get("ip"), seen.get("port"), "TIMEOUT", ms)
    deadline = start + opts.cutover_timeout + 5
    pacer = Pacer(opts.poll_interval / 2, clock)
    while True:
        si = info(src, s, "replication")
        state = str(si.get("master_failover_state", "no-failover"))
        if state == "no-failover":
            if si.get("role") == "slave":
                break
            raise RedisMigrateError(f"{src.name}: FAILOVER to {tgt.host}:{tgt.port} did not complete within "
                                    f"{opts.cutover_timeout:g}s and was aborted by the server; nothing was promoted, "
                                    "the source is still primary")
        if clock() > deadline:
            with contextlib.suppress(RedisMigrateError):
                call(src, "FAILOVER ABORT", s.execute_command, "FAILOVER", "ABORT")
            raise RedisMigrateError(f"{src.name}: FAILOVER still '{state}' after {opts.cutover_timeout:g}s; "
                                    "aborted, nothing was promoted")
        sleep(pacer.pause())
    seconds = clock() - start
    ti = info(tgt, tc, "replication")
    if ti.get("role") != "master":
        raise RedisMigrateError(f"{tgt.name}: FAILOVER finished on the source but the target's role is "
                                f"{ti.get('role')}; inspect both servers")
    if not opts.way_back:
        call(src, "detaching the old source (REPLICAOF NO ONE)", s.execute_command, "REPLICAOF", "NO", "ONE")
    return {"method": "failover", "seconds": round(seconds, 3),
            "new_primary_offset": int(ti.get("master_repl_offset", 0))}


def _cutover_pause(src: Endpoint, s: t.Any, tgt: Endpoint, tc: t.Any, opts: ReplicateOptions,
                   back: tuple[str, int], clock: t.Callable[[], float],
                   sleep: t.Callable[[float], None]) -> dict[str, t.Any]:
    # The pause outlives our own wait by a margin, so no write can land on the source after the
    # target was promoted; we unpause explicitly as soon as the source is a replica (or on failure).
    pause_ms = int((opts.cutover_timeout + 10) * 1000)
    start = clock()
    call(src, "pausing writers (CLIENT PAUSE WRITE)", s.execute_command, "CLIENT", "PAUSE", pause_ms, "WRITE")
    promoted = False
    try:
        deadline = start + opts.cutover_timeout
        pacer = Pacer(opts.poll_interval / 4, clock, first=0.001)  # writers wait: look often
        while True:
            _si, ti, s_off, t_off = offsets(src, s, tgt, tc)
            if ti.get("master_link_status") == "up" and t_off >= s_off:
                break
            if clock() > deadline:
                raise RedisMigrateError(
                    f"{tgt.name}: offset {t_off} did not reach the paused source's {s_off} within "
                    f"{opts.cutover_timeout:g}s (link {ti.get('master_link_status')}); nothing was promoted, "
                    "writers were resumed on the source")
            sleep(pacer.pause())
        call(tgt, "promoting the target (REPLICAOF NO ONE)", tc.execute_command, "REPLICAOF", "NO", "ONE")
        promoted = True
        if opts.way_back:
            call(src, f"making the old source a replica (REPLICAOF {back[0]} {back[1]})",
                 s.execute_command, "REPLICAOF", back[0], back[1])
        # A write that reached the source after the offsets matched would be lost: prove there was none.
        s_after = int(info(src, s, "replication").get("master_repl_offset", 0))
        paused_for = clock() - start
        if paused_for * 1000 >= pause_ms:
            raise RedisMigrateError(f"{src.name}: the write pause ({pause_ms} ms) expired during the cutover; "
                                    "writes may have reached the old source after promotion: verify before use")
    finally:
        call(src, "resuming writers (CLIENT UNPAUSE)", s.execute_command, "CLIENT", "UNPAUSE")
    if not promoted:  # pragma: no cover - the loop above raises before
        raise RedisMigrateError(f"{tgt.name}: not promoted")
    return {"method": "pause", "seconds": round(clock() - start, 3), "write_pause_ms": round(paused_for * 1000, 1),
            "source_offset_at_promotion": s_off, "target_offset_at_promotion": t_off,
            "source_offset_after": s_after}


def _wait_way_back(src: Endpoint, s: t.Any, timeout: float, poll: float, clock: t.Callable[[], float],
                   sleep: t.Callable[[float], None]) -> dict[str, t.Any]:
    """Wait (bounded) for the old source's link to the new primary; report, do not fail."""
    start = clock()
    pacer = Pacer(poll, clock)
    while True:
        si = info(src, s, "replication")
        up = si.get("master_link_status") == "up" and not int(si.get("master_sync_in_progress", 0))
        if up or clock() - start > timeout:
            return {"source_role": si.get("role"), "master": f"{si.get('master_host')}:{si.get('master_port')}",
                    "master_link_status": si.get("master_link_status"), "seconds": round(clock() - start, 3)}
        sleep(pacer.pause())
