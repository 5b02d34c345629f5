"""Redis migration plumbing for sophia.migrate.redis_migrate (redis-py).

Four operations, each a plain function returning a result dict with the figures an operator
(and the migration ledger) needs next:

* ``replicate``: make the target a replica of the source (``REPLICAOF`` + ``masterauth``), wait for
  the initial sync and for the replication offset to catch up, and on request cut over: either
  ``FAILOVER TO`` the target (both in one replication setup, the source sees the target's address)
  or pause writers on the source (``CLIENT PAUSE WRITE``), wait for offset equality and promote the
  target (``REPLICAOF NO ONE``); optionally the old source then replicates from the new primary
  (the way back). Every wait has a deadline; on a timeout nothing is promoted.
* ``dump_copy``: ``SCAN`` + ``DUMP``/``RESTORE`` pipelined, TTLs preserved, resumable from a cursor
  kept in the migration ledger (for targets that cannot replicate, e.g. managed Redis).
* ``rdb_backup``: stream an RDB snapshot over the replication protocol (what ``redis-cli --rdb``
  does) into a local file, hashing while streaming (sha256); atomic rename, mode 0600.
* ``verify``: full or sampled comparison per database: key count, type, TTL within a tolerance,
  value (``DUMP`` payload, then a type-aware read when payload encodings differ).

Errors are raised as ``RedisMigrateError`` with a message naming the server and what was attempted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import socket
import ssl
import time
import typing as t
import uuid

from ansible_collections.sophia.migrate.plugins.module_utils import _ledger
from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_open, sha256_file

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    HAS_REDIS = True
    REDIS_IMPORT_ERROR: str | None = None
except ImportError as _exc:  # pragma: no cover - exercised only without redis-py
    redis = None  # type: ignore[assignment]
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = str(_exc)

MODES = ("replicate", "dump", "rdb", "verify")
CUTOVER_METHODS = ("auto", "failover", "pause")
PROGRESS_SAMPLES = 60


class RedisMigrateError(Exception):
    """A migration step that failed; the message names the server and the step."""

    def __init__(self, msg: str, transient: bool = False, **facts: t.Any) -> None:
        super().__init__(msg)
        self.transient = transient  # the server could not be reached (may come back)
        self.facts = facts


@dataclasses.dataclass
class Endpoint:
    """How to reach one Redis server. ``label`` is the option name (source/target)."""

    label: str
    host: str = "127.0.0.1"
    port: int = 6379
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_ca_path: str | None = None
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    tls_verify: bool = True
    connect_timeout: float = 5.0

    @classmethod
    def from_params(cls, label: str, params: dict[str, t.Any] | None) -> Endpoint:
        fields = {f.name for f in dataclasses.fields(cls)} - {"label"}
        return cls(label=label, **{k: v for k, v in (params or {}).items() if k in fields and v is not None})

    @property
    def name(self) -> str:
        return f"{self.label} {self.host}:{self.port}"

    def public(self) -> dict[str, t.Any]:
        return {"host": self.host, "port": self.port, "username": self.username, "tls": self.tls}


# --------------------------------------------------------------------------- connections


def describe_error(ep: Endpoint, what: str, exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    low = text.lower()
    if (redis is not None and isinstance(exc, redis.AuthenticationError)) or any(
        s in low for s in ("wrongpass", "noauth", "invalid password", "invalid username-password")
    ):
        return (f"{ep.name}: authentication failed while {what} ({text}); "
                f"check options {ep.label}.username and {ep.label}.password")
    if redis is not None and isinstance(exc, redis.exceptions.NoPermissionError):
        return f"{ep.name}: the ACL user lacks a permission needed while {what} ({text}); check {ep.label}.username"
    if (redis is not None and isinstance(exc, (redis.ConnectionError, redis.TimeoutError))) or isinstance(
        exc, OSError
    ):
        return f"{ep.name}: cannot reach the server while {what} ({text}); check {ep.label}.host/{ep.label}.port/TLS"
    return f"{ep.name}: {what} failed: {text}"


def call(ep: Endpoint, what: str, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
    """Run ``fn`` and turn any client error into a RedisMigrateError naming ``ep`` and ``what``."""
    try:
        return fn(*args, **kwargs)
    except RedisMigrateError:
        raise
    except Exception as exc:
        if (redis is not None and isinstance(exc, redis.RedisError)) or isinstance(exc, OSError):
            transient = isinstance(exc, OSError) or (
                redis is not None and isinstance(exc, (redis.ConnectionError, redis.TimeoutError))
                and not isinstance(exc, redis.AuthenticationError))
            raise RedisMigrateError(describe_error(ep, what, exc), transient=transient) from exc
        raise


def connect(ep: Endpoint, db: int = 0, socket_timeout: float = 30.0) -> t.Any:
    """A redis-py client for ``ep`` (bytes responses, no client-side retries), checked with PING."""
    kwargs: dict[str, t.Any] = {
        "host": ep.host, "port": ep.port, "db": db, "username": ep.username, "password": ep.password,
        "socket_connect_timeout": ep.connect_timeout, "socket_timeout": socket_timeout,
        "retry": Retry(NoBackoff(), 0), "decode_responses": False,
    }
    if ep.tls:
        kwargs.update(ssl=True, ssl_ca_certs=ep.tls_ca_path, ssl_certfile=ep.tls_cert_path,
                      ssl_keyfile=ep.tls_key_path, ssl_cert_reqs="required" if ep.tls_verify else "none",
                      ssl_check_hostname=ep.tls_verify)
    client = redis.Redis(**kwargs)
    call(ep, "connecting (PING)", client.ping)
    return client


def info(ep: Endpoint, client: t.Any, section: str) -> dict[str, t.Any]:
    return call(ep, f"reading INFO {section}", client.info, section)


def keyspace(ep: Endpoint, client: t.Any) -> dict[int, int]:
    """Keys per database from INFO keyspace: {0: 123, 3: 7}."""
    data = info(ep, client, "keyspace")
    out: dict[int, int] = {}
    for name, value in data.items():
        if str(name).startswith("db") and isinstance(value, dict):
            out[int(str(name)[2:])] = int(value.get("keys", 0))
    return out


def total_keys(ks: dict[int, int]) -> int:
    return sum(ks.values())


def keyspace_public(ks: dict[int, int]) -> dict[str, int]:
    return {f"db{db}": n for db, n in sorted(ks.items())}


def show_key(key: bytes | str) -> str:
    return key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)


def _s(value: t.Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------- replication


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
    return next((_s(v) for k, v in raw.items() if _s(k) == name), "")


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


def replicate(src: Endpoint, tgt: Endpoint, opts: ReplicateOptions, check_mode: bool = False,
              clock: t.Callable[[], float] = time.monotonic,
              sleep: t.Callable[[float], None] = time.sleep) -> dict[str, t.Any]:
    """mode=replicate: see the module documentation."""
    started = clock()
    s = connect(src)
    tc = connect(tgt)
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


# --------------------------------------------------------------------------- dump / restore


def _db_list(ep: Endpoint, client: t.Any, databases: list[int] | None) -> list[int]:
    return sorted(databases) if databases else sorted(keyspace(ep, client)) or [0]


CHECKPOINT_FIELDS = ("db", "cursor", "copied", "run_id", "databases", "source", "target")


def server_identity(ep: Endpoint, client: t.Any) -> dict[str, t.Any]:
    """Which server this is: the address we reach it at, its ``run_id`` (new at every start) and its
    ``master_replid`` (new at every start and promotion), from INFO server / INFO replication."""
    return {"address": f"{ep.host}:{ep.port}", "run_id": _s(info(ep, client, "server").get("run_id", "")),
            "master_replid": _s(info(ep, client, "replication").get("master_replid", ""))}


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
    s = connect(src)
    tc = connect(tgt)
    dbs = _db_list(src, s, databases)
    result: dict[str, t.Any] = {"changed": False, "mode": "dump", "databases": dbs}
    identity = {"source": server_identity(src, s), "target": server_identity(tgt, tc)}
    checkpoint: dict[str, t.Any] | None = None
    where = f"ledger {ledger_path}, state key '{ledger_step}'"
    if ledger_path:
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
                return result
            checkpoint = ledger.get("state", {}).get(ledger_step)
        except _ledger.LedgerError as exc:
            raise RedisMigrateError(f"option ledger_path: {exc}") from exc
    if checkpoint is not None:
        wrong = checkpoint_mismatches(checkpoint, identity["source"], identity["target"], dbs)
        if wrong:
            raise RedisMigrateError(
                f"the dump checkpoint in {where} does not belong to this copy: {'; '.join(wrong)}. "
                "Nothing was copied. If the checkpoint is stale, remove it (sophia.migrate.ledger "
                f"operation=set_state key={ledger_step} value=null) and run again: a new copy starts from "
                "the beginning and refuses a non-empty target unless overwrite_target=true")
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
    batches = 0

    def save(db: int, cursor: int) -> None:
        if ledger_path:
            try:
                _ledger.set_state(ledger_path, ledger_step, {"db": db, "cursor": cursor, "copied": copied,
                                                             "skipped": skipped, "databases": dbs,
                                                             "run_id": run_id, **identity})
            except _ledger.LedgerError as exc:
                raise RedisMigrateError(f"option ledger_path: {exc}") from exc

    result["changed"] = True
    for db in dbs:
        if db < start_db:
            continue
        sdb = connect(src, db)
        tdb = connect(tgt, db)
        cursor = start_cursor if db == start_db else 0
        first = True
        while first or cursor != 0:
            first = False
            cursor, keys = call(src, f"SCAN db{db}", sdb.scan, cursor, count=batch_size)
            cursor = int(cursor)
            if keys:
                n, k = _copy_batch(src, sdb, tgt, tdb, db, keys, replace)
                copied += n
                skipped += k
            batches += 1
            save(db, cursor)
            if stop_after_batches is not None and batches >= stop_after_batches and cursor != 0:
                result.update(interrupted=True, keys_copied=copied, batches=batches,
                              checkpoint={"db": db, "cursor": cursor})
                return result
        save(dbs[dbs.index(db) + 1] if db != dbs[-1] else db, 0)
    seconds = clock() - started
    figures = {"keys_copied": copied, "keys_skipped": skipped, "batches": batches,
               "duration_seconds": round(seconds, 3),
               "keys_per_second": round(copied / seconds, 1) if seconds > 0 else None,
               "source_keys": result["source_keys"],
               "target_keys": keyspace_public({db: n for db, n in keyspace(tgt, tc).items() if db in dbs}),
               "run_id": run_id, "source_address": identity["source"]["address"],
               "target_address": identity["target"]["address"]}
    result.update(figures)
    if ledger_path:
        try:
            _ledger.record(ledger_path, ledger_step, "done", data=figures,
                           undo={"action": "redis_flush_target", "target": f"{tgt.host}:{tgt.port}", "databases": dbs})
        except _ledger.LedgerError as exc:
            raise RedisMigrateError(f"option ledger_path: {exc}") from exc
    result["msg"] = f"copied {copied} keys"
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


# --------------------------------------------------------------------------- RDB backup


class _Reader:
    """Buffered reads from a socket (RESP lines and raw byte runs)."""

    def __init__(self, sock: t.Any) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf and b"\n" not in self.buf:
            self._fill()
        idx = self.buf.index(b"\n")
        line, self.buf = self.buf[: idx + 1], self.buf[idx + 1:]
        return line.rstrip(b"\r\n")

    def chunks(self, n: int) -> t.Iterator[bytes]:
        while n > 0:
            if not self.buf:
                self._fill()
            piece, self.buf = self.buf[:n], self.buf[n:]
            n -= len(piece)
            yield piece

    def until_mark(self, mark: bytes) -> t.Iterator[bytes]:
        """Yield data up to (not including) ``mark``; keeps a tail so a split mark is found."""
        while True:
            idx = self.buf.find(mark)
            if idx >= 0:
                data, self.buf = self.buf[:idx], self.buf[idx + len(mark):]
                if data:
                    yield data
                return
            if len(self.buf) > len(mark):
                cut = len(self.buf) - len(mark)
                yield self.buf[:cut]
                self.buf = self.buf[cut:]
            self._fill()


def _resp(*args: str | bytes | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _open_socket(ep: Endpoint, timeout: float) -> t.Any:
    sock = socket.create_connection((ep.host, ep.port), timeout=ep.connect_timeout)
    sock.settimeout(timeout)
    if ep.tls:
        ctx = ssl.create_default_context(cafile=ep.tls_ca_path)
        if not ep.tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if ep.tls_cert_path:
            ctx.load_cert_chain(ep.tls_cert_path, ep.tls_key_path)
        sock = ctx.wrap_socket(sock, server_hostname=ep.host)
    return sock


def read_rdb_stream(reader: _Reader, handle: t.BinaryIO) -> tuple[int, str]:
    """After SYNC: read the bulk header ($<len> or $EOF:<mark>) and copy the RDB; returns (size, sha256)."""
    while True:
        header = reader.line()
        if header == b"":  # keep-alive newlines while the server prepares the snapshot
            continue
        if header.startswith(b"-"):
            raise RedisMigrateError(f"server refused SYNC: {header[1:].decode(errors='replace')}")
        if header.startswith(b"$"):
            break
        if header.startswith(b"+"):  # e.g. +FULLRESYNC, not sent for SYNC but harmless
            continue
        raise RedisMigrateError(f"unexpected reply to SYNC: {header[:60]!r}")
    digest = hashlib.sha256()
    size = 0
    eof = header.startswith(b"$EOF:")
    stream = reader.until_mark(header[5:]) if eof else reader.chunks(int(header[1:]))
    for piece in stream:
        if size == 0 and not piece.startswith(b"REDIS"[: len(piece)]):
            raise RedisMigrateError("the stream after SYNC is not an RDB file (no REDIS magic)")
        digest.update(piece)
        handle.write(piece)
        size += len(piece)
    if size < 9:
        raise RedisMigrateError(f"the RDB received is too short ({size} bytes)")
    return size, digest.hexdigest()


def rdb_backup(src: Endpoint, dest: str, force: bool = False, check_mode: bool = False, timeout: float = 600.0,
               clock: t.Callable[[], float] = time.monotonic) -> dict[str, t.Any]:
    """mode=rdb: the source's RDB snapshot to ``dest`` over the replication protocol (like redis-cli --rdb)."""
    started = clock()
    result: dict[str, t.Any] = {"changed": False, "mode": "rdb", "path": dest}
    if os.path.exists(dest) and not force:
        result.update(sha256=sha256_file(dest), size_bytes=os.path.getsize(dest),
                      msg="the backup file exists already (force=true takes a new one)")
        return result
    directory = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(directory):
        raise RedisMigrateError(f"option dest: directory {directory} does not exist")
    client = connect(src)
    ks = keyspace(src, client)
    offset = int(info(src, client, "replication").get("master_repl_offset", 0))
    result.update(source=src.public(), keys=keyspace_public(ks), keys_total=total_keys(ks), source_offset=offset)
    if check_mode:
        result.update(changed=True, msg=f"would write an RDB snapshot of {total_keys(ks)} keys to {dest}")
        return result
    with atomic_open(dest, 0o600) as handle:  # hashed while it streams (read_rdb_stream), never read back
        sock = call(src, "opening a connection for SYNC", _open_socket, src, timeout)
        try:
            reader = _Reader(sock)
            if src.password:
                auth = ("AUTH", src.username, src.password) if src.username else ("AUTH", src.password)
                sock.sendall(_resp(*auth))
                reply = reader.line()
                if not reply.startswith(b"+"):
                    raise RedisMigrateError(describe_error(src, "authenticating for SYNC",
                                                           Exception(reply.decode(errors="replace"))))
            sock.sendall(_resp("REPLCONF", "rdb-only", "1"))
            reader.line()  # older servers answer -ERR: harmless, they simply stream commands afterwards
            sock.sendall(_resp("SYNC"))
            size, sha = call(src, "receiving the RDB snapshot (SYNC)", read_rdb_stream, reader, handle)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
    seconds = clock() - started
    result.update(changed=True, sha256=sha, size_bytes=size, duration_seconds=round(seconds, 3),
                  msg=f"wrote {size} bytes ({total_keys(ks)} keys) to {dest}")
    return result


# --------------------------------------------------------------------------- verify


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
    return [(_s(raw[3 * i]), int(raw[3 * i + 1]), raw[3 * i + 2]) for i in range(len(keys))]


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
    s = connect(src)
    tc = connect(tgt)
    ks_s, ks_t = keyspace(src, s), keyspace(tgt, tc)
    block_ms: dict[str, float] = {}
    dbs = sorted(databases) if databases else sorted(set(ks_s) | set(ks_t)) or [0]
    per_db: list[dict[str, t.Any]] = []
    differences: list[dict[str, t.Any]] = []
    total_checked = 0
    total_differing = 0
    for db in dbs:
        sdb = connect(src, db)
        tdb = connect(tgt, db)
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
