"""HAProxy Runtime API client used by the traffic splitter (no reload, no netcat).

The Runtime API (the ``stats socket ... level admin`` of HAProxy) changes a server's weight and
administrative state in the running process: established client connections are not touched, so
moving traffic this way loses no request, unlike an nginx reload which closes idle keep-alive
connections under the clients' feet.

- ``RuntimeApi.command`` sends one command over a UNIX socket (or ``ipv4@host:port``) and returns
  the answer; an answer that HAProxy marks as an error raises ``HaproxyError``.
- ``RuntimeApi.servers(backend)`` parses ``show servers state <backend>`` into a dict per server.
- ``RuntimeApi.set_health`` stops or resumes servers' health checks (``disable health`` / ``enable health``) and
  ``RuntimeApi.set_addresses`` moves servers (``set server ... addr``): the splitter_hold module keeps a server that
  is restarting UP, parked on an address that refuses, so that its requests wait instead of failing.
- ``plan_weights`` turns a route's share for the new side into integer weights for every server.
"""

from __future__ import annotations

import os
import re
import socket
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write

# srv_admin_state bits (HAProxy include/haproxy/server-t.h): any maintenance (forced, inherited,
# DNS resolution) and any drain. 0x04 (CMAINT) only remembers that the configuration said
# "disabled"; it is no maintenance once "set server ... state ready" cleared the forced bit.
ADMIN_MAINT = 0x23
ADMIN_DRAIN = 0x18
# srv_op_state values.
OP_STATES = {0: "STOPPED", 1: "STARTING", 2: "RUNNING", 3: "STOPPING"}
# srv_check_state bits (include/haproxy/check-t.h): a health check is configured, and administratively enabled
# ("disable health" clears ENABLED; the server is then unchecked and its last state kept).
CHECK_CONFIGURED = 0x02
CHECK_ENABLED = 0x04
MAX_WEIGHT = 256
ERROR_MARKERS = ("Unknown command", "No such", "Require ", "Invalid", "cannot", "permission denied",
                 "not found", "expects", "Missing")


# HAProxy's own rule for proxy and server names (invalid_char() in src/tools.c): letters, digits and "_.:-".
# A name is put into a Runtime API command line; anything else (";", spaces, newlines) would be another command.
NAME_MAX = 64
NAME_PATTERN = re.compile(rf"[A-Za-z0-9_.:-]{{1,{NAME_MAX}}}")
IPV4 = re.compile(r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}")


def split_address(value: t.Any, what: str) -> tuple[str, int]:
    """``IPv4:port`` as (ip, port), else HaproxyError naming ``what``."""
    ip, _sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    if not IPV4.fullmatch(ip) or not port.isdigit() or not 1 <= int(port) <= 65535:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise HaproxyError(f"{what} {shown} is not IPV4:PORT (a port from 1 to 65535)")
    return ip, int(port)


class HaproxyError(Exception):
    """The Runtime API could not be reached or refused a command."""


