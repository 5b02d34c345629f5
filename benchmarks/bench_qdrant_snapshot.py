"""Benchmark of sophia.migrate.qdrant_snapshot state=downloaded (download + sha256 verify + durable write).

One server (Debian's nginx on loopback, sendfile) serves the snapshot and Qdrant's snapshot listing (with the
sha256). Per size (default 256 MiB and 1 GiB), in the same run, alternating which goes first every round,
p90 over ``--rounds`` (>= 5):

* baseline: ``curl -sS -o FILE URL && sync FILE`` - the bytes fetched and on disk, with no checksum;
* subject: the module as Ansible runs it (``plugins/modules/qdrant_snapshot.py`` in its own Python process,
  ANSIBLE_MODULE_ARGS with url, collection, state=downloaded and dest only: every other option at its
  default), wall time from the process start to its exit, and its peak RSS (``wait4`` rusage).

Goal: module p90 <= 1.1 x baseline p90 at each size; peak RSS flat (the same on both sizes, < 100 MB).

Figures go to benchmarks/results.json (``_harness.record``, a merge that keeps
every other benchmark's keys). Run: ``.venv/bin/python benchmarks/bench_qdrant_snapshot.py`` (about 2 minutes;
``--sizes-mib 256`` for a quick run; ``--collections DIR --name qdrant_snapshot_before`` measures another
copy of the collection, e.g. ``git archive`` of an older commit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(ROOT, "tests")]

from support.servers import free_port, require_binary, wait_port  # noqa: E402

COLLECTIONS = os.path.join(ROOT, ".ansible", "collections")
GOAL = 1.10
RSS_LIMIT_MB = 100
NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
user root;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 64; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path {work}/tmp;
  proxy_temp_path {work}/tmp;
  fastcgi_temp_path {work}/tmp;
  uwsgi_temp_path {work}/tmp;
  scgi_temp_path {work}/tmp;
  server {{
    listen 127.0.0.1:{port};
    location = /collections/bench/snapshots {{ default_type application/json; alias {work}/list.json; }}
    location /collections/bench/snapshots/ {{ alias {work}/files/; }}
  }}
}}
"""

from _harness import record  # noqa: E402 - benchmarks/_harness.py: merges into results.json


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile (with 5 rounds: the slowest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def make_file(path: str, size: int) -> str:
    block = os.urandom(8 << 20)
    h = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            view = memoryview(chunk)
            for at in range(0, len(view), 256 << 10):  # small writes: see WRITE_SLICE in _qdrant_download
                out.write(view[at:at + (256 << 10)])
            h.update(chunk)
            left -= len(chunk)
            block = block[1:] + block[:1] if left else block  # not one repeated block
    return h.hexdigest()


def curl_and_sync(url: str, dest: str) -> float:
    start = time.monotonic()
    subprocess.run([require_binary("curl"), "-sS", "-o", dest, url], check=True)
    subprocess.run([require_binary("sync"), dest], check=True)  # coreutils: fsync of this file
    return time.monotonic() - start


def run_module(url: str, dest: str, collections: str) -> tuple[float, float, dict[str, t.Any]]:
    args = {"ANSIBLE_MODULE_ARGS": {"url": url, "collection": "bench", "state": "downloaded", "dest": dest}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(args, handle)
    module = os.path.join(collections, "ansible_collections", "sophia", "migrate", "plugins", "modules",
                          "qdrant_snapshot.py")
    env = {**os.environ, "PYTHONPATH": collections}
    try:
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, module, handle.name], stdout=subprocess.PIPE, env=env)
        out = proc.stdout.read() if proc.stdout else b""
        _pid, _status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - start
    finally:
        os.unlink(handle.name)
    result = json.loads(out)
    if result.get("failed"):
        raise SystemExit(f"module failed: {result['msg']}")
    return seconds, usage.ru_maxrss / 1024, result


