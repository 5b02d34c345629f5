"""route_latency against real HTTP servers on loopback: figures, errors, the comparison with a baseline, bad options.

The servers are Python's ThreadingHTTPServer: one answers fast, one after a fixed delay, one with 502 on /broken.
"""

from __future__ import annotations

import http.server
import socket
import threading
import time
import typing as t

import pytest

from ansible_collections.sophia.migrate.plugins.modules import route_latency
from support.modules import run_module


def serve(delay: float = 0.0) -> tuple[http.server.ThreadingHTTPServer, list[str]]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the module's sessions use it

        def do_GET(self) -> None:
            seen.append(f"{self.headers.get('Host')} {self.path}")
            time.sleep(delay)
            status = 502 if self.path.startswith("/broken") else 404 if self.path.startswith("/missing") else 200
            body = b"ok\n"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: t.Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, seen


@pytest.fixture
def fast() -> t.Iterator[tuple[str, list[str]]]:
    srv, seen = serve()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def slow() -> t.Iterator[tuple[str, list[str]]]:
    srv, seen = serve(delay=0.12)
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_figures_of_a_fast_route_and_every_request_sent(fast, capsys):
    url, seen = fast
    result = run_module(route_latency, {"urls": [url], "paths": ["/health", "/missing"], "count": 40, "warmup": 6,
                                        "concurrency": 4, "headers": {"Host": "www.example.test"}}, capsys)
    assert result.get("failed") is not True, result
    latency = result["latency"]
    assert latency["count"] == 40 and latency["errors"] == 0 and latency["error_rate"] == 0.0
    assert latency["statuses"] == {"200": 20, "404": 20}  # a 404 is an answer
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert set(latency["per_url"]) == {f"{url}/health", f"{url}/missing"}
    assert all(v["count"] == 20 for v in latency["per_url"].values())
    assert len(seen) == 46 and set(seen) == {"www.example.test /health", "www.example.test /missing"}
    assert result["changed"] is False and result["within_baseline"] is None and result["regressions"] == []


def test_errors_are_counted_and_named(fast, capsys):
    url, _seen = fast
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_module(route_latency, {"urls": [url, dead], "paths": ["/health", "/broken"], "count": 20}, capsys)
    latency = result["latency"]
    # url/health answers; url/broken (502) and both dead URLs fail
    assert latency["errors"] == 15 and latency["error_rate"] == 0.75, latency
    assert latency["statuses"] == {"200": 5, "502": 5, "none": 10}
    assert any("HTTP 502" in m for m in latency["first_errors"])
    assert any("connection failed" in m for m in latency["first_errors"])


def test_a_slow_side_is_a_regression_against_a_fast_baseline(fast, slow, capsys):
    base = run_module(route_latency, {"urls": [fast[0]], "count": 20}, capsys)["latency"]
    options = {"urls": [slow[0]], "count": 8, "concurrency": 4, "baseline": base, "latency_floor_ms": 20}
    result = run_module(route_latency, options, capsys)
    assert result["within_baseline"] is False and result.get("failed") is not True
    assert result["latency"]["p95_ms"] >= 120
    assert result["regressions"][0].startswith(f"p95 {result['latency']['p95_ms']} ms > ")
    failed = run_module(route_latency, {**options, "fail_on_regression": True}, capsys)
    assert failed["failed"] is True and failed["msg"].startswith("route_latency: beyond the baseline: p95 ")
    assert failed["latency"]["count"] == 8  # the figures come with the failure
    # the same slow side is within a baseline that allows it
    allowed = run_module(route_latency, {**options, "latency_floor_ms": 500}, capsys)
    assert allowed["within_baseline"] is True and allowed["regressions"] == []


def test_errors_beyond_the_baseline_error_rate(fast, capsys):
    result = run_module(route_latency, {"urls": [fast[0]], "paths": ["/health", "/broken"], "count": 10,
                                        "baseline": {"p95_ms": 5, "error_rate": 0.0}}, capsys)
    assert result["within_baseline"] is False
    assert [r for r in result["regressions"] if r.startswith("error rate 0.5 > 0.01 (baseline 0.0 + 0.01)")]