def check_name(value: t.Any, what: str) -> str:
    """``value`` when it is a valid HAProxy backend/server name, else HaproxyError naming ``what``."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise HaproxyError(f"{what} {shown} is not a HAProxy name: 1 to {NAME_MAX} characters among letters, "
                           "digits, '_', '.', ':' and '-'")
    return value


class RuntimeApi:
    def __init__(self, address: str, timeout: float = 5.0):
        self.address = address
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if self.address.startswith("ipv4@") or (":" in self.address and not self.address.startswith("/")):
            host, _sep, port = self.address.removeprefix("ipv4@").rpartition(":")
            if not port.isdigit() or not 1 <= int(port) <= 65535:
                raise HaproxyError(f"runtime_api {self.address[:200]!r} is neither a socket path nor HOST:PORT "
                                   "with a port from 1 to 65535")
            sock = socket.create_connection((host, int(port)), timeout=self.timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.address)
        return sock

    def command(self, cmd: str) -> str:
        try:
            sock = self._connect()
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in a socket path
            raise HaproxyError(f"cannot reach the HAProxy Runtime API at {self.address}: {exc} "
                               "(is 'stats socket ... level admin' configured and HAProxy running?)") from exc
        chunks = []
        try:
            sock.sendall(cmd.encode() + b"\n")
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except OSError as exc:
            raise HaproxyError(f"HAProxy Runtime API at {self.address} failed during '{cmd}': {exc}") from exc
        finally:
            sock.close()
        answer = b"".join(chunks).decode(errors="replace")
        first = answer.strip().splitlines()[0] if answer.strip() else ""
        if any(marker.lower() in first.lower() for marker in ERROR_MARKERS):
            raise HaproxyError(f"HAProxy refused '{cmd}': {answer.strip()[:300]}")
        return answer

    def servers(self, backend: str) -> dict[str, dict[str, t.Any]]:
        """``show servers state <backend>``: weight, admin/operational state and address per server."""
        check_name(backend, "backend")
        answer = self.command(f"show servers state {backend}")
        lines = [line for line in answer.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# be_id")), None)
        if header is None:
            raise HaproxyError(f"unexpected answer to 'show servers state {backend}': {answer.strip()[:300]}")
        names = header.lstrip("# ").split()
        out: dict[str, dict[str, t.Any]] = {}
        for line in lines:
            if line.startswith("#") or line.strip() == "1":
                continue
            row = dict(zip(names, line.split(), strict=False))
            if row.get("be_name") != backend:
                continue
            admin = int(row.get("srv_admin_state", 0))
            admin_name = "ready"
            if admin & ADMIN_DRAIN:
                admin_name = "drain"
            if admin & ADMIN_MAINT:
                admin_name = "maint"
            check = int(row.get("srv_check_state", 0))
            health = "none"
            if check & CHECK_CONFIGURED:
                health = "enabled" if check & CHECK_ENABLED else "disabled"
            out[row["srv_name"]] = {
                "weight": int(row.get("srv_uweight", 0)),
                "initial_weight": int(row.get("srv_iweight", 0)),
                "address": f"{row.get('srv_addr')}:{row.get('srv_port', '')}".rstrip(":"),
                "admin": admin_name,
                "operational": OP_STATES.get(int(row.get("srv_op_state", 0)), row.get("srv_op_state")),
                "health": health,
            }
        if not out:
            raise HaproxyError(f"HAProxy has no backend named '{backend}' (or it has no servers)")
        return out

    def set_server(self, backend: str, server: str, weight: int, admin: str) -> None:
        self.set_servers(backend, [(server, weight, admin)])

    def set_servers(self, backend: str, changes: list[tuple[str, int, str]]) -> None:
        """Weights and states of several servers in one Runtime API line (``cmd; cmd; ...``): HAProxy
        runs them back to back, so the traffic sees the intermediate mix for microseconds at most."""
        check_name(backend, "backend")
        cmds = []
        for server, weight, admin in changes:
            check_name(server, "server")
            if admin not in ("ready", "drain", "maint") or isinstance(weight, bool) or not isinstance(weight, int):
                raise HaproxyError(f"server {server}: weight {weight!r} / state {admin!r} cannot be sent")
            cmds += [f"set server {backend}/{server} weight {weight}", f"set server {backend}/{server} state {admin}"]
        answer = self.command("; ".join(cmds))
        for line in answer.splitlines():
            if line.strip() and any(marker.lower() in line.lower() for marker in ERROR_MARKERS):
                raise HaproxyError(f"HAProxy refused a change on backend {backend}: {line.strip()[:300]}")

    def set_health(self, backend: str, changes: list[tuple[str, bool]]) -> None:
        """Health checks of several servers stopped (False) or resumed (True), in one Runtime API line."""
        check_name(backend, "backend")
        cmds = []
        for server, enabled in changes:
            check_name(server, "server")
            cmds.append(f"{'enable' if enabled else 'disable'} health {backend}/{server}")
        answer = self.command("; ".join(cmds))
        for line in answer.splitlines():
            if line.strip() and any(marker.lower() in line.lower() for marker in ERROR_MARKERS):
                raise HaproxyError(f"HAProxy refused a health check change on backend {backend}: {line.strip()[:300]}")

    def set_addresses(self, backend: str, changes: list[tuple[str, str, int]]) -> None:
        """Servers moved to another address (``set server <b>/<s> addr <ip> port <port>``), in one Runtime API line."""
        check_name(backend, "backend")
        cmds = []
        for server, ip, port in changes:
            check_name(server, "server")
            if not IPV4.fullmatch(ip) or isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise HaproxyError(f"server {server}: address {ip!r} port {port!r} cannot be sent (an IPv4 address "
                                   "and a port from 1 to 65535)")
            cmds.append(f"set server {backend}/{server} addr {ip} port {port}")
        answer = self.command("; ".join(cmds))
        for line in answer.splitlines():
            if line.strip() and any(marker.lower() in line.lower() for marker in ERROR_MARKERS):
                raise HaproxyError(f"HAProxy refused an address change on backend {backend}: {line.strip()[:300]}")

    def save_state(self, path: str) -> None:
        """Write ``show servers state`` to HAProxy's ``server-state-file`` (atomically), so that a
        reload or restart starts with the live weights instead of the configured ones."""
        answer = self.command("show servers state")
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        atomic_write(path, answer, 0o644)  # HAProxy reads it after dropping privileges


def plan_weights(new_share: int, old_servers: list[str], new_servers: list[str]) -> dict[str, int]:
    """Integer weights that give the new side ``new_share`` percent of the requests.

    Every old server gets ``(100 - share) * len(new)`` and every new server ``share * len(old)``,
    so the totals per side are in the ratio (100 - share) : share whatever the number of servers.
    """
    if not 0 <= new_share <= 100:
        raise HaproxyError(f"a weight share must be between 0 and 100, got {new_share}")
    if not old_servers or not new_servers:
        raise HaproxyError("a route needs at least one server on each side")
    old_w = (100 - new_share) * len(new_servers)
    new_w = new_share * len(old_servers)
    if max(old_w, new_w) > MAX_WEIGHT:
        divisor = next(d for d in range(2, 101) if max(old_w, new_w) / d <= MAX_WEIGHT)
        if old_w % divisor or new_w % divisor:
            raise HaproxyError(f"{len(old_servers)} old and {len(new_servers)} new servers cannot express {new_share}% "
                               f"exactly with HAProxy weights (max {MAX_WEIGHT}); use fewer servers per side")
        old_w, new_w = old_w // divisor, new_w // divisor
    return {**dict.fromkeys(old_servers, old_w), **dict.fromkeys(new_servers, new_w)}


def share_of(weights: dict[str, int], new_servers: list[str], admin: dict[str, str] | None = None) -> int | None:
    """The new side's share in percent from live weights (servers in maintenance count as 0)."""
    admin = admin or {}
    live = {name: (0 if admin.get(name) == "maint" else w) for name, w in weights.items()}
    total = sum(live.values())
    if total == 0:
        return None
    return round(100 * sum(live[n] for n in new_servers if n in live) / total)
