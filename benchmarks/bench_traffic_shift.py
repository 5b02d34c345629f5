"""Benchmark of the traffic_shift splitter: p99 latency while the weights move vs p99 without any
move, same run, same servers (Debian nginx TLS edge -> HAProxy splitter -> two nginx backends),
same load (wrk, 20 keep-alive connections, GET+POST, ~400 requests/s).

The "shift" window changes the route's share every second (0 -> 5 -> 25 -> 50 -> 100 -> 50 -> 25 -> 5 -> 0 ...)
the way sophia.migrate.splitter_weight does: plan_weights(), then ONE Runtime API line setting weight and
state of every server that changes (servers that gain weight first), so clients never see an intermediate mix.

Measured with benchmarks/_harness.py: baseline and shift windows of ``--seconds`` alternate for ``--rounds``
rounds (after one warm-up pair); the cost of a window is wrk's p99 in ms; reported at p90 over the rounds.
Goal (this benchmark's own, proposed): p99 during shifts <= 1.5x p99 without, and no failed request (the
number of failed requests is printed and recorded; any makes the result FAIL). One size: the window length
is not a data size, so no growth ratio is printed.

Run: ``.venv/bin/python benchmarks/bench_traffic_shift.py [--seconds 10 --rounds 5]`` (about 2 minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", ".ansible", "collections"),
                os.path.join(HERE, "..", "tests", "integration", "traffic")]

from _harness import Goal, compare, record  # noqa: E402
from traffic_support import Load, backends, edge, free_port, run_playbook  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import RuntimeApi, plan_weights  # noqa: E402

SHARES = [0, 5, 25, 50, 100, 50, 25, 5]


def window(work: str, url: str, seconds: int, api: RuntimeApi | None, windows: list[dict]) -> float:
    load = Load(work, url).start()
    end = time.monotonic() + seconds
    i = 0
    live = {n: (v["weight"], v["admin"]) for n, v in api.servers("route_bench").items()} if api else {}
    while time.monotonic() < end:
        if api is not None:
            weights = plan_weights(SHARES[i % len(SHARES)], ["compose1"], ["k3s1"])
            planned = {n: (w, "ready" if w else "maint") for n, w in weights.items()}
            todo = [n for n in planned if planned[n] != live[n]]
            # as splitter_weight: servers that gain weight first, all changes in one Runtime API line
            order = sorted(todo, key=lambda n: planned[n][0] <= live[n][0])
            if order:
                api.set_servers("route_bench", [(n, *planned[n]) for n in order])
            live.update(planned)
            i += 1
        time.sleep(1)
    result = load.stop()
    result["changes"] = i
    windows.append(result)
    return result["p99_ms"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"baseline": [], "shift": []}
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
            row = compare("traffic_shift p99", args.seconds,
                          lambda: window(work, url, args.seconds, None, runs["baseline"]),
                          lambda: window(work, url, args.seconds, api, runs["shift"]),
                          rounds=args.rounds, unit="ms p99", goal=Goal("<=", 1.5, on="ratio"), save=False)
        finally:
            subprocess.run(["sh", "-c", f"[ -s {pid} ] && kill $(cat {pid})"], check=False)
            front.stop()
            back.stop()
    print(f"{'window':<10} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'failed':>7} {'changes':>8}")
    for name, results in runs.items():
        for r in results:
            print(f"{name:<10} {r['requests']:>9} {r['rate']:>7.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['failed']:>7} {r['changes']:>8}")
    failed = sum(r["failed"] for r in runs["shift"] + runs["baseline"])
    row["failed_requests"] = failed
    row["goal"] += ", 0 failed requests"
    row["passed"] = row["passed"] and failed == 0
    print(f"failed requests (all windows): {failed}; result with that: {'PASS' if row['passed'] else 'FAIL'}")
    record(f"{row['name']} [{row['size']}]", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
