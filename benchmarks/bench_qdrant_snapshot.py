"""Benchmark of sophia.migrate.qdrant_snapshot state=downloaded on a >= 1 GiB snapshot.

One server (Debian's nginx on loopback) serves the snapshot and Qdrant's snapshot listing (with the sha256)
to both sides. Measured in the same run:

* baseline, the careful manual way: ``curl -o`` then ``sha256sum`` (two passes), each also timed alone;
* reference: a single-threaded ``requests`` stream hashing as it writes (1 MiB chunks);
* the module itself (``plugins/modules/qdrant_snapshot.py`` run as Ansible runs it, a separate process):
  wall time and its peak RSS (``wait4`` rusage of that process).

Targets (issue 6): module <= 1.1 x max(curl alone, sha256sum alone); >= 1.4 x faster than curl + sha256sum;
peak RSS < 100 MB and flat in the size (also measured on a 1/8 size file).

Run: ``.venv/bin/python benchmarks/bench_qdrant_snapshot.py [--size-mib 1024] [--repeat 2]`` (~1-2 minutes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path[:0] = [os.path.join(ROOT, ".ansible", "collections"), os.path.join(ROOT, "tests")]

import requests  # noqa: E402

from support.servers import free_port, require_binary, wait_port  # noqa: E402

MODULE = os.path.join(ROOT, "plugins", "modules", "qdrant_snapshot.py")
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


def make_file(path: str, size: int) -> str:
    block = os.urandom(8 << 20)
    h = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            chunk = block[: min(left, len(block))]
            out.write(chunk)
            h.update(chunk)
            left -= len(chunk)
            block = block[1:] + block[:1] if left else block  # not one repeated block
    return h.hexdigest()


def timed(argv: list[str]) -> float:
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def run_module(url: str, dest: str, chunk: int) -> tuple[float, float, dict]:
    args = {
        "ANSIBLE_MODULE_ARGS": {
            "url": url,
            "collection": "bench",
            "state": "downloaded",
            "dest": dest,
            "chunk_size": chunk,
        }
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(args, handle)
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, ".ansible", "collections")}
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, MODULE, handle.name], stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    os.unlink(handle.name)
    result = json.loads(out)
    if result.get("failed"):
        raise SystemExit(f"module failed: {result['msg']}")
    return seconds, usage.ru_maxrss / 1024, result


def requests_single_thread(url: str, dest: str) -> tuple[float, str]:
    start = time.monotonic()
    h = hashlib.sha256()
    with requests.get(url, stream=True, timeout=60) as resp, open(dest, "wb") as out:
        for chunk in resp.iter_content(1 << 20):
            out.write(chunk)
            h.update(chunk)
    return time.monotonic() - start, h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=4 << 20)
    opts = parser.parse_args()
    nginx = require_binary("nginx")
    work = tempfile.mkdtemp(prefix="sophia-qdrant-bench-", dir=os.environ.get("BENCH_DIR"))
    os.chmod(work, 0o755)  # noqa: S103 - nginx workers must read it
    os.makedirs(os.path.join(work, "files"))
    os.makedirs(os.path.join(work, "tmp"))
    port = free_port()
    name = "bench-1-2026-01-01-00-00-00.snapshot"
    size = opts.size_mib << 20
    small = size // 8
    proc = None
    try:
        t0 = time.monotonic()
        checksum = make_file(os.path.join(work, "files", name), size)
        small_sum = make_file(os.path.join(work, "files", "small.snapshot"), small)
        print(f"snapshot: {size / 2**30:.2f} GiB made in {time.monotonic() - t0:.1f}s, sha256 {checksum[:16]}...")
        listing = [{"name": name, "creation_time": "2026-01-01T00:00:00", "size": size, "checksum": checksum}]
        with open(os.path.join(work, "list.json"), "w", encoding="utf-8") as handle:
            json.dump({"status": "ok", "time": 0.0, "result": listing}, handle)
        with open(os.path.join(work, "nginx.conf"), "w", encoding="utf-8") as handle:
            handle.write(NGINX_CONF.format(work=work, port=port))
        proc = subprocess.Popen([nginx, "-p", work, "-c", os.path.join(work, "nginx.conf")])
        wait_port(port)
        base = f"http://127.0.0.1:{port}"
        file_url = f"{base}/collections/bench/snapshots/{name}"
        out = os.path.join(work, "out.snapshot")
        rows: dict[str, list[float]] = {"curl": [], "sha256sum": [], "curl+sha256sum": [], "requests": [], "module": []}
        rss: list[float] = []
        for _u1 in range(opts.repeat):
            c = timed(["curl", "-sS", "-o", out, file_url])
            s = timed(["sha256sum", out])
            rows["curl"].append(c)
            rows["sha256sum"].append(s)
            rows["curl+sha256sum"].append(c + s)
            os.unlink(out)
            r, digest = requests_single_thread(file_url, out)
            assert digest == checksum
            rows["requests"].append(r)
            os.unlink(out)
            m, peak, result = run_module(base, out, opts.chunk)
            assert result["sha256"] == checksum and result["checksum_verified"], result
            rows["module"].append(m)
            rss.append(peak)
            os.unlink(out)
        # flat memory: the same module on a file 1/8 the size
        listing[0].update(size=small, checksum=small_sum)
        os.replace(os.path.join(work, "files", "small.snapshot"), os.path.join(work, "files", name))
        with open(os.path.join(work, "list.json"), "w", encoding="utf-8") as handle:
            json.dump({"status": "ok", "time": 0.0, "result": listing}, handle)
        _m, small_peak, _u1 = run_module(base, out, opts.chunk)
        best = {k: min(v) for k, v in rows.items()}
        floor = max(best["curl"], best["sha256sum"])
        mib = size / 2**20
        every = json.dumps({k: [round(x, 2) for x in v] for k, v in rows.items()})
        print(f"runs: {opts.repeat}, best of each (all: {every})")
        for key in ("curl", "sha256sum", "curl+sha256sum", "requests", "module"):
            print(f"  {key:16s} {best[key]:6.2f}s  {mib / best[key]:7.0f} MiB/s")
        print(f"floor max(curl, sha256sum):          {floor:6.2f}s")
        print(f"ratio module / floor:                {best['module'] / floor:6.2f}x  (target <= 1.10x)")
        print(f"speed-up vs curl -o + sha256sum:     {best['curl+sha256sum'] / best['module']:6.2f}x  (target >= 1.4x)")
        print(f"speed-up vs single-thread requests:  {best['requests'] / best['module']:6.2f}x")
        print(
            f"module peak RSS: {max(rss):.1f} MB on {size / 2**30:.2f} GiB, {small_peak:.1f} MB on "
            f"{small / 2**20:.0f} MiB  (target < 100 MB, flat)"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
