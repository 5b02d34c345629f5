"""Benchmark of sophia.migrate.redis_migrate against what Redis itself does (real redis-server on loopback).

Per size (default 100,000 and 1,000,000 string keys of 100 random bytes), with one source and one target
server, in the same run and alternating the order every round (p90 over ``--rounds`` >= 5):

* baseline ``redis-cli --rdb``: the source's RDB streamed to a file (what a backup costs);
* baseline plain replica: ``REPLICAOF`` sent to the emptied target, then the fastest possible watcher
  (INFO replication on both servers every 2 ms) until the link is up, the sync over and the target's
  offset at the source's: a replica's own full sync, with no tool around it;
* subject: the module as a playbook runs it - ``plugins/modules/redis_migrate.py`` in its own Python
  process with ANSIBLE_MODULE_ARGS holding only ``source`` and ``target`` (every other option at its
  default), wall time from the process start to its exit.

Goal: module p90 <= 1.1 x plain replica p90, at both sizes.

The sync itself varies a lot on a loaded machine; the target's log says how long each sync took on the
server, so the benchmark also prints what each side added to it (wall time minus the server's own sync).

Then once per size: the module with ``mode=verify`` (default ``batch_size``; full up to 200k keys, a
50,000-key sample above), its throughput and the longest time one server spent in one verify batch
(``longest_block_ms``); with ``--verify-batches`` a list of batch sizes is measured too (the block grows
with the batch).

Figures go to benchmarks/results.json (``_harness.record``, a merge that keeps
every other benchmark's keys). Run: ``nice -n 10 .venv/bin/python benchmarks/bench_redis_migrate.py``
(about 2 minutes; ``--keys 100000`` for a quick run; ``--collections DIR --name redis_migrate_before`` measures
another copy of the collection, e.g. ``git archive`` of an older commit, for a before/after in one sitting).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "tests")]

import redis  # noqa: E402

from support.servers import RedisServer, require_binary  # noqa: E402

COLLECTIONS = os.path.join(ROOT, ".ansible", "collections")  # --collections: another tree (e.g. an older commit)
EXTRA = ["--repl-diskless-sync-delay", "0"]
GOAL = 1.10

from _harness import record  # noqa: E402 - benchmarks/_harness.py: merges into results.json


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile (with 5 rounds: the slowest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def fill(client: redis.Redis, n: int, size: int) -> float:
    """n string keys of ``size`` random bytes (incompressible, as real payloads mostly are), MSET 1000 at a time."""
    start = time.monotonic()
    for first in range(0, n, 1000):
        count = min(1000, n - first)
        blob = os.urandom(size * count)
        client.mset({f"key:{first + i:09d}": blob[i * size:(i + 1) * size] for i in range(count)})
    assert client.dbsize() == n, client.dbsize()
    return time.monotonic() - start


def reset_target(tgt: redis.Redis) -> None:
    tgt.execute_command("REPLICAOF", "NO", "ONE")
    tgt.flushall()
    assert tgt.dbsize() == 0


def run_rdb(port: int, workdir: str) -> float:
    path = os.path.join(workdir, "baseline.rdb")
    start = time.monotonic()
    subprocess.run([require_binary("redis-cli"), "-p", str(port), "--rdb", path], check=True, capture_output=True)
    seconds = time.monotonic() - start
    os.unlink(path)
    return seconds


def run_replica(src: redis.Redis, tgt: redis.Redis, src_port: int, n: int) -> float:
    reset_target(tgt)
    start = time.monotonic()
    tgt.execute_command("REPLICAOF", "127.0.0.1", src_port)
    while True:
        s_off = int(src.info("replication").get("master_repl_offset", 0))
        ti = tgt.info("replication")
        if (ti.get("master_link_status") == "up" and not int(ti.get("master_sync_in_progress", 0))
                and int(ti.get("slave_repl_offset", -1)) >= s_off):
            seconds = time.monotonic() - start
            break
        if time.monotonic() - start > 300:
            raise SystemExit("plain replica: no full sync within 300 s")
        time.sleep(0.002)
    assert tgt.dbsize() == n, tgt.dbsize()
    return seconds


def run_module(args: dict[str, t.Any]) -> tuple[float, dict[str, t.Any]]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = {**os.environ, "PYTHONPATH": COLLECTIONS}
    module = os.path.join(COLLECTIONS, "ansible_collections", "sophia", "migrate", "plugins", "modules",
                          "redis_migrate.py")
    try:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, module, handle.name], capture_output=True, env=env, check=False)
        seconds = time.monotonic() - start
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"module printed no JSON: {proc.stdout[-500:]!r} {proc.stderr[-2000:]!r}") from None
    if result.get("failed"):
        raise SystemExit(f"module failed: {result.get('msg')}")
    return seconds, result


def run_replicate_module(tgt: redis.Redis, src_port: int, tgt_port: int, n: int) -> tuple[float, dict[str, t.Any]]:
    reset_target(tgt)
    seconds, result = run_module({"source": {"port": src_port}, "target": {"port": tgt_port}})
    assert result["state_after"] == "replicating" and result["target"]["keys"] == {"db0": n}, result
    return seconds, result


def line(name: str, size: str, base: float, subject: float, goal: float | None) -> tuple[str, bool]:
    """One result line; ``goal`` None: a figure for information (no verdict)."""
    ratio = subject / base
    ok = goal is None or ratio <= goal
    verdict = "info" if goal is None else ("PASS" if ok else "FAIL")
    target = "-" if goal is None else f"<= {goal:.2f}x"
    return f"{name} | {size} | {base:.3f}s | {subject:.3f}s | {ratio:.2f}x | {target} | {verdict}", ok


def server_sync_seconds(log: str, skip: int) -> tuple[float, int]:
    """The target's own full sync from its log lines after ``skip``: from "REPLICAOF ... enabled" to
    "MASTER <-> REPLICA sync: Finished with success" (what the server itself spent, whoever asked).
    Returns (seconds, lines now in the log)."""
    with open(log, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().splitlines()

    def stamp(text: str) -> datetime.datetime:  # "1234:S 06 Dec 2026 02:14:15.200 * ..."
        return datetime.datetime.strptime(" ".join(text.split()[1:5]), "%d %b %Y %H:%M:%S.%f")

    new = lines[skip:]
    began = next(stamp(x) for x in new if "REPLICAOF" in x and "enabled" in x)
    ended = next(stamp(x) for x in new if "Finished with success" in x)
    return (ended - began).total_seconds(), len(lines)


def startup_seconds() -> float:
    """What the module process pays before it talks to a server: Python, ansible's module_utils, redis-py."""
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "import ansible.module_utils.basic, redis"], check=True)
    return time.monotonic() - start