def test_nothing_answered_is_a_regression(capsys):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_module(route_latency, {"urls": [dead], "count": 3, "baseline": {"p95_ms": 5, "error_rate": 0}}, capsys)
    assert result["latency"]["p95_ms"] is None and result["latency"]["errors"] == 3
    assert "no request was answered, so no latency could be measured" in result["regressions"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"urls": []}, "urls: give at least one base URL"),
        ({"urls": ["http://127.0.0.1:1/health"]}, "urls[0]: 'http://127.0.0.1:1/health' is not a base URL"),
        ({"urls": ["ftp://host:21"]}, "urls[0]: 'ftp://host:21' is not a base URL"),
        ({"urls": ["http://h:1"], "paths": ["health"]}, "paths[0]: 'health' must start with /"),
        ({"urls": ["http://h:1"], "paths": []}, "paths: give at least one path"),
        ({"urls": ["http://h:1"], "count": 0}, "count: 0 is not between 1 and 100000"),
        ({"urls": ["http://h:1"], "concurrency": 65}, "concurrency: 65 is not between 1 and 64"),
        ({"urls": ["http://h:1"], "warmup": -1}, "warmup: -1 is not between 0 and 100000"),
        ({"urls": ["http://h:1"], "expected_status": [200, 700]}, "expected_status: [700]"),
        ({"urls": ["http://h:1"], "baseline": {"error_rate": 0}}, "baseline.p95_ms: None is not a number >= 0"),
        ({"urls": ["http://h:1"], "baseline": {"p95_ms": 3, "error_rate": 0}, "latency_tolerance": -1},
         "latency_tolerance: -1.0 must be >= 0"),
    ],
)
def test_bad_options_are_named_and_nothing_is_sent(options, message, capsys):
    result = run_module(route_latency, options, capsys)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert result["msg"].endswith("no request was sent")


def test_a_side_measured_in_the_same_run_is_the_baseline(fast, slow, capsys):
    fast_url, fast_seen = fast
    slow_url, slow_seen = slow
    # the fast side warmed and compared with the slow one: within; each side gets count requests, the warm-up
    # goes to the measured side only
    result = run_module(route_latency, {"urls": [fast_url], "paths": ["/k3s/health"], "compare_urls": [slow_url],
                                        "compare_paths": ["/health"], "compare_headers": {"Host": "compose"},
                                        "headers": {"Host": "k3s"}, "count": 6, "warmup": 3, "concurrency": 2},
                        capsys)
    assert result["within_baseline"] is True and result["regressions"] == [], result
    assert result["latency"]["count"] == 6 and result["baseline_latency"]["count"] == 6
    assert result["baseline_latency"]["p50_ms"] >= 120 > result["latency"]["p95_ms"]
    assert sorted(set(fast_seen)) == ["k3s /k3s/health"] and len(fast_seen) == 9
    assert sorted(set(slow_seen)) == ["compose /health"] and len(slow_seen) == 6
    assert set(result["baseline_latency"]["per_url"]) == {f"{slow_url}/health"}
    # the other way round: the slow side is beyond the fast one
    reverse = run_module(route_latency, {"urls": [slow_url], "compare_urls": [fast_url], "count": 4,
                                         "latency_floor_ms": 20}, capsys)
    assert reverse["within_baseline"] is False and reverse["regressions"][0].startswith("p95 ")


def test_a_recorded_baseline_and_a_side_to_compare_are_not_both_given(capsys):
    result = run_module(route_latency, {"urls": ["http://h:1"], "compare_urls": ["http://h:2"],
                                        "baseline": {"p95_ms": 1, "error_rate": 0}}, capsys)
    assert result["failed"] is True
    assert "baseline and compare_urls: give one" in result["msg"]
    bad = run_module(route_latency, {"urls": ["http://h:1"], "compare_urls": ["http://h:2/x"]}, capsys)
    assert "compare_urls[0]: 'http://h:2/x' is not a base URL" in bad["msg"] and "'compare_paths'" in bad["msg"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"urls": ["http://[::1"]}, "urls[0]: 'http://[::1' is not a URL (Invalid IPv6 URL)"),
        ({"urls": ["http://h:1"], "compare_urls": ["http://[::1"]}, "compare_urls[0]: 'http://[::1' is not a URL"),
        ({"urls": ["http://h:1"], "headers": {"Host": "caf\u00e9 \u2713"}}, "headers.Host: the value holds characters"),
        ({"urls": ["http://h:1"], "headers": {"Host": "a\r\nX-Evil: 1"}}, "headers.Host: the value holds a line break"),
        ({"urls": ["http://h:1"], "headers": {"Bad Name": "x"}}, "headers: 'Bad Name' is not an HTTP header name"),
        ({"urls": ["http://h:1"], "compare_headers": {"Host": "\u2713"}}, "compare_headers.Host: the value holds"),
    ],
)
def test_urls_and_headers_no_request_can_carry_are_refused(options, message, capsys):
    result = run_module(route_latency, options, capsys)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert "Module failed" not in result["msg"]
