"""health_gate's probes: one measurement of an http, tcp, redis, prometheus, command or tls probe, as a ``Sample``.

A probe never raises for what it meets on the wire: a timeout, a refused connection, a TLS failure or an answer
that is not what was expected is a failed sample with a message (no secret in it); ``run_probe`` then applies the
probe's conditions (``_health_criteria.judge``).
"""

from __future__ import annotations

import json
import math
import re
import socket
import ssl
import time
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _tls
from ansible_collections.sophia.migrate.plugins.module_utils._health import FAILURE, INCONCLUSIVE, SUCCESS, Sample
from ansible_collections.sophia.migrate.plugins.module_utils._health_criteria import judge
from ansible_collections.sophia.migrate.plugins.module_utils._http import redact_url


def _json_path(document: t.Any, path: str) -> t.Any:
    node = document
    for part in [p for p in re.split(r"\.|\[(\d+)\]", path.lstrip("$.")) if p]:
        if isinstance(node, list) and part.isdigit():
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def _failed_after(probe: dict[str, t.Any], start: float, message: str) -> Sample:
    """A failed sample of ``probe`` that took from ``start`` until now (its latency)."""
    return Sample(probe["name"], FAILURE, latency_ms=round((time.monotonic() - start) * 1000, 2), message=message)


def probe_http(probe: dict[str, t.Any], session: t.Any) -> Sample:
    import requests  # noqa: PLC0415 - imported where it is needed, reported missing by the module

    start = time.monotonic()
    verify: t.Any = probe["validate_certs"]
    if verify and probe.get("ca_path"):
        verify = probe["ca_path"]
    cert = (probe["client_cert"], probe["client_key"]) if probe.get("client_key") else probe.get("client_cert")
    try:
        resp = session.request(
            probe["method"],
            probe["url"],
            headers=probe.get("headers") or {},
            data=probe.get("body"),
            timeout=probe["timeout"],
            verify=verify,
            cert=cert,
            allow_redirects=False,
        )
        body = resp.text
    except requests.exceptions.Timeout:
        return _failed_after(probe, start, f"no answer within {probe['timeout']}s")
    except requests.exceptions.SSLError as exc:
        return Sample(probe["name"], FAILURE, message=f"TLS verification failed: {exc.__class__.__name__}")
    except requests.exceptions.RequestException as exc:
        return Sample(probe["name"], FAILURE, message=f"{exc.__class__.__name__}: connection failed")
    latency = round((time.monotonic() - start) * 1000, 2)
    sample = Sample(probe["name"], SUCCESS, latency_ms=latency, status=resp.status_code)
    if resp.status_code not in probe["expected_status"]:
        sample.outcome, sample.message = FAILURE, f"HTTP {resp.status_code}, expected {probe['expected_status']}"
    elif probe.get("_body_re") and not probe["_body_re"].search(body):
        sample.outcome, sample.message = FAILURE, f"body does not match /{probe['body_regex']}/"
    elif probe.get("json_path"):
        try:
            found = _json_path(json.loads(body), probe["json_path"])
        except (ValueError, KeyError, IndexError, TypeError):
            sample.outcome, sample.message = FAILURE, f"no value at {probe['json_path']} in the JSON answer"
        else:
            if "json_value" in probe and found != probe["json_value"]:
                sample.outcome = FAILURE
                sample.message = f"{probe['json_path']} is {found!r}, expected {probe['json_value']!r}"
    return sample


def probe_tcp(probe: dict[str, t.Any]) -> Sample:
    start = time.monotonic()
    try:
        with socket.create_connection((probe["host"], probe["port"]), timeout=probe["timeout"]):
            pass
    except OSError as exc:
        return _failed_after(probe, start, f"connect to {probe['host']}:{probe['port']} failed: {exc.strerror or exc}")
    return Sample(probe["name"], SUCCESS, latency_ms=round((time.monotonic() - start) * 1000, 2))


def probe_redis(probe: dict[str, t.Any]) -> Sample:
    import redis  # noqa: PLC0415 - optional dependency, reported by the module

    start = time.monotonic()
    try:
        if probe.get("url"):
            client = redis.Redis.from_url(
                probe["url"], socket_timeout=probe["timeout"], socket_connect_timeout=probe["timeout"]
            )
        else:
            client = redis.Redis(
                host=probe["host"],
                port=probe.get("port", 6379),
                db=probe.get("db", 0),
                username=probe.get("username"),
                password=probe.get("password"),
                ssl=probe.get("tls", False),
                socket_timeout=probe["timeout"],
                socket_connect_timeout=probe["timeout"],
            )
        ok = client.ping()
        client.close()
    except redis.exceptions.AuthenticationError:
        return Sample(probe["name"], FAILURE, message="Redis refused the credentials")
    except ValueError as exc:  # redis-py's own URL parsing; normalize_probe already refuses what it can see
        shown = redact_url(probe.get("url"))
        return Sample(probe["name"], FAILURE, message=f"Redis URL {shown!r} rejected ({exc.__class__.__name__})")
    except redis.exceptions.RedisError as exc:
        return _failed_after(probe, start, f"Redis PING failed: {exc.__class__.__name__}")
    latency = round((time.monotonic() - start) * 1000, 2)
    return Sample(probe["name"], SUCCESS if ok else FAILURE, latency_ms=latency, status="PONG" if ok else None)


