"""route_latency: synthetic requests to a route's endpoints, their latency figures and a comparison with a baseline.

One request is one health_gate http probe (``_health_probes.probe_http``): its latency is the time to the whole
answer; a failure is no answer, a TLS failure, or a status outside ``expected_status``. Each worker thread keeps
one ``requests.Session`` (keep-alive, as the edge keeps its upstream connections).
"""

from __future__ import annotations

import concurrent.futures
import re
import time
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._health import FAILURE
from ansible_collections.sophia.migrate.plugins.module_utils._health_criteria import percentile
from ansible_collections.sophia.migrate.plugins.module_utils._health_probes import probe_http

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 64


class LatencyConfigError(ValueError):
    """An option that cannot be used, named in the message."""


HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def _check_urls(option: str, urls: list[str]) -> None:
    for i, url in enumerate(urls):
        try:
            parts = urllib.parse.urlsplit(url)
            hostname = parts.hostname
        except ValueError as exc:  # an unclosed [ of an IPv6 address, ...
            raise LatencyConfigError(f"{option}[{i}]: {url!r} is not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not hostname or parts.path not in ("", "/"):
            raise LatencyConfigError(
                f"{option}[{i}]: {url!r} is not a base URL (http:// or https://, a host, no path: the paths go in "
                f"'{option.replace('urls', 'paths')}')"
            )


def _check_paths(option: str, paths: list[str]) -> None:
    for i, path in enumerate(paths):
        if not isinstance(path, str) or not path.startswith("/") or re.search(r"\s", path):
            raise LatencyConfigError(f"{option}[{i}]: {path!r} must start with / and hold no blank")


def _check_headers(option: str, headers: dict[str, str]) -> None:
    """HTTP/1.1 sends header names as tokens and values as Latin-1 text on one line; anything else is refused here."""
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise LatencyConfigError(f"{option}: {name!r} is not an HTTP header name")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise LatencyConfigError(f"{option}.{name}: the value holds characters HTTP headers cannot carry "
                                     "(Latin-1 only)") from None
        if any(c in value for c in "\r\n\0"):
            raise LatencyConfigError(f"{option}.{name}: the value holds a line break or NUL")


def check_options(p: dict[str, t.Any]) -> None:
    """Refuses what cannot be measured, before any request is sent."""
    _check_headers("headers", p["headers"])
    _check_headers("compare_headers", p.get("compare_headers") or {})
    if not p["urls"]:
        raise LatencyConfigError("urls: give at least one base URL")
    _check_urls("urls", p["urls"])
    _check_paths("paths", p["paths"])
    if not p["paths"]:
        raise LatencyConfigError("paths: give at least one path")
    _check_urls("compare_urls", p.get("compare_urls") or [])
    _check_paths("compare_paths", p.get("compare_paths") or [])
    if p.get("compare_urls") and p.get("baseline"):
        raise LatencyConfigError("baseline and compare_urls: give one (a recorded baseline, or a side measured now)")
    if not 1 <= p["count"] <= MAX_REQUESTS:
        raise LatencyConfigError(f"count: {p['count']} is not between 1 and {MAX_REQUESTS}")
    if not 0 <= p["warmup"] <= MAX_REQUESTS:
        raise LatencyConfigError(f"warmup: {p['warmup']} is not between 0 and {MAX_REQUESTS}")
    if not 1 <= p["concurrency"] <= MAX_CONCURRENCY:
        raise LatencyConfigError(f"concurrency: {p['concurrency']} is not between 1 and {MAX_CONCURRENCY}")
    bad = [s for s in p["expected_status"] if not 100 <= s <= 599]
    if bad or not p["expected_status"]:
        raise LatencyConfigError(f"expected_status: {bad or 'empty'} - HTTP statuses are 100 to 599")
    compare = p.get("baseline")
    if compare:
        for key in ("p95_ms", "error_rate"):
            value = compare.get(key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise LatencyConfigError(f"baseline.{key}: {value!r} is not a number >= 0 (a recorded baseline has it)")
    for key in ("latency_tolerance", "latency_floor_ms", "error_rate_tolerance"):
        if p[key] < 0:
            raise LatencyConfigError(f"{key}: {p[key]} must be >= 0")


def targets(urls: list[str], paths: list[str]) -> list[str]:
    """Every URL requested, in turn: each base URL with each path."""
    return [url.rstrip("/") + path for url in urls for path in paths]


def _probe(name: str, url: str, headers: dict[str, str], p: dict[str, t.Any]) -> dict[str, t.Any]:
    return {
        "name": name,
        "method": p["method"],
        "url": url,
        "headers": headers,
        "body": None,
        "timeout": p["timeout"],
        "validate_certs": p["validate_certs"],
        "ca_path": p.get("ca_path"),
        "client_cert": None,
        "client_key": None,
        "expected_status": p["expected_status"],
        "_body_re": None,
    }


def _run(probes: list[dict[str, t.Any]], n: int, p: dict[str, t.Any],
         session_factory: t.Callable[[], t.Any]) -> list[t.Any]:
    """``n`` requests, request i to ``probes[i % len(probes)]``, ``concurrency`` at a time; the samples in order."""
    if n == 0:
        return []
    workers = min(p["concurrency"], n)
    sessions: list[t.Any] = []

    def worker(index: int) -> list[tuple[int, t.Any]]:
        session = session_factory()
        sessions.append(session)
        return [(i, probe_http(probes[i % len(probes)], session)) for i in range(index, n, workers)]

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            done = [f.result() for f in [pool.submit(worker, w) for w in range(workers)]]
    finally:
        for session in sessions:
            session.close()
    return [sample for _i, sample in sorted((pair for part in done for pair in part), key=lambda pair: pair[0])]


def figures(samples: list[t.Any]) -> dict[str, t.Any]:
    """count, errors, error_rate, p50/p95/p99/max (ms, answered requests only), the statuses seen, the first errors."""
    answered = [s.latency_ms for s in samples if s.outcome != FAILURE and s.latency_ms is not None]
    errors = [s for s in samples if s.outcome == FAILURE]
    statuses: dict[str, int] = {}
    for s in samples:
        key = str(s.status) if s.status is not None else "none"
        statuses[key] = statuses.get(key, 0) + 1
    return {
        "count": len(samples),
        "errors": len(errors),
        "error_rate": round(len(errors) / len(samples), 4) if samples else None,
        "p50_ms": percentile(answered, 50),
        "p95_ms": percentile(answered, 95),
        "p99_ms": percentile(answered, 99),
        "max_ms": round(max(answered), 3) if answered else None,
        "statuses": statuses,
        "first_errors": sorted({s.message for s in errors})[:5],
    }


def _with_per_url(samples: list[t.Any], prefix: str, urls: list[str]) -> dict[str, t.Any]:
    out = figures(samples)
    out["per_url"] = {url: figures([s for s in samples if s.probe == prefix + url]) for url in urls}
    return out


def measure(p: dict[str, t.Any], session_factory: t.Callable[[], t.Any]) -> dict[str, t.Any]:
    """Warm-up requests to ``urls`` (not counted), then ``count`` measured ones; figures overall and per URL.

    With ``compare_urls``, ``count`` requests to those too, alternating with the measured ones (one to each side in
    turn, so both meet the same moment's load): their figures are ``baseline_latency``.
    """
    urls = targets(p["urls"], p["paths"])
    probes = [_probe("candidate " + url, url, p["headers"], p) for url in urls]
    start = time.monotonic()
    _run(probes, p["warmup"], p, session_factory)
    warmed = time.monotonic()
    if p.get("compare_urls"):
        other = targets(p["compare_urls"], p["compare_paths"] or p["paths"])
        others = [_probe("compare " + url, url, p["compare_headers"] or p["headers"], p) for url in other]
        rounds = max(len(probes), len(others))
        pairs = [probe for k in range(rounds) for probe in (probes[k % len(probes)], others[k % len(others)])]
        samples = _run(pairs, 2 * p["count"], p, session_factory)
        candidate = [s for s in samples if s.probe.startswith("candidate ")]
        compared = [s for s in samples if s.probe.startswith("compare ")]
    else:
        other, candidate, compared = [], _run(probes, p["count"], p, session_factory), []
    out: dict[str, t.Any] = {"latency": _with_per_url(candidate, "candidate ", urls)}
    out["latency"].update(warmup=p["warmup"], seconds=round(time.monotonic() - warmed, 3),
                          warmup_seconds=round(warmed - start, 3))
    if other:
        out["baseline_latency"] = _with_per_url(compared, "compare ", other)
    return out


def compare(measured: dict[str, t.Any], baseline: dict[str, t.Any], p: dict[str, t.Any]) -> list[str]:
    """What is worse than the baseline beyond the tolerances (empty: within it).

    p95: measured <= baseline x (1 + latency_tolerance) + latency_floor_ms (the floor keeps a 2 ms baseline from
    failing a 5 ms answer); error rate: measured <= baseline + error_rate_tolerance. No answered request at all
    is a regression of its own.
    """
    found = []
    if measured["p95_ms"] is None:
        found.append("no request was answered, so no latency could be measured")
    else:
        limit = round(baseline["p95_ms"] * (1 + p["latency_tolerance"]) + p["latency_floor_ms"], 3)
        if measured["p95_ms"] > limit:
            found.append(
                f"p95 {measured['p95_ms']} ms > {limit} ms (baseline p95 {baseline['p95_ms']} ms x "
                f"{1 + p['latency_tolerance']:g} + {p['latency_floor_ms']:g} ms)"
            )
    limit = round(baseline["error_rate"] + p["error_rate_tolerance"], 4)
    if measured["error_rate"] is not None and measured["error_rate"] > limit:
        found.append(
            f"error rate {measured['error_rate']} > {limit} (baseline {baseline['error_rate']} + "
            f"{p['error_rate_tolerance']:g}); first errors: {measured['first_errors']}"
        )
    return found
