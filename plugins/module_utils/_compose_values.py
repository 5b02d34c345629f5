# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compose values as Kubernetes wants them: durations, memory and CPU quantities, ports, commands, DNS-1123 names,
secret environment names; and ``ComposeError``, the error every step of the Compose translation raises (the message
names the service and the field)."""

from __future__ import annotations

import functools
import math
import re
import shlex
import typing as t

# Environment names that are secret (globs, case-insensitive; '-' and '.' in a name count as '_'): the words PASSWORD,
# PASSWD, PASSPHRASE, SECRET, CREDENTIAL anywhere; TOKEN and KEY as a suffix or a word; PASS and PWD as a word.
DEFAULT_SECRET_PATTERNS = (
    "*PASSWORD*", "*PASSWD*", "*PASSPHRASE*", "*SECRET*", "*CREDENTIAL*", "*API_KEY*", "*APIKEY*",
    "*TOKEN", "TOKEN_*", "*_TOKEN_*", "*KEY", "KEY_*", "*_KEY_*",
    "PASS", "*_PASS", "PASS_*", "*_PASS_*", "PWD", "*_PWD", "PWD_*", "*_PWD_*",
)


class ComposeError(Exception):
    """Malformed or unsupported Compose input (the message names the service and the field)."""


def _not_utf8(path: str, exc: UnicodeDecodeError) -> str:
    """``path: not UTF-8 text (byte ... at offset N)``; the offset is in the file (a reader's is in its chunk)."""
    try:
        with open(path, "rb") as handle:
            handle.read().decode("utf-8")
    except UnicodeDecodeError as whole:
        exc = whole
    except OSError:
        pass
    return f"{path}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} at offset {exc.start})"


def _scalar(v: t.Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")


def duration_seconds(value: t.Any, where: str) -> int:
    """Compose duration (``1m30s``, ``10s``, ``500ms``, or a number of seconds) as whole seconds (>= 1)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(1, math.ceil(value))
    text = str(value).strip()
    if not text or _DURATION.sub("", text):
        raise ComposeError(f"{where}: invalid duration {value!r} (expected e.g. 30s, 1m30s, 500ms)")
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    total = sum(float(n) * scale[u] for n, u in _DURATION.findall(text))
    return max(1, math.ceil(total))


_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?$", re.I)


def memory_quantity(value: t.Any, where: str) -> str:
    """Compose byte value (``512m``, ``2g``, ``1gb``, bytes) as a Kubernetes quantity (Ki/Mi/Gi)."""
    if isinstance(value, bool):
        raise ComposeError(f"{where}: invalid memory value {value!r}")
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        m = _BYTES.match(str(value).strip())
        if not m:
            raise ComposeError(f"{where}: invalid memory value {value!r} (expected a number with unit b, k, m, g or t)")
        number, unit = float(m.group(1)), m.group(2).lower()
    bytes_ = number * 1024 ** " kmgt".index(unit or " ")
    for suffix, size in (("Gi", 1024 ** 3), ("Mi", 1024 ** 2), ("Ki", 1024)):
        if bytes_ >= size and bytes_ % size == 0:
            return f"{int(bytes_ // size)}{suffix}"
    return str(math.ceil(bytes_))


def cpu_quantity(value: t.Any, where: str) -> str:
    try:
        cpus = float(value)
    except (TypeError, ValueError) as exc:
        raise ComposeError(f"{where}: invalid CPU value {value!r} (expected a number such as 0.5)") from exc
    if cpus <= 0:
        raise ComposeError(f"{where}: CPU value must be positive, got {value!r}")
    millis = round(cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def dns_name(name: str, limit: int = 63) -> str:
    """A DNS-1123 label from a Compose name."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return (out[:limit].rstrip("-")) or "x"


_PORT = re.compile(r"^(?:(?P<ip>\[[^\]]+\]|\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<pub>\d+(?:-\d+)?)?:)?"
                   r"(?P<target>\d+(?:-\d+)?)(?:/(?P<proto>tcp|udp|sctp))?$")


def parse_ports(spec: t.Any, where: str) -> list[dict[str, t.Any]]:
    """Compose ports (short and long syntax) as [{target, published, protocol}]."""
    if not isinstance(spec, list):
        raise ComposeError(f"{where}: must be a list")
    out = []
    for index, item in enumerate(spec):
        here = f"{where}[{index}]"
        if isinstance(item, dict):
            target = item.get("target")
            if not isinstance(target, int) and not (isinstance(target, str) and target.isdigit()):
                raise ComposeError(f"{here}: long syntax needs a numeric 'target', got {target!r}")
            proto = str(item.get("protocol", "tcp")).lower()
            if proto not in ("tcp", "udp", "sctp"):
                raise ComposeError(f"{here}: invalid protocol {proto!r}")
            published = item.get("published")
            out.append({"target": _port_number(target, here), "protocol": proto.upper(),
                        "published": int(published) if str(published or "").isdigit() else None,
                        "name": item.get("name"), "mode": str(item.get("mode") or "ingress")})
            continue
        text = str(item).strip()
        m = _PORT.match(text)
        if not m:
            raise ComposeError(f"{here}: invalid port {item!r} (expected [IP:][HOST:]CONTAINER[/PROTOCOL])")
        targets = _port_range(m.group("target"), here)
        pubs = _port_range(m.group("pub"), here) if m.group("pub") else [None] * len(targets)
        if len(pubs) != len(targets):
            raise ComposeError(f"{here}: published and container port ranges differ in length ({item!r})")
        proto = (m.group("proto") or "tcp").upper()
        out.extend({"target": tp, "published": pp, "protocol": proto, "name": None}
                   for tp, pp in zip(targets, pubs, strict=True))
    return out


def _port_number(value: t.Any, where: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise ComposeError(f"{where}: port {number} out of range 1-65535")
    return number


def _port_range(text: str, where: str) -> list[int]:
    lo, _sep, hi = text.partition("-")
    first, last = _port_number(lo, where), _port_number(hi or lo, where)
    if last < first or last - first > 100:
        raise ComposeError(f"{where}: invalid port range {text!r}")
    return list(range(first, last + 1))


def _command(value: t.Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(f"{where}: cannot split {value!r}: {exc}") from exc
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    raise ComposeError(f"{where}: must be a string or a list")


@functools.lru_cache(maxsize=1024)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    # compiled once per pattern: is_secret_name runs for every variable against ~20 patterns
    return re.compile("^" + re.escape(pattern.upper()).replace(r"\*", ".*") + "$")


@functools.lru_cache(maxsize=64)
def _globs_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # one regex for the whole list, compiled once per list: a name is checked with one match, not one per pattern
    return re.compile("|".join(f"(?:{_glob_regex(p).pattern})" for p in patterns) or "(?!)")


def is_secret_name(name: str, patterns: t.Iterable[str], explicit: t.Iterable[str]) -> bool:
    if name in set(explicit):
        return True
    regex = _globs_regex(tuple(patterns))
    return regex.match(name.upper()) is not None or regex.match(re.sub(r"[-.]", "_", name).upper()) is not None


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$")


def _quantity_value(text: str) -> float:
    match = _QUANTITY.match(text)
    number, unit = float(text[: len(text) - len(match.group(2) or "")]), match.group(2) or ""
    scale = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "Ki": 2 ** 10, "Mi": 2 ** 20,
             "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
    return number * scale.get(unit, 1)