def probe_prometheus(probe: dict[str, t.Any], session: t.Any) -> Sample:
    import requests  # noqa: PLC0415

    start = time.monotonic()
    try:
        resp = session.get(
            probe["url"].rstrip("/") + "/api/v1/query",
            params={"query": probe["query"]},
            headers=probe.get("headers") or {},
            timeout=probe["timeout"],
            verify=probe["validate_certs"],
        )
        body = resp.json()
    except requests.exceptions.RequestException as exc:
        return Sample(probe["name"], FAILURE, message=f"Prometheus unreachable: {exc.__class__.__name__}")
    except ValueError:
        return Sample(probe["name"], FAILURE, message="Prometheus answered something that is not JSON")
    latency = round((time.monotonic() - start) * 1000, 2)
    if resp.status_code != 200 or body.get("status") != "success":
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=latency,
            status=resp.status_code,
            message=f"Prometheus error: {body.get('error', resp.status_code)}",
        )
    result = (body.get("data") or {}).get("result") or []
    rtype = (body.get("data") or {}).get("resultType")
    values = []
    if rtype == "scalar" and result:
        values = [float(result[1])]
    elif rtype == "vector":
        values = [float(r["value"][1]) for r in result]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        policy = probe["on_no_data"]
        outcome = {"fail": FAILURE, "pass": SUCCESS, "inconclusive": INCONCLUSIVE}[policy]
        return Sample(
            probe["name"],
            outcome,
            latency_ms=latency,
            message=f"query returned no data (on_no_data={policy})",
            final=True,
        )
    if len(values) > 1:
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=latency,
            message=f"query returned {len(values)} series; aggregate it to one value",
        )
    sample = Sample(probe["name"], SUCCESS, latency_ms=latency, value=values[0])
    if not probe["success_condition"] and not probe["failure_condition"]:
        sample.outcome, sample.message = FAILURE, "a prometheus probe needs success_condition or failure_condition"
    return sample


def probe_command(probe: dict[str, t.Any], run_command: t.Callable[..., tuple[int, str, str]]) -> Sample:
    start = time.monotonic()
    args = probe.get("argv") or probe["cmd"]
    try:
        rc, out, err = run_command(args, timeout=probe["timeout"])
    except TimeoutError:
        return _failed_after(probe, start, f"command did not finish within {probe['timeout']}s")
    latency = round((time.monotonic() - start) * 1000, 2)
    sample = Sample(probe["name"], SUCCESS, latency_ms=latency, status=rc)
    if rc not in probe["expected_rc"]:
        sample.outcome = FAILURE
        sample.message = f"exit code {rc}, expected {probe['expected_rc']}: {(err or out).strip()[:200]}"
    elif probe.get("_stdout_re") and not probe["_stdout_re"].search(out):
        sample.outcome, sample.message = FAILURE, f"output does not match /{probe['stdout_regex']}/"
    return sample


def probe_tls(probe: dict[str, t.Any]) -> Sample:
    """The certificate ``host:port`` serves for ``server_name``, judged by tls_check's rules (``_tls.check_endpoint``):
    chain, host name, days to expiry, expected fingerprint / issuer; connection and handshake within the timeout."""
    start = time.monotonic()
    try:
        checked = _tls.check_endpoint(probe["server_name"], probe["host"], probe["port"], probe.get("ca_path", ""),
                                      probe["min_days"], probe["timeout"], probe.get("expected_sha256", ""),
                                      probe.get("expected_issuer", ""))
    except (ssl.SSLError, OSError) as exc:  # the CA bundle, checked by normalize_probe, became unreadable
        return _failed_after(probe, start, f"CA bundle {probe.get('ca_path')} cannot be loaded: {exc}")
    latency = round((time.monotonic() - start) * 1000, 2)
    served = checked["certificate"]
    return Sample(
        probe["name"],
        SUCCESS if checked["verdict"] == "pass" else FAILURE,
        latency_ms=latency,
        message="; ".join(checked["reasons"]),
        certificate={k: served[k] for k in ("sha256", "issuer", "not_after", "days_left")} if served else None,
    )


def run_probe(probe: dict[str, t.Any], session: t.Any, run_command: t.Callable[..., tuple[int, str, str]]) -> Sample:
    kind = probe["type"]
    if kind == "http":
        sample = probe_http(probe, session)
    elif kind == "tcp":
        sample = probe_tcp(probe)
    elif kind == "redis":
        sample = probe_redis(probe)
    elif kind == "prometheus":
        sample = probe_prometheus(probe, session)
    elif kind == "tls":
        sample = probe_tls(probe)
    else:
        sample = probe_command(probe, run_command)
    return judge(sample, probe["success_condition"], probe["failure_condition"])