def bench_size(n: int, rounds: int, value_bytes: int, verify_batches: list[int]) -> dict[str, t.Any]:
    label = f"{n // 1000}k keys x {value_bytes} B" if n < 1_000_000 else f"{n / 1e6:g}M keys x {value_bytes} B"
    with tempfile.TemporaryDirectory(prefix="sophia-redis-bench-") as workdir, \
            RedisServer(extra=EXTRA) as src_srv, RedisServer(extra=EXTRA) as tgt_srv:
        src = redis.Redis(port=src_srv.port, socket_timeout=120)
        tgt = redis.Redis(port=tgt_srv.port, socket_timeout=120)
        filled = fill(src, n, value_bytes)
        used = src.info("memory")["used_memory_human"]
        print(f"\n{label}: filled in {filled:.1f}s ({used} in memory)", flush=True)
        runs: dict[str, list[float]] = {"rdb": [], "replica": [], "module": [], "startup": []}
        inside: list[dict[str, float]] = []
        # wall time minus the target's own sync (its log): what the tool adds, whatever the load did to the sync
        overhead: dict[str, list[float]] = {"replica": [], "module": []}
        log = os.path.join(tgt_srv.dir, "redis.log")
        seen = 0
        order = ["rdb", "replica", "module"]
        for r in range(rounds):
            for what in order[r % 3:] + order[:r % 3]:  # rotate: each goes first, second and last
                if what == "rdb":
                    runs["rdb"].append(run_rdb(src_srv.port, workdir))
                    continue
                if what == "replica":
                    runs["replica"].append(run_replica(src, tgt, src_srv.port, n))
                else:
                    seconds, result = run_replicate_module(tgt, src_srv.port, tgt_srv.port, n)
                    runs["module"].append(seconds)
                    rep = result["replication"]
                    inside.append({"caught_up_seconds": rep["caught_up_seconds"],
                                   "duration_seconds": result["duration_seconds"]})
                synced, seen = server_sync_seconds(log, seen)
                overhead[what].append(runs[what][-1] - synced)
            runs["startup"].append(startup_seconds())
            print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in runs.items()), flush=True)
        figures: dict[str, t.Any] = {k: {"p90": round(p90(v), 3), "median": round(sorted(v)[len(v) // 2], 3),
                                         "runs": [round(x, 3) for x in v]} for k, v in runs.items()}
        figures["overhead_over_server_sync"] = {k: {"p90": round(p90(v), 3), "runs": [round(x, 3) for x in v]}
                                                for k, v in overhead.items()}
        figures["module_inside"] = {
            "caught_up_seconds_p90": p90([x["caught_up_seconds"] for x in inside]),
            "duration_seconds_p90": p90([x["duration_seconds"] for x in inside]),
        }
        # verify: the module process once with defaults, then per batch size asked for
        verify: dict[str, t.Any] = {}
        sample = 0 if n <= 200_000 else 50_000  # a full verify of 1M keys alone would take minutes here
        for batch in [None, *verify_batches]:
            args: dict[str, t.Any] = {"mode": "verify", "source": {"port": src_srv.port},
                                      "target": {"port": tgt_srv.port}, "sample": sample}
            if batch:
                args["batch_size"] = batch
            seconds, result = run_module(args)
            assert result["verified"] and (sample or result["checked_keys"] == n), result
            verify[str(batch or "default")] = {
                "sample": sample or None, "checked_keys": result["checked_keys"], "wall_seconds": round(seconds, 3),
                "keys_per_second": result["keys_per_second"], "batch_size": result.get("batch_size"),
                "longest_block_ms": result.get("longest_block_ms")}
            print(f"  verify {'sample ' + str(sample) if sample else 'full'} "
                  f"batch_size={result.get('batch_size')}: {seconds:.2f}s, "
                  f"{result['keys_per_second']:.0f} keys/s, longest block per batch "
                  f"{result.get('longest_block_ms')} ms", flush=True)
        figures["verify"] = verify
        text, ok = line("redis_migrate replicate vs plain replica (p90)", label, figures["replica"]["p90"],
                        figures["module"]["p90"], GOAL)
        figures.update(size=label, keys=n, value_bytes=value_bytes, rounds=rounds, goal=f"<= {GOAL}x plain replica",
                       ratio=round(figures["module"]["p90"] / figures["replica"]["p90"], 3), passed=ok,
                       line=text)
        figures["info_lines"] = [
            line("redis_migrate replicate vs redis-cli --rdb (p90)", label, figures["rdb"]["p90"],
                 figures["module"]["p90"], None)[0],
            line("redis_migrate replicate inside the module (REPLICAOF to exit of replicate()) vs plain replica "
                 "(p90)", label, figures["replica"]["p90"], figures["module_inside"]["duration_seconds_p90"],
                 None)[0],
            line("module process start (python + ansible + redis-py imports) vs plain replica (p90)", label,
                 figures["replica"]["p90"], figures["startup"]["p90"], None)[0],
            line("seconds added to the target's own sync (its log): plain replica vs module (p90)", label,
                 figures["overhead_over_server_sync"]["replica"]["p90"],
                 figures["overhead_over_server_sync"]["module"]["p90"], None)[0],
        ]
        return figures


def main() -> None:
    global COLLECTIONS  # noqa: PLW0603 - one setting for the whole run
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", default="100000,1000000", help="comma-separated key counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--verify-batches", default="", help="extra verify batch sizes, e.g. 100,5000")
    parser.add_argument("--collections", default=COLLECTIONS,
                        help="directory holding ansible_collections/sophia/migrate (default: this checkout)")
    parser.add_argument("--name", default="redis_migrate", help="key in benchmarks/results.json")
    opts = parser.parse_args()
    COLLECTIONS = os.path.abspath(opts.collections)
    if opts.rounds < 5:
        parser.error("--rounds must be >= 5 (p90)")
    sizes = [int(x) for x in opts.keys.split(",") if x]
    batches = [int(x) for x in opts.verify_batches.split(",") if x]
    all_figures = {}
    for n in sizes:
        all_figures[str(n)] = bench_size(n, opts.rounds, opts.value_bytes, batches)
    print("\nname | size | baseline | subject | ratio | goal | PASS/FAIL")
    for fig in all_figures.values():
        print(fig["line"])
        for text in fig["info_lines"]:
            print(text)
    record(opts.name, {"sizes": all_figures, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "passed": all(f["passed"] for f in all_figures.values())})


if __name__ == "__main__":
    main()
