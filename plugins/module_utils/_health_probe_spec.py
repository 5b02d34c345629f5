"""health_gate's probe options: the argument spec of a probe, and each probe checked and completed with defaults.

``normalize_probe`` refuses (``HealthConfigError``, naming the probe and the option) what a probe of its type cannot
use; ``redact_probe`` is the probe as it may be shown (its URL without credentials, query or fragment).
"""

from __future__ import annotations

import os
import re
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._health import HealthConfigError
from ansible_collections.sophia.migrate.plugins.module_utils._http import redact_url

PROBE_TYPES = ("http", "tcp", "redis", "prometheus", "command")
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
    if kind == "http":
        check_url(where, kind, probe.get("url", ""))
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
        if probe.get("body_regex"):
            try:
                probe["_body_re"] = re.compile(probe["body_regex"])
            except re.error as exc:
                raise HealthConfigError(f"{where}: body_regex is not a valid regular expression: {exc}") from exc
    elif kind == "tcp":
        if not probe.get("host") or not isinstance(probe.get("port"), int):
            raise HealthConfigError(f"{where}: tcp needs host and an integer port")
    elif kind == "redis":
        if not probe.get("url") and not probe.get("host"):
            raise HealthConfigError(f"{where}: redis needs url or host")
        if probe.get("url"):
            check_url(where, kind, probe["url"])
    elif kind == "prometheus":
        if not probe.get("url") or not probe.get("query"):
            raise HealthConfigError(f"{where}: prometheus needs url (base URL of Prometheus) and query")
        check_url(where, kind, probe["url"])
        probe.setdefault("validate_certs", True)
    elif kind == "command":
        if not probe.get("cmd") and not probe.get("argv"):
            raise HealthConfigError(f"{where}: command needs cmd or argv")
        probe.setdefault("expected_rc", [0])
        if probe.get("stdout_regex"):
            try:
                probe["_stdout_re"] = re.compile(probe["stdout_regex"])
            except re.error as exc:
                raise HealthConfigError(f"{where}: stdout_regex is not a valid regular expression: {exc}") from exc
    return probe
