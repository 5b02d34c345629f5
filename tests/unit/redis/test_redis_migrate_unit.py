"""Unit tests of module_utils/_redis_*.py and the redis_migrate module (no servers: fakes and byte streams)."""

from __future__ import annotations

import hashlib
import io
import typing as t

import pytest
import redis

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _redis_client,
    _redis_rdb,
    _redis_replicate,
    _redis_verify,
)
from ansible_collections.sophia.migrate.plugins.modules import redis_migrate
from support.modules import run_module


class FakeServer:
    """Just enough of a Redis server's replication state for the decision logic."""

    def __init__(self, role: str = "master", offset: int = 0, keys: int = 0, follows: bool = True) -> None:
        self.role, self.offset, self.keys = role, offset, keys
        self.master: tuple[str, int] | None = None
        self.link = "down"
        self.paused = False
        self.follows = follows  # a replica whose offset follows its master (else: stuck)
        self.config: dict[str, str] = {}
        self.upstream: FakeServer | None = None

    def ping(self) -> bool:
        return True

    def info(self, section: str) -> dict[str, t.Any]:
        if section == "keyspace":
            return {"db0": {"keys": self.keys, "expires": 0}} if self.keys else {}
        if self.role == "slave" and self.upstream and self.follows:
            self.offset, self.link = self.upstream.offset, "up"
        out: dict[str, t.Any] = {"role": self.role, "master_repl_offset": self.offset}
        if self.role == "slave":
            out.update(master_host=self.master[0], master_port=self.master[1], master_link_status=self.link,
                       master_sync_in_progress=0, slave_repl_offset=self.offset, master_link_down_since_seconds=3)
        return out

    def config_set(self, key: str, value: str) -> bool:
        self.config[key] = value
        return True

    def config_get(self, key: str) -> dict[str, str]:
        return {key: self.config.get(key, "")}

    def execute_command(self, *args: t.Any) -> bytes:
        words = [str(a).upper() for a in args]
        if words[:3] == ["REPLICAOF", "NO", "ONE"]:
            self.role, self.master = "master", None
        elif words[0] == "REPLICAOF":
            self.role, self.master = "slave", (str(args[1]), int(args[2]))
        elif words[:2] == ["CLIENT", "PAUSE"]:
            self.paused = True
        elif words[:2] == ["CLIENT", "UNPAUSE"]:
            self.paused = False
        return b"OK"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


SRC = _redis_client.Endpoint(label="source", host="10.0.0.1", port=6379, password="x")
TGT = _redis_client.Endpoint(label="target", host="10.0.0.2", port=6380, password="y")


def _patch_connect(monkeypatch: pytest.MonkeyPatch, src: FakeServer, tgt: FakeServer) -> None:
    monkeypatch.setattr(_redis_client, "connect",
                        lambda ep, db=0, socket_timeout=30.0: src if ep.label == "source" else tgt)


@pytest.mark.parametrize(("si", "ti", "expected"), [
    ({"role": "master"}, {"role": "master"}, "independent"),
    ({"role": "master"}, {"role": "slave", "master_host": "10.0.0.1", "master_port": 6379}, "replicating"),
    ({"role": "master"}, {"role": "slave", "master_host": "10.9.9.9", "master_port": 6379}, "independent"),
    ({"role": "slave", "master_host": "10.0.0.2", "master_port": 6380}, {"role": "master"}, "cut_over"),
    ({"role": "slave", "master_host": "10.0.0.3", "master_port": 6380}, {"role": "master"}, "independent"),
])
def test_replication_state(si, ti, expected):
    assert _redis_replicate.replication_state(si, ti, ("10.0.0.1", 6379), ("10.0.0.2", 6380)) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    (("string", -1, b"p"), ("string", -1, b"p"), None),
    (("string", -1, b"p"), ("none", -2, None), "missing on target"),
    (("hash", -1, b"p"), ("string", -1, b"p"), "type hash on source, string on target"),
    (("string", 5000, b"p"), ("string", -1, b"p"), "ttl 5000 ms on source, -1 ms on target"),
    (("string", 5000, b"p"), ("string", 4000, b"p"), None),
    (("string", 9000, b"p"), ("string", 4000, b"p"), "ttl 9000 ms on source, 4000 ms on target (tolerance 2000 ms)"),
    (("hash", -1, b"p"), ("hash", -1, b"q"), "value?"),
])
def test_compare_key(a, b, expected):
    assert _redis_verify.compare_key(*a, *b, ttl_tolerance_ms=2000) == expected