def bench_size(work: str, base: str, size: int, rounds: int, collections: str) -> dict[str, t.Any]:
    name = "bench-1-2026-01-01-00-00-00.snapshot"
    label = f"{size >> 20} MiB" if size < 1 << 30 else f"{size / 2**30:g} GiB"
    t0 = time.monotonic()
    checksum = make_file(os.path.join(work, "files", name), size)
    listing = [{"name": name, "creation_time": "2026-01-01T00:00:00", "size": size, "checksum": checksum}]
    with open(os.path.join(work, "list.json"), "w", encoding="utf-8") as handle:
        json.dump({"status": "ok", "time": 0.0, "result": listing}, handle)
    print(f"\n{label}: made in {time.monotonic() - t0:.1f}s, sha256 {checksum[:16]}...", flush=True)
    url = f"{base}/collections/bench/snapshots/{name}"
    out = os.path.join(work, "out.snapshot")
    runs: dict[str, list[float]] = {"curl+sync": [], "module": []}
    rss: list[float] = []
    flushes = 0
    for r in range(rounds):
        for what in (("curl+sync", "module") if r % 2 == 0 else ("module", "curl+sync")):
            if what == "curl+sync":
                runs[what].append(curl_and_sync(url, out))
            else:
                seconds, peak, result = run_module(base, out, collections)
                assert result["sha256"] == checksum and result["checksum_verified"], result
                runs[what].append(seconds)
                rss.append(peak)
                flushes = result.get("flushes", 0)
            os.unlink(out)
            subprocess.run([require_binary("sync")], check=True)  # the next run starts with nothing dirty
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.3f}s" for k, v in runs.items()), flush=True)
    os.unlink(os.path.join(work, "files", name))
    base_p90, mod_p90 = p90(runs["curl+sync"]), p90(runs["module"])
    ratio = mod_p90 / base_p90
    ok = ratio <= GOAL
    line = (f"qdrant_snapshot download+verify vs curl -o && sync (p90) | {label} | {base_p90:.3f}s | "
            f"{mod_p90:.3f}s | {ratio:.2f}x | <= {GOAL:.2f}x | {'PASS' if ok else 'FAIL'}")
    return {"size": label, "bytes": size, "rounds": rounds, "goal": f"<= {GOAL}x curl -o && sync",
            **{k: {"p90": round(p90(v), 3), "median": round(sorted(v)[len(v) // 2], 3),
                   "runs": [round(x, 3) for x in v]} for k, v in runs.items()},
            "ratio": round(ratio, 3), "passed": ok, "line": line, "module_peak_rss_mb": round(max(rss), 1),
            "flushes_during_transfer": flushes, "throughput_mib_s_p90": round(size / 2**20 / mod_p90, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes-mib", default="256,1024", help="comma-separated sizes in MiB")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--collections", default=COLLECTIONS,
                        help="directory holding ansible_collections/sophia/migrate (default: this checkout)")
    parser.add_argument("--name", default="qdrant_snapshot", help="key in benchmarks/results.json")
    opts = parser.parse_args()
    if opts.rounds < 5:
        parser.error("--rounds must be >= 5 (p90)")
    nginx = require_binary("nginx")
    work = tempfile.mkdtemp(prefix="sophia-qdrant-bench-", dir=os.environ.get("BENCH_DIR"))
    os.chmod(work, 0o755)  # noqa: S103 - nginx workers must read it
    os.makedirs(os.path.join(work, "files"))
    os.makedirs(os.path.join(work, "tmp"))
    port = free_port()
    proc = None
    figures: dict[str, t.Any] = {}
    try:
        with open(os.path.join(work, "nginx.conf"), "w", encoding="utf-8") as handle:
            handle.write(NGINX_CONF.format(work=work, port=port))
        proc = subprocess.Popen([nginx, "-p", work, "-c", os.path.join(work, "nginx.conf")])
        wait_port(port)
        for mib in (int(x) for x in opts.sizes_mib.split(",") if x):
            figures[str(mib)] = bench_size(work, f"http://127.0.0.1:{port}", mib << 20, opts.rounds,
                                           os.path.abspath(opts.collections))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    peaks = [f["module_peak_rss_mb"] for f in figures.values()]
    flat = max(peaks) < RSS_LIMIT_MB and max(peaks) - min(peaks) < 10
    print("\nname | size | baseline | subject | ratio | goal | PASS/FAIL")
    for fig in figures.values():
        print(fig["line"])
    print(f"qdrant_snapshot module peak RSS | {', '.join(f['size'] for f in figures.values())} | - | "
          f"{', '.join(f'{p:.1f} MB' for p in peaks)} | - | < {RSS_LIMIT_MB} MB, flat | {'PASS' if flat else 'FAIL'}")
    passed = flat and all(f["passed"] for f in figures.values())
    record(opts.name, {"sizes": figures, "rss_flat": flat, "passed": passed,
                       "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


if __name__ == "__main__":
    main()
