"""Small HTTP plumbing shared by the API-facing modules (Qdrant, Fly Machines, Prometheus).

- ``HttpClient`` wraps one ``requests.Session`` with a base URL, default headers (secrets are
  kept out of ``repr`` and error messages), TLS options, a timeout on every call, and retries
  with exponential backoff on connection errors, 5xx and 429 (honouring ``Retry-After``).
- ``HttpError`` carries the method, the URL (never credentials), the status and a short
  excerpt of the answer so an operator can act on it.
- Redirects: a redirect to another origin (scheme, host or port) never carries credentials. requests
  itself drops only ``Authorization``; ``CredentialSafeSession`` also drops ``api-key``, ``x-api-key``,
  ``Cookie``, ``Proxy-Authorization`` and every header the caller marks sensitive.
"""

from __future__ import annotations

import time
import typing as t
from urllib.parse import urlsplit

try:
    import requests

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as _exc:  # pragma: no cover - reported by the modules through missing_required_lib
    requests = None  # type: ignore[assignment]
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = _exc

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Headers that carry credentials: never sent on to another origin after a redirect (lower case).
SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key"})


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url`` with the default port filled in; None when it cannot be parsed."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None


if HAS_REQUESTS:

    class CredentialSafeSession(requests.Session):
        """A Session that follows a redirect to another origin without any credential header."""

        def __init__(self, sensitive_headers: t.Iterable[str] = ()) -> None:
            super().__init__()
            self.sensitive_headers = SENSITIVE_HEADERS | {h.lower() for h in sensitive_headers}

        def rebuild_auth(self, prepared_request: t.Any, response: t.Any) -> None:
            before, after = _origin(response.request.url), _origin(prepared_request.url)
            if before is None or before != after:
                for name in [h for h in prepared_request.headers if h.lower() in self.sensitive_headers]:
                    del prepared_request.headers[name]
            super().rebuild_auth(prepared_request, response)


class HttpError(Exception):
    """An HTTP call that failed; ``status`` is None for transport errors."""

    def __init__(self, message: str, status: int | None = None, body: str = ""):
        super().__init__(message)
        self.status = status
        self.body = body


def redact_url(url: t.Any) -> str:
    """``url`` fit for output: ``user:password@``, the query string and the fragment are removed (tokens live there).

    Never raises, also on a malformed URL (such as an unclosed IPv6 bracket): it works on the text, not on a parse.
    Everything in the authority up to its last ``@`` goes, so a password holding an unencoded ``#``, ``?`` or ``@``
    does not leak either.
    """
    text = "" if url is None else str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    for mark in ("?", "#"):
        if mark in authority:
            authority, slash, path = authority.partition(mark)[0], "", ""
        path = path.partition(mark)[0]
    return f"{scheme}{sep}{authority}{slash}{path}"


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


class HttpClient:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        validate_certs: bool = True,
        ca_path: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        sleep: t.Callable[[float], None] = time.sleep,
        sensitive_headers: t.Iterable[str] = (),
    ):
        if not HAS_REQUESTS:
            raise HttpError("the Python library 'requests' is required")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        # Credential headers (the defaults plus ``sensitive_headers``) never follow a redirect to another origin.
        self.session = CredentialSafeSession(sensitive_headers)
        self.session.headers.update(headers or {})
        self.session.verify = ca_path if (validate_certs and ca_path) else validate_certs
        if client_cert:
            self.session.cert = (client_cert, client_key) if client_key else client_cert
        self.attempts = 0  # total attempts made, for reporting and tests

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _delay(self, attempt: int, response: t.Any = None) -> float:
        if response is not None:
            after = response.headers.get("Retry-After")
            if after:
                try:
                    return min(float(after), self.max_backoff)
                except ValueError:
                    pass
        return min(self.backoff * (2**attempt), self.max_backoff)

    def request(
        self,
        method: str,
        path: str,
        expected: t.Iterable[int] = (200,),
        retry: bool = True,
        **kwargs: t.Any,
    ) -> t.Any:
        """Send a request; retry transient failures; return the response when its status is expected."""
        url = self.url(path)
        expected = set(expected)
        kwargs.setdefault("timeout", self.timeout)
        last: Exception | None = None
        tries = self.retries + 1 if retry else 1
        for attempt in range(tries):
            self.attempts += 1
            try:
                response = self.session.request(method, url, **kwargs)
            except requests.exceptions.SSLError as exc:
                raise HttpError(f"{method} {url}: TLS verification failed ({exc.__class__.__name__}); "
                                "set validate_certs=false only for a trusted test endpoint, or give ca_path") from exc
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                last = HttpError(f"{method} {url}: {exc.__class__.__name__}: cannot reach the server")
                if attempt + 1 < tries:
                    self.sleep(self._delay(attempt))
                    continue
                raise last from exc
            except requests.exceptions.TooManyRedirects as exc:
                raise HttpError(f"{method} {url}: too many redirects ({exc.__class__.__name__})") from exc
            except requests.exceptions.RequestException as exc:  # InvalidURL, InvalidSchema, a bad redirect, ...
                raise HttpError(f"{method} {url}: {exc.__class__.__name__}: the request could not be made "
                                "(check that the URL is a valid http(s) URL)") from exc
            if response.status_code in expected:
                return response
            body = _excerpt(response.text) if not kwargs.get("stream") else ""
            last = HttpError(f"{method} {url}: HTTP {response.status_code}: {body}", response.status_code, body)
            if response.status_code in RETRY_STATUSES and attempt + 1 < tries:
                self.sleep(self._delay(attempt, response))
                continue
            raise last
        raise last or HttpError(f"{method} {url}: no attempt made")  # pragma: no cover

    def json(self, method: str, path: str, expected: t.Iterable[int] = (200,), **kwargs: t.Any) -> t.Any:
        """Like ``request`` but parse the answer as JSON; a malformed answer is a clear HttpError."""
        response = self.request(method, path, expected=expected, **kwargs)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise HttpError(
                f"{method} {self.url(path)}: answer is not valid JSON (HTTP {response.status_code}): "
                f"{_excerpt(response.text, 120)}",
                response.status_code,
            ) from exc