def test_find_replica_matches_ip_and_port():
    si = {"role": "master", "slave0": {"ip": "127.0.0.1", "port": 7001, "state": "online"}}
    assert _redis_replicate.find_replica(si, "127.0.0.1", 7001) == si["slave0"]
    assert _redis_replicate.find_replica(si, "127.0.0.1", 7002) is None


class ChunkSocket:
    def __init__(self, data: bytes, size: int = 7) -> None:
        self.data, self.size = data, size

    def recv(self, _n: int) -> bytes:
        piece, self.data = self.data[: self.size], self.data[self.size:]
        return piece


RDB = b"REDIS0010" + bytes(range(256)) * 3 + b"\xff" + b"12345678"


@pytest.mark.parametrize("framing", ["length", "eof"])
@pytest.mark.parametrize("size", [1, 7, 4096])
def test_read_rdb_stream(framing, size):
    mark = b"m" * 40
    if framing == "length":
        wire = b"\n\n$%d\r\n" % len(RDB) + RDB + b"*1\r\n$4\r\nPING\r\n"
    else:
        wire = b"\n$EOF:" + mark + b"\r\n" + RDB + mark
    out = io.BytesIO()
    n, sha = _redis_rdb.read_rdb_stream(_redis_rdb._Reader(ChunkSocket(wire, size)), out)
    assert out.getvalue() == RDB and n == len(RDB) and sha == hashlib.sha256(RDB).hexdigest()


@pytest.mark.parametrize(("wire", "message"), [
    (b"-NOPERM this user has no permissions\r\n", "server refused SYNC"),
    (b"$20\r\nNOTREDIS000000000000", "not an RDB file"),
    (b"$5\r\nREDI", "connection closed"),
])
def test_read_rdb_stream_errors(wire, message):
    with pytest.raises((_redis_client.RedisMigrateError, ConnectionError), match=message):
        _redis_rdb.read_rdb_stream(_redis_rdb._Reader(ChunkSocket(wire)), io.BytesIO())


def test_describe_error_names_the_option_and_hides_nothing_secret():
    msg = _redis_client.describe_error(SRC, "connecting", redis.AuthenticationError("invalid username-password pair"))
    assert msg.startswith("source 10.0.0.1:6379: authentication failed while connecting")
    assert "source.password" in msg and "x" not in msg.split("(")[0].replace("source", "")
    assert "cannot reach" in _redis_client.describe_error(TGT, "INFO", redis.ConnectionError("refused"))


def test_wait_times_out_clearly_without_promoting():
    src, tgt = FakeServer(offset=500), FakeServer(role="slave", follows=False)
    tgt.master, tgt.link = ("10.0.0.1", 6379), "down"
    clock = Clock()
    with pytest.raises(_redis_client.RedisMigrateError) as err:
        _redis_replicate.wait_caught_up(SRC, src, TGT, tgt, timeout=5, poll=0.5, clock=clock, sleep=clock.sleep)
    assert "did not catch up" in str(err.value) and "nothing was promoted" in str(err.value)
    assert "link down" in str(err.value) and tgt.role == "slave"
    assert err.value.facts["progress"]


def test_pause_cutover_timeout_resumes_writers_and_promotes_nothing():
    src, tgt = FakeServer(offset=900), FakeServer(role="slave", offset=100, follows=False)
    tgt.master, tgt.link = ("10.0.0.1", 6379), "up"
    clock = Clock()
    opts = _redis_replicate.ReplicateOptions(cutover_timeout=2)
    with pytest.raises(_redis_client.RedisMigrateError, match="nothing was promoted"):
        _redis_replicate._cutover_pause(SRC, src, TGT, tgt, opts, ("10.0.0.2", 6380), clock, clock.sleep)
    assert tgt.role == "slave" and src.role == "master" and src.paused is False


def test_replicate_and_pause_cutover_with_way_back(monkeypatch):
    src, tgt = FakeServer(offset=1000, keys=5), FakeServer()
    tgt.upstream = src
    _patch_connect(monkeypatch, src, tgt)
    clock = Clock()
    result = _redis_replicate.replicate(SRC, TGT,
                                        _redis_replicate.ReplicateOptions(cutover=True, cutover_method="auto"),
                                        clock=clock, sleep=clock.sleep)
    assert result["state_before"] == "independent" and result["state_after"] == "cut_over"
    assert result["cutover"]["method"] == "pause"  # the fake source lists no replica: FAILOVER TO is not possible
    assert tgt.role == "master" and src.role == "slave" and src.master == ("10.0.0.2", 6380)
    # the new primary no longer holds the source's password; the old source replicates with the target's
    assert tgt.config["masterauth"] == "" and src.config["masterauth"] == "y" and src.paused is False
    assert result["masterauth"] == {"target": {"masterauth": "cleared"}, "source": {"masterauth": "in use"}}
    assert result["undo"]["new_primary"] == "10.0.0.2:6380"


