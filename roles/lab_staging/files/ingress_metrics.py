"""Stand-in for the F5 NGINX Ingress Controller's Prometheus endpoint (:9113/metrics), for the staging lab's K3s side.

The staging ingress stand-in (nginx) writes one access-log line per proxied request: the upstream's status, the
upstream (= the Service) and its response time. This program follows that file and serves what the controller
exports with -enable-prometheus-metrics -enable-latency-metrics (nginx/kubernetes-ingress,
internal/metrics/collectors/latency.go): the histogram nginx_ingress_controller_upstream_server_response_latency_ms
with the labels class, code, service, upstream, server, pod_name and resource_*; and the stub_status counter
nginx_ingress_nginx_http_requests_total. Production's traffic gates (inventories/production/group_vars/edge.yml)
query exactly these names and labels; tests/integration/gates holds them to the controller's source.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ.get("ACCESS_LOG", "/var/log/ingress/access.log")
PORT = int(os.environ.get("PORT", "9113"))
NAMESPACE = os.environ.get("NAMESPACE", "sophia")
HISTOGRAM = "nginx_ingress_controller_upstream_server_response_latency_ms"
BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)

_lock = threading.Lock()
_series: dict[tuple[str, str], list[float]] = {}  # (service, code) -> bucket counts..., count, sum
_total = [0]


def _record(code: str, service: str, seconds: float) -> None:
    millis = seconds * 1000
    with _lock:
        row = _series.setdefault((service, code), [0.0] * (len(BUCKETS) + 2))
        for i, bound in enumerate(BUCKETS):
            if millis <= bound:
                row[i] += 1
        row[-2] += 1
        row[-1] += millis
        _total[0] += 1


def follow() -> None:
    """Reads the log from its end as it grows (a rotated or recreated file is opened again)."""
    while not os.path.exists(LOG):
        time.sleep(0.2)
    handle = open(LOG, encoding="utf-8", errors="replace")  # noqa: SIM115 - kept open while followed
    handle.seek(0, os.SEEK_END)
    inode = os.fstat(handle.fileno()).st_ino
    while True:
        line = handle.readline()
        if not line:
            time.sleep(0.2)
            try:
                if os.stat(LOG).st_ino != inode:
                    handle.close()
                    handle = open(LOG, encoding="utf-8", errors="replace")  # noqa: SIM115
                    inode = os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                pass
            continue
        parts = line.split()
        if len(parts) != 3 or parts[1] == "-":
            continue
        status, service, took = parts
        code = status.split(",")[-1].strip() or "502"  # "502, 200": the last upstream tried answered
        try:
            seconds = float(took.split(",")[-1])
        except ValueError:
            seconds = 0.0
        _record(code, service, seconds)


def _labels(service: str, code: str, extra: str = "") -> str:
    return (f'{{class="nginx",code="{code}",pod_name="{service}-0",resource_name="{service}",'
            f'resource_namespace="{NAMESPACE}",resource_type="ingress",server="{service}:80",service="{service}",'
            f'upstream="{NAMESPACE}-{service}-80"{extra}}}')


def render() -> str:
    lines = [f"# TYPE {HISTOGRAM} histogram"]
    with _lock:
        for (service, code), row in sorted(_series.items()):
            for i, bound in enumerate((*BUCKETS, "+Inf")):
                le = ',le="' + str(bound) + '"'
                value = row[i] if i < len(BUCKETS) else row[-2]
                lines.append(f"{HISTOGRAM}_bucket{_labels(service, code, le)} {value:.0f}")
            lines.append(f"{HISTOGRAM}_sum{_labels(service, code)} {row[-1]:.3f}")
            lines.append(f"{HISTOGRAM}_count{_labels(service, code)} {row[-2]:.0f}")
        lines += ["# TYPE nginx_ingress_nginx_http_requests_total counter",
                  f'nginx_ingress_nginx_http_requests_total{{class="nginx"}} {_total[0]}',
                  'nginx_ingress_nginx_up{class="nginx"} 1']
    return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *_args) -> None:
        return

    def do_GET(self) -> None:
        body = render().encode() if self.path.startswith("/metrics") else b"ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> int:
    threading.Thread(target=follow, daemon=True).start()
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()  # noqa: S104 - a Service's pod port
    return 0


if __name__ == "__main__":
    sys.exit(main())
