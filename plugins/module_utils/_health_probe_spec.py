"""health_gate's probe options: the argument spec of a probe, and each probe checked and completed with defaults.

``normalize_probe`` refuses (``HealthConfigError``, naming the probe and the option) what a probe of its type cannot
use; ``redact_probe`` is the probe as it may be shown (its URL without credentials, query or fragment).
"""

from __future__ import annotations

import os
import re
import ssl
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils import _tls
from ansible_collections.sophia.migrate.plugins.module_utils._health import HealthConfigError
from ansible_collections.sophia.migrate.plugins.module_utils._http import redact_url

PROBE_TYPES = ("http", "tcp", "redis", "prometheus", "command", "tls")
TLS_MIN_DAYS = 14  # a tls probe's default days-to-expiry threshold (tls_check's default too)
NO_DATA = ("fail", "pass", "inconclusive")
CONDITION_KEYS = {"status", "max_latency_ms", "min_value", "max_value"}
COMMON_KEYS = {"name", "type", "timeout", "success_condition", "failure_condition", "on_no_data"}
TYPE_KEYS = {
    "http": {
        "url",
        "method",
        "expected_status",
        "body_regex",
        "json_path",
        "json_value",
        "headers",
        "body",
        "validate_certs",
        "ca_path",
        "client_cert",
        "client_key",
    },
    "tcp": {"host", "port"},
    "redis": {"url", "host", "port", "password", "username", "db", "tls"},
    "prometheus": {"url", "query", "validate_certs", "headers"},
    "command": {"cmd", "argv", "expected_rc", "stdout_regex"},
    "tls": {"host", "port", "server_name", "ca_path", "min_days", "expected_sha256", "expected_issuer"},
}


# The sub-options of a probe (the module's argument spec): the secrets are no_log, so Ansible masks them in the
# invocation and in every result; which keys a type takes is checked by normalize_probe (TYPE_KEYS).
PROBE_OPTIONS: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str"},
    "type": {"type": "str", "required": True},
    "timeout": {"type": "float"},
    "success_condition": {"type": "dict"},
    "failure_condition": {"type": "dict"},
    "on_no_data": {"type": "str"},
    "url": {"type": "str"},
    "method": {"type": "str"},
    "expected_status": {"type": "list", "elements": "int"},
    "body_regex": {"type": "str"},
    "json_path": {"type": "str"},
    "json_value": {"type": "raw"},
    "headers": {"type": "dict", "no_log": True},
    "body": {"type": "raw"},
    "validate_certs": {"type": "bool"},
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path", "no_log": False},
    "host": {"type": "str"},
    "port": {"type": "int"},
    "db": {"type": "int"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "tls": {"type": "bool"},
    "query": {"type": "str"},
    "cmd": {"type": "str"},
    "argv": {"type": "list", "elements": "str"},
    "expected_rc": {"type": "list", "elements": "int"},
    "stdout_regex": {"type": "str"},
    "server_name": {"type": "str"},
    "min_days": {"type": "int"},
    "expected_sha256": {"type": "str"},
    "expected_issuer": {"type": "str"},
}
URL_SCHEMES = {"http": ("http", "https"), "prometheus": ("http", "https"), "redis": ("redis", "rediss", "unix")}


def check_url(where: str, kind: str, url: t.Any) -> None:
    """A probe URL the probe can use; the error names the probe and shows the URL without credentials."""
    schemes = URL_SCHEMES[kind]
    try:
        parts = urllib.parse.urlsplit(str(url))
        parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
    except ValueError as exc:
        raise HealthConfigError(f"{where}: url {redact_url(url)!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in schemes:
        raise HealthConfigError(
            f"{where}: url must start with {' or '.join(f'{s}://' for s in schemes)} (got {redact_url(url)!r})"
        )
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise HealthConfigError(f"{where}: url {redact_url(url)!r} names no host")


def redact_probe(probe: t.Any) -> t.Any:
    """The probe as it may be shown: its URL without credentials, query or fragment (password and headers are
    no_log options, masked by Ansible)."""
    if isinstance(probe, dict) and probe.get("url") is not None:
        return dict(probe, url=redact_url(probe["url"]))
    return probe


def _compiled(probe: dict[str, t.Any], where: str, key: str) -> None:
    """``probe['_<key>']``: the regular expression in ``probe[key]``, compiled (when given)."""
    if probe.get(key):
        try:
            probe[f"_{key.removesuffix('_regex')}_re"] = re.compile(probe[key])
        except re.error as exc:
            raise HealthConfigError(f"{where}: {key} is not a valid regular expression: {exc}") from exc


def _check_http(probe: dict[str, t.Any], where: str) -> None:
    check_url(where, "http", probe.get("url", ""))
    method = probe.setdefault("method", "GET")
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]{1,20}", method):
        raise HealthConfigError(f"{where}: method must be an HTTP method name like GET or POST, got {method!r:.80}")
    if "body" in probe and not isinstance(probe["body"], (str, dict)):
        raise HealthConfigError(f"{where}: body must be text or a mapping of form fields, "
                                f"got {type(probe['body']).__name__}")
    if probe.get("client_key") and not probe.get("client_cert"):
        raise HealthConfigError(f"{where}: client_key needs client_cert")
    for key in ("client_cert", "client_key"):
        if probe.get(key) and not os.path.isfile(probe[key]):
            raise HealthConfigError(f"{where}: {key} {probe[key]!r:.200} is not a file")
    probe.setdefault("expected_status", [200])
    probe.setdefault("validate_certs", True)
    _compiled(probe, where, "body_regex")