def test_module_check_mode_and_refusals(monkeypatch, capsys):
    src, tgt = FakeServer(keys=5), FakeServer()
    _patch_connect(monkeypatch, src, tgt)
    args = {"source": {"host": "10.0.0.1", "password": "x"}, "target": {"host": "10.0.0.2", "port": 6380}}
    result = run_module(redis_migrate, {**args, "cutover": True}, capsys, check_mode=True)
    assert result["changed"] is True and tgt.role == "master" and not tgt.config
    tgt.keys = 3
    refused = run_module(redis_migrate, args, capsys)
    assert refused["failed"] and "holds 3 keys" in refused["msg"] and tgt.role == "master"
    tgt.keys, src.role, src.master = 0, "slave", ("10.0.0.9", 6379)
    replica = run_module(redis_migrate, args, capsys)
    assert replica["failed"] and "not a primary" in replica["msg"]


@pytest.mark.parametrize(("args", "message"), [
    ({"mode": "verify", "source": {}}, "option 'target' is required when mode=verify"),
    ({"mode": "rdb", "source": {}}, "option 'dest' is required when mode=rdb"),
    ({"mode": "nope", "source": {}}, "value of mode must be one of"),
])
def test_module_argument_errors(args, message, capsys):
    result = run_module(redis_migrate, args, capsys)
    assert result["failed"] and message in result["msg"]


def test_module_password_is_not_logged(monkeypatch, capsys):
    def refuse(ep: _redis_client.Endpoint, db: int = 0, socket_timeout: float = 30.0) -> t.NoReturn:
        raise _redis_client.RedisMigrateError(_redis_client.describe_error(ep, "connecting (PING)",
                                                                           redis.AuthenticationError("WRONGPASS")))

    monkeypatch.setattr(_redis_client, "connect", refuse)
    result = run_module(redis_migrate, {"source": {"password": "hunter2-secret"}, "target": {}}, capsys)
    assert result["failed"] and "authentication failed" in result["msg"]
    assert "hunter2-secret" not in repr(result)


@pytest.mark.parametrize(("a", "b", "match"), [
    (b"abc -1", b"abc -1", True),
    (b"abc 5000", b"abc 4100", True),
    (b"abc 5000", b"abc 1000", False),
    (b"abc 5000", b"abc -1", False),
    (b"abc -1", b"abd -1", False),
    (b"- -2", b"- -2", True),
    (b"abc -1", b"- -2", False),
])
def test_digest_lines_match(a, b, match):
    assert _redis_verify._lines_match(a, b, 2000) is match


class SyncingReplica(FakeServer):
    """A replica whose full sync (link down, then sync in progress) ends at ``done_at`` on ``clock``."""

    def __init__(self, clock: Clock, done_at: float, upstream: FakeServer) -> None:
        super().__init__(role="slave")
        self.clock, self.done_at, self.upstream = clock, done_at, upstream
        self.master = ("10.0.0.1", 6379)
        self.looks = 0

    def info(self, section: str) -> dict[str, t.Any]:
        self.looks += 1
        out = super().info(section)
        if section == "replication" and self.clock() < self.done_at:
            out.update(master_link_status="down" if self.clock() < 0.1 else "up", master_sync_in_progress=1,
                       slave_repl_offset=-1)
        return out


@pytest.mark.parametrize("done_at", [0.23, 2.03, 9.97])
def test_the_end_of_the_sync_is_seen_within_a_few_percent_of_its_length(done_at):
    """Before: one look every poll_interval (0.2 s), so a sync ending at 2.03 s was seen at 2.2 s (+8%)."""
    clock = Clock()
    src = FakeServer(offset=700)
    tgt = SyncingReplica(clock, done_at, src)
    got = _redis_replicate.wait_caught_up(SRC, src, TGT, tgt, timeout=60, poll=0.2, clock=clock, sleep=clock.sleep)
    late = got["caught_up_seconds"] - done_at
    assert 0 <= late <= max(0.03 * done_at, 0.005), got["caught_up_seconds"]
    # and the servers are not hammered: 200 looks a second at first, fewer and fewer as the sync goes on
    assert got["looks"] == tgt.looks <= 50 + 200 * min(done_at, 0.5) + 20 * done_at, got["looks"]


