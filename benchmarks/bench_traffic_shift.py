"""Benchmark of the traffic_shift splitter: p99 latency while the weights move vs p99 without any
move, same run, same servers (Debian nginx TLS edge -> HAProxy splitter -> two nginx backends),
same load (wrk, 20 keep-alive connections, GET+POST, ~400 requests/s).

The "shift" window changes the route's share every second through the Runtime API, the way
sophia.migrate.splitter_weight does (0 -> 5 -> 25 -> 50 -> 100 -> 50 -> 25 -> 5 -> 0 ...).
Reported: p99 and p50 of both windows, the ratio shift/baseline, and failed requests.

Windows alternate (baseline, shift) for --rounds rounds; medians are compared.

Run: ``.venv/bin/python benchmarks/bench_traffic_shift.py [--seconds 10 --rounds 3]`` (about a minute).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", ".ansible", "collections"),
                os.path.join(HERE, "..", "tests", "integration", "traffic")]

from traffic_support import Load, backends, edge, free_port, run_playbook  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import RuntimeApi, plan_weights  # noqa: E402

SHARES = [0, 5, 25, 50, 100, 50, 25, 5]


def window(work: str, url: str, seconds: int, api: RuntimeApi | None) -> dict:
    load = Load(work, url).start()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        if api is not None:
            weights = plan_weights(SHARES[i % len(SHARES)], ["compose1"], ["k3s1"])
            for name, w in sorted(weights.items(), key=lambda kv: -kv[1]):
                api.set_server("route_bench", name, w, "ready" if w else "maint")
            i += 1
        time.sleep(1)
    result = load.stop()
    result["changes"] = i
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        back, ports, _health = backends(work)
        back.start()
        https, split = free_port(), free_port()
        front = edge(work, https, "/api/bench", ports["compose"]).start()
        cfg, pid, sock = f"{work}/haproxy.cfg", f"{work}/haproxy.pid", f"{work}/admin.sock"
        try:
            res = run_playbook(work, {
                "traffic_shift_routes": [{"name": "bench", "path": "/api/bench", "port": split,
                                          "compose": [f"127.0.0.1:{ports['compose']}"],
                                          "k3s": [f"127.0.0.1:{ports['k3s']}"]}],
                "traffic_shift_target_weight": 0,
                "traffic_shift_splitter_install": False, "traffic_shift_splitter_config": cfg,
                "traffic_shift_splitter_socket": sock, "traffic_shift_splitter_state_file": f"{work}/state",
                "traffic_shift_splitter_service": "",
                "traffic_shift_splitter_reload_command": f"haproxy -W -D -f {cfg} -p {pid}",
                "traffic_shift_edge_config": front.conf,
                "traffic_shift_edge_validate_command": " ".join(front.command("-t", "-q")),
                "traffic_shift_edge_reload_command": " ".join(front.command("-s", "reload")),
                "traffic_shift_ledger_path": f"{work}/ledger.json",
            })
            if res.returncode != 0:
                print(res.stdout[-3000:])
                return 1
            time.sleep(2)
            url = f"https://127.0.0.1:{https}/api/bench/x"
            api = RuntimeApi(sock)
            runs = {"baseline": [], "shift": []}
            for _round in range(args.rounds):  # alternate, so drift on a busy machine hits both alike
                runs["baseline"].append(window(work, url, args.seconds, None))
                runs["shift"].append(window(work, url, args.seconds, api))
        finally:
            subprocess.run(["sh", "-c", f"[ -s {pid} ] && kill $(cat {pid})"], check=False)
            front.stop()
            back.stop()
    print(f"{'window':<10} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'changes':>8}")
    for name, results in runs.items():
        for r in results:
            print(f"{name:<10} {r['requests']:>9} {r['rate']:>7.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['failed']:>7} {r['changes']:>8}")
    base = {k: statistics.median(r[k] for r in runs["baseline"]) for k in ("p99_ms", "p50_ms")}
    shift = {k: statistics.median(r[k] for r in runs["shift"]) for k in ("p99_ms", "p50_ms")}
    failed = sum(r["failed"] for r in runs["shift"])
    print(f"median p99 during shift / without shift: {shift['p99_ms'] / base['p99_ms']:.2f}x "
          f"(p50 ratio {shift['p50_ms'] / base['p50_ms']:.2f}x); failed requests during shifts: {failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
