# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What of an nginx configuration an Ingress can hold: hosts (``server_name``), ``Prefix``/``Exact`` paths, object
names for routes, and nginx times in seconds (for the controller's timeout annotations)."""

from __future__ import annotations

import hashlib
import ipaddress
import re

_DNS1123 = re.compile(r"[^a-z0-9-]+")
_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
# Kubernetes' Ingress rule host: a DNS-1123 subdomain, optionally a wildcard in the first label only.
_INGRESS_HOST = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")
# An Ingress Prefix/Exact path (and the URI part of proxy_pass): printable ASCII without whitespace, and without the
# characters the NGINX ingress controllers refuse in a path ({, }, ;, \) or that would end a quoted annotation.
_INGRESS_PATH = re.compile(r"/[\x21-\x7e]*")
_PATH_FORBIDDEN_CHARS = frozenset('{};\\"\'')
# Kubernetes' Ingress path validation (networking/validation: invalidPathSequences / invalidPathSuffixes).
_PATH_FORBIDDEN_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_PATH_FORBIDDEN_SUFFIXES = ("/..", "/.")


def _duration(value: str) -> str:
    return f"{value}s" if re.fullmatch(r"\d+", value) else value


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str) -> int:
    """nginx time ("90", "5s", "1h", "1m30s") in whole seconds (at least 1)."""
    parts = re.findall(r"(\d+)(ms|[smhdw]?)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return 60
    return max(1, int(sum(int(n) * _UNITS[u or "s"] for n, u in parts)))


def dns1123(text: str, limit: int = 63) -> str:
    name = _DNS1123.sub("-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name) or "root"
    if len(name) > limit:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    return name


def route_name(host: str, path: str) -> str:
    label = host.split(".", maxsplit=1)[0] if host and host not in ("_", "") else "default"
    if label.startswith("*"):
        label = "wildcard"
    rest = path.strip("/")
    return dns1123(f"{label}-{rest}" if rest else f"{label}-root")


def ingress_host(name: str) -> tuple[str, str]:
    """(host, problem) for a ``server_name``: the Ingress host ("" for the catch-all) or why it cannot be one.

    nginx compares names case-insensitively, so ASCII upper case is folded; anything else that is not a DNS-1123
    subdomain (with at most a leading ``*.``) is refused, never repaired.
    """
    if name in ("_", ""):
        return "", ""
    if name.startswith("~"):
        return "", "a regular-expression server_name has no Ingress host equivalent"
    if "$" in name:
        return "", "a server_name with variables has no Ingress host equivalent"
    if name.startswith(".") and not name.startswith(".."):
        return "", ("'.name' (nginx: the name and all its subdomains) is not one Ingress host; "
                    "list the name and '*.name' instead")
    if name.endswith(".*") or "*" in name.lstrip("*"):
        return "", "a wildcard other than a leading '*.' (for example 'app.*') has no Ingress host equivalent"
    host = name.lower() if name.isascii() else name
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return "", "an IP address is not an Ingress host"
    if len(host) > 253 or not _INGRESS_HOST.fullmatch(host):
        return "", ("not a DNS-1123 subdomain (letters, digits, '-' and '.', labels of at most 63 characters, "
                    "at most 253 in all; a wildcard only as a leading '*.')")
    return host, ""


def ingress_path_problem(path: str) -> str:
    """Why ``path`` cannot be an Ingress ``Prefix``/``Exact`` path ("" when it can)."""
    if not path.startswith("/"):
        return "an Ingress path must start with '/'"
    if not _INGRESS_PATH.fullmatch(path):
        return "an Ingress path must be printable ASCII without whitespace or control characters"
    bad = sorted(_PATH_FORBIDDEN_CHARS.intersection(path))
    if bad:
        return f"an Ingress path must not contain {' '.join(repr(c) for c in bad)}"
    for seq in _PATH_FORBIDDEN_SEQUENCES:
        if seq in path:
            return f"an Ingress path must not contain {seq!r}"
    for suffix in _PATH_FORBIDDEN_SUFFIXES:
        if path.endswith(suffix):
            return f"an Ingress path must not end with {suffix!r}"
    return ""
