"""_http.HttpClient and redirects, with two real HTTP servers on loopback: credentials never follow a
redirect to another origin (requests alone drops only Authorization); a same-origin redirect keeps them."""

from __future__ import annotations

import http.server
import threading
import typing as t

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient, HttpError

SECRETS = {"Authorization": "Bearer bearer-secret", "api-key": "qdrant-secret", "X-API-Key": "other-secret",
           "Cookie": "session=cookie-secret"}


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server that records each request's path and headers; /go redirects to ``location``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.location = ""
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.path.startswith("/go"):
                    self.send_response(302)
                    self.send_header("Location", recorder.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: t.Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def pair() -> t.Iterator[tuple[Recorder, Recorder]]:
    first, second = Recorder(), Recorder()
    yield first, second
    for srv in (first, second):
        srv.shutdown()
        srv.server_close()


def test_a_redirect_to_another_port_carries_no_credential(pair):
    first, second = pair
    first.location = f"{second.url}/landing"
    client = HttpClient(first.url, headers=SECRETS, retries=0)
    assert client.json("GET", "/go") == {"ok": True}
    (path, headers), = second.seen
    assert path == "/landing"
    sent = " ".join(f"{k}: {v}" for k, v in headers.items())
    for secret in ("bearer-secret", "qdrant-secret", "other-secret", "cookie-secret"):
        assert secret not in sent, sent
    # the first server, the origin the credentials were meant for, got them all
    assert first.seen[0][1]["api-key"] == "qdrant-secret" and first.seen[0][1]["cookie"] == "session=cookie-secret"


def test_a_header_the_caller_marks_sensitive_does_not_follow_either(pair):
    first, second = pair
    first.location = f"{second.url}/landing"
    client = HttpClient(first.url, headers={"X-Vault-Token": "vault-secret", "X-Trace": "kept"}, retries=0,
                        sensitive_headers=["x-vault-token"])
    client.json("GET", "/go")
    headers = second.seen[0][1]
    assert "x-vault-token" not in headers and headers["x-trace"] == "kept"


def test_a_redirect_to_another_host_name_carries_no_credential(pair):
    first, second = pair
    first.location = f"http://localhost:{second.server_address[1]}/landing"  # same machine, another origin
    client = HttpClient(first.url, headers={"api-key": "qdrant-secret"}, retries=0)
    client.json("GET", "/go")
    assert "api-key" not in second.seen[0][1]


def test_a_same_origin_redirect_keeps_the_credentials(pair):
    first, _second = pair
    first.location = f"{first.url}/landing"
    client = HttpClient(first.url, headers={"api-key": "qdrant-secret", "X-Vault-Token": "vault-secret"}, retries=0,
                        sensitive_headers=["X-Vault-Token"])
    client.json("GET", "/go")
    (_path, _h), (landing, headers) = first.seen
    assert landing == "/landing"
    assert headers["api-key"] == "qdrant-secret" and headers["x-vault-token"] == "vault-secret"


def test_a_redirect_loop_and_a_bad_url_are_http_errors_not_exceptions(pair):
    first, _second = pair
    first.location = f"{first.url}/go"
    with pytest.raises(HttpError, match="too many redirects"):
        HttpClient(first.url, retries=0).request("GET", "/go")
    for bad in ("::bad::", "/does/not/exist"):
        with pytest.raises(HttpError, match="valid http"):
            HttpClient(bad, retries=0).request("GET", "/api/v1/query")
