"""Benchmark of sophia.migrate.redis_migrate on 1,000,000 keys (real redis-server processes on loopback).

1. replicate-to-caught-up time (module_utils._redis.replicate, no cutover) vs a plain
   ``redis-cli --rdb`` dump of the same data (baseline), same run.
2. verify throughput (module_utils._redis.verify, full: TYPE+PTTL+DUMP on both sides, type-aware
   re-read when payloads differ) vs a raw pipelined SCAN+DUMP loop over both servers comparing
   payloads only (baseline), same run.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_redis_migrate.py [--keys N]`` (about 1-2 minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", ".ansible", "collections"), os.path.join(HERE, "..", "tests")]

import redis  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils import _redis  # noqa: E402
from support.servers import RedisServer  # noqa: E402

EXTRA = ["--repl-diskless-sync-delay", "0"]


def fill(port: int, n: int) -> float:
    """n keys: 80% strings (a third with a TTL), 10% hashes, 10% lists; pipelined."""
    c = redis.Redis(port=port)
    start = time.monotonic()
    pipe = c.pipeline(transaction=False)
    for i in range(n):
        kind = i % 10
        if kind < 8:
            if i % 3 == 0:
                pipe.set(f"s:{i}", f"value-{i:08d}-payload", ex=86400)
            else:
                pipe.set(f"s:{i}", f"value-{i:08d}-payload")
        elif kind == 8:
            pipe.hset(f"h:{i}", mapping={"a": i, "b": "x" * 16, "c": "y"})
        else:
            pipe.rpush(f"l:{i}", "a", "b", str(i))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    assert c.dbsize() == n, c.dbsize()
    return time.monotonic() - start


def rdb_baseline(port: int, workdir: str) -> float:
    path = os.path.join(workdir, "baseline.rdb")
    start = time.monotonic()
    subprocess.run(["redis-cli", "-p", str(port), "--rdb", path], check=True, capture_output=True)
    return time.monotonic() - start


def raw_scan_dump(src_port: int, tgt_port: int, batch: int = 1000) -> tuple[int, float]:
    s, t = redis.Redis(port=src_port), redis.Redis(port=tgt_port)
    start = time.monotonic()
    checked = differing = 0
    cursor = 0
    while True:
        cursor, keys = s.scan(cursor, count=batch)
        if keys:
            ps, pt = s.pipeline(transaction=False), t.pipeline(transaction=False)
            for k in keys:
                ps.dump(k)
                pt.dump(k)
            for a, b in zip(ps.execute(), pt.execute(), strict=True):
                checked += 1
                differing += a != b
        if cursor == 0:
            break
    assert differing == 0, differing
    return checked, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    n = parser.parse_args().keys
    with tempfile.TemporaryDirectory(prefix="sophia-redis-bench-") as workdir, \
            RedisServer(extra=EXTRA) as src, RedisServer(extra=EXTRA) as tgt:
        print(f"fill: {n} keys in {fill(src.port, n):.1f}s")
        used = redis.Redis(port=src.port).info("memory")["used_memory_human"]
        base_rdb = rdb_baseline(src.port, workdir)
        print(f"baseline  redis-cli --rdb:             {base_rdb:7.2f}s  ({used} in memory)")
        ep_s = _redis.Endpoint(label="source", port=src.port)
        ep_t = _redis.Endpoint(label="target", port=tgt.port)
        start = time.monotonic()
        rep = _redis.replicate(ep_s, ep_t, _redis.ReplicateOptions(cutover=False, poll_interval=0.05))
        rep_s = time.monotonic() - start
        assert rep["target"]["keys"] == {"db0": n}, rep["target"]["keys"]
        print(f"module    replicate to caught-up:      {rep_s:7.2f}s  (initial sync "
              f"{rep['replication']['initial_sync_seconds']:.2f}s)")
        print(f"ratio     replicate / redis-cli --rdb:  {rep_s / base_rdb:6.2f}x")
        checked, raw_s = raw_scan_dump(src.port, tgt.port)
        raw_rate = checked / raw_s
        print(f"baseline  raw SCAN+DUMP compare:       {raw_s:7.2f}s  {raw_rate:10.0f} keys/s ({checked} keys)")
        res = _redis.verify(ep_s, ep_t)
        assert res["verified"], res["differences"]
        rate = res["checked_keys"] / res["duration_seconds"]
        print(f"module    verify (full):               {res['duration_seconds']:7.2f}s  {rate:10.0f} keys/s "
              f"({res['checked_keys']} keys)")
        print(f"ratio     verify / raw SCAN+DUMP throughput: {rate / raw_rate:6.2f}x")
        sampled = _redis.verify(ep_s, ep_t, sample=10000)
        print(f"module    verify (sample 10000):       {sampled['duration_seconds']:7.2f}s  "
              f"{sampled['checked_keys'] / sampled['duration_seconds']:10.0f} keys/s")


if __name__ == "__main__":
    main()