def _check_tcp(probe: dict[str, t.Any], where: str) -> None:
    if not probe.get("host") or not isinstance(probe.get("port"), int):
        raise HealthConfigError(f"{where}: tcp needs host and an integer port")


def _check_redis(probe: dict[str, t.Any], where: str) -> None:
    if not probe.get("url") and not probe.get("host"):
        raise HealthConfigError(f"{where}: redis needs url or host")
    if probe.get("url"):
        check_url(where, "redis", probe["url"])


def _check_prometheus(probe: dict[str, t.Any], where: str) -> None:
    if not probe.get("url") or not probe.get("query"):
        raise HealthConfigError(f"{where}: prometheus needs url (base URL of Prometheus) and query")
    check_url(where, "prometheus", probe["url"])
    probe.setdefault("validate_certs", True)


def _check_command(probe: dict[str, t.Any], where: str) -> None:
    if not probe.get("cmd") and not probe.get("argv"):
        raise HealthConfigError(f"{where}: command needs cmd or argv")
    probe.setdefault("expected_rc", [0])
    _compiled(probe, where, "stdout_regex")


def _check_tls(probe: dict[str, t.Any], where: str) -> None:
    """host to connect to, server_name (SNI, default host), port 443, min_days 14, a CA bundle OpenSSL loads, and
    expected_sha256 / expected_issuer that can match something."""
    host = probe.get("host")
    if not host:
        raise HealthConfigError(f"{where}: tls needs host (the name or address to connect to)")
    if not _tls.is_address(host):
        raise HealthConfigError(f"{where}: host must be a host name or an IP address, got {host!r:.80}")
    server_name = probe.setdefault("server_name", host)
    if not _tls.is_server_name(server_name):
        raise HealthConfigError(f"{where}: server_name must be a DNS name (ASCII, no spaces), got {server_name!r:.80}")
    port = probe.setdefault("port", 443)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise HealthConfigError(f"{where}: port must be a port number from 1 to 65535, got {port!r:.40}")
    min_days = probe.setdefault("min_days", TLS_MIN_DAYS)
    if isinstance(min_days, bool) or not isinstance(min_days, int) or not 0 <= min_days <= 3650:
        raise HealthConfigError(f"{where}: min_days must be a whole number of days from 0 to 3650, "
                                f"got {min_days!r:.40}")
    if "expected_sha256" in probe:
        fingerprint = _tls.normalise_fingerprint(str(probe["expected_sha256"]))
        if not fingerprint:
            raise HealthConfigError(f"{where}: expected_sha256 must be a SHA-256 fingerprint (64 hex digits, colons "
                                    f"allowed), got {probe['expected_sha256']!r:.100}")
        probe["expected_sha256"] = fingerprint
    if "expected_issuer" in probe and not str(probe["expected_issuer"]).strip():
        raise HealthConfigError(f"{where}: expected_issuer is empty (give the issuer's CN, O or RFC 4514 name)")
    if "ca_path" in probe:
        path = probe["ca_path"]
        if not os.path.isfile(path):
            raise HealthConfigError(f"{where}: ca_path {path!r:.200} is not a file")
        try:
            _tls.trust_context(path)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise HealthConfigError(f"{where}: ca_path {path!r:.200} holds no CA certificate OpenSSL can load "
                                    f"({getattr(exc, 'reason', None) or exc})") from None


_TYPE_CHECKS: dict[str, t.Callable[[dict[str, t.Any], str], None]] = {
    "http": _check_http,
    "tcp": _check_tcp,
    "redis": _check_redis,
    "prometheus": _check_prometheus,
    "command": _check_command,
    "tls": _check_tls,
}


def normalize_probe(raw: t.Any, index: int) -> dict[str, t.Any]:
    """Validate one probe's options; return a copy with defaults. Raises HealthConfigError."""
    if not isinstance(raw, dict):
        raise HealthConfigError(f"probes[{index}] must be a dict, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind not in PROBE_TYPES:
        raise HealthConfigError(f"probes[{index}]: unknown type {kind!r} (one of {', '.join(PROBE_TYPES)})")
    # Options not given are None in the module's sub-options: they are left out, so the defaults below apply.
    probe = {k: v for k, v in raw.items() if v is not None}
    probe.setdefault("name", f"{kind}-{index}")
    where = f"probe '{probe['name']}'"
    unknown = set(probe) - COMMON_KEYS - TYPE_KEYS[kind]
    if unknown:
        raise HealthConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))} for type {kind}")
    timeout = probe.setdefault("timeout", 5.0)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise HealthConfigError(f"{where}: timeout must be a positive number of seconds")
    if probe.setdefault("on_no_data", "fail") not in NO_DATA:
        raise HealthConfigError(f"{where}: on_no_data must be one of {', '.join(NO_DATA)}")
    for key in ("success_condition", "failure_condition"):
        cond = probe.setdefault(key, {})
        if not isinstance(cond, dict) or set(cond) - CONDITION_KEYS:
            raise HealthConfigError(f"{where}: {key} takes only {', '.join(sorted(CONDITION_KEYS))}")
    _TYPE_CHECKS[kind](probe, where)
    return probe