def test_pacer_grows_with_the_phase_stays_under_the_cap_and_starts_short_after_a_reset():
    clock = Clock()
    pacer = _redis_replicate.Pacer(0.2, clock)
    pauses = []
    while clock() < 30:
        pauses.append(pacer.pause())
        clock.sleep(pauses[-1])
    assert pauses[0] == 0.005 and max(pauses) == 0.2 and pauses == sorted(pauses)
    pacer.reset()
    assert pacer.pause() == 0.005
    assert pacer.pause(deadline=clock() + 0.001) == pytest.approx(0.001)


class ScriptServer:
    """A server answering the verify's Lua script; each call 'takes' the time given for its batch size."""

    def __init__(self, timer: Clock, ms_per_key: float) -> None:
        self.timer, self.ms_per_key = timer, ms_per_key

    def execute_command(self, command: str, script: str, numkeys: int, *keys: bytes) -> bytes:
        self.timer.sleep(numkeys * self.ms_per_key / 1000)
        return b"\n".join(b"abc -1" for _k in keys)


def test_the_longest_script_block_per_server_is_kept():
    timer = Clock()
    state: dict[str, t.Any] = {}
    src, tgt = ScriptServer(timer, 0.002), ScriptServer(timer, 0.005)
    for size in (10, 400, 50):
        keys = [b"k%d" % i for i in range(size)]
        assert _redis_verify._digests(SRC, src, 0, keys, state, timer=timer) == [b"abc -1"] * size
        _redis_verify._digests(TGT, tgt, 0, keys, state, timer=timer)
    assert state["block_ms"] == {"source": pytest.approx(0.8), "target": pytest.approx(2.0)}


def test_module_refuses_a_batch_size_below_one(capsys):
    result = run_module(redis_migrate, {"mode": "verify", "source": {}, "target": {}, "batch_size": 0}, capsys)
    assert result["failed"] and "option 'batch_size' must be at least 1" in result["msg"]


class FailoverSource(FakeServer):
    """A primary that lists its replica as 'wait_bgsave' for its first ``pending`` looks, then 'online', and
    refuses FAILOVER TO a replica that is not online (as Redis does)."""

    def __init__(self, replica: FakeServer, pending: int) -> None:
        super().__init__(offset=100)
        self.replica, self.pending = replica, pending
        self.failover_state = "no-failover"

    def info(self, section: str) -> dict[str, t.Any]:
        out = super().info(section)
        if section == "replication" and self.role == "master":
            state = "online" if self.pending <= 0 else "wait_bgsave"
            self.pending -= 1
            out["slave0"] = {"ip": "10.0.0.2", "port": 6380, "state": state, "offset": self.offset, "lag": 0}
            out["master_failover_state"] = self.failover_state
        return out

    def execute_command(self, *args: t.Any) -> bytes:
        if str(args[0]).upper() == "FAILOVER" and str(args[1]).upper() == "TO":
            if self.pending > 0:
                raise redis.ResponseError("FAILOVER target replica is not online.")
            self.role, self.master, self.upstream = "slave", ("10.0.0.2", 6380), self.replica
            self.replica.role, self.replica.master, self.replica.upstream = "master", None, None
            return b"OK"
        return super().execute_command(*args)


def test_failover_waits_until_the_source_lists_the_target_online():
    """Before: FAILOVER TO was sent as soon as the target had caught up and Redis refused it
    ('FAILOVER target replica is not online') when the source had not yet had the target's first ACK."""
    tgt = FakeServer(role="slave")
    tgt.master = ("10.0.0.1", 6379)
    src = FailoverSource(tgt, pending=3)
    tgt.upstream = src
    clock = Clock()
    out = _redis_replicate.cutover(SRC, src, TGT, tgt, _redis_replicate.ReplicateOptions(cutover=True),
                                   ("10.0.0.2", 6380), clock, clock.sleep)
    assert out["method"] == "failover" and tgt.role == "master" and src.role == "slave"


def test_failover_to_a_replica_never_online_promotes_nothing():
    tgt = FakeServer(role="slave")
    tgt.master = ("10.0.0.1", 6379)
    src = FailoverSource(tgt, pending=10**9)
    clock = Clock()
    with pytest.raises(_redis_client.RedisMigrateError, match=r"not online.*nothing was promoted"):
        _redis_replicate.cutover(SRC, src, TGT, tgt, _redis_replicate.ReplicateOptions(cutover=True, cutover_timeout=2),
                                 ("10.0.0.2", 6380), clock, clock.sleep)
    assert tgt.role == "slave" and src.role == "master" and clock() >= 2
