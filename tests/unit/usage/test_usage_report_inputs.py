"""usage_report: a prometheus_url that is no URL, or a Prometheus path that does not exist, is a clean
fail_json naming the problem, never a module exception."""

from __future__ import annotations

import http.server
import threading
import typing as t

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _usage
from ansible_collections.sophia.migrate.plugins.modules import usage_report
from support.modules import run_module


@pytest.fixture
def not_found() -> t.Iterator[str]:
    """A real HTTP server on loopback that answers 404 to everything."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404, "no such path")

        def log_message(self, *args: t.Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("url", ["::bad::", "/does/not/exist", "ftp://prometheus:9090", "http://", "http://[::1",
                                 "http://prometheus:99999", ""])
def test_a_prometheus_url_that_is_no_url_is_a_clean_failure(url, capsys):
    result = run_module(usage_report, {"prometheus_url": url, "timeout": 2}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("usage_report: option 'prometheus_url' must be an http:// or https:// URL")
    assert repr(url) in result["msg"]


def test_a_path_that_does_not_exist_is_a_clean_failure(not_found, capsys):
    result = run_module(usage_report, {"prometheus_url": f"{not_found}/does/not/exist", "timeout": 2}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("usage_report: Prometheus query failed: GET ")
    assert "/does/not/exist/api/v1/query: HTTP 404" in result["msg"]


@pytest.mark.parametrize("url", ["http://prometheus.monitoring:9090", "https://10.0.0.5/prometheus"])
def test_urls_accepted(url):
    assert _usage.check_url(url, "prometheus_url") == url
