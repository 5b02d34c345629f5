#!/usr/bin/python
# Copyright: (c) 2026, Sophia Platform Team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: splitter_hold
short_description: Hold a route's requests in the traffic splitter while its service restarts
version_added: 0.3.0
description:
  - The traffic splitter of P(sophia.migrate.traffic_shift#role) marks a server DOWN after two failed health
    checks and then answers 503. When a service is stopped and started again on purpose (the write freeze of
    P(sophia.migrate.data_migration#role)), its requests should wait instead.
  - With O(state=held) the health checks of O(servers) are stopped through the HAProxy Runtime API
    (C(disable health <backend>/<server>)), so the servers stay UP, unchecked. A request to a stopped server then
    fails to connect, and the splitter's C(retry-on conn-failure) tries it again on the same server about once a
    second (C(retries), the role's C(traffic_shift_connect_retries)) until the service listens again. Nothing was
    sent to the server before a connection failure, so this is safe for POST requests too.
  - With O(park), the held servers are also moved to that address, where nothing listens, so every connection is
    refused and retried. Needed when the server's address still accepts connections while its service is down, as
    a Docker port published by docker-proxy (Docker's default) does while the container starts or stops (it
    accepts, then closes, and HAProxy answers 502, not retried). The module refuses a O(park) address that accepts.
  - With O(state=released) the servers go back to O(addresses) (when given) and their health checks are resumed
    (C(enable health)). Release only once the service answers at its own address.
  - Only the held servers may take the route's traffic while it is held (every other server of O(backend) at
    weight 0 or in maintenance), because a retried request may be sent to another server (C(option redispatch)), and
    the hold must not move writes to the other side. The module fails before changing anything otherwise.
  - Changed only when a server's health check changes state; the live state is read back after a change.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.haproxy_runtime_api
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  backend:
    description:
      - The route's backend (the role names it C(route_) and the route's name with C(-) turned into C(_)).
      - Backend and server names are HAProxy names (1 to 64 letters, digits, C(_), C(.), C(:), C(-)); any other
        name is refused before anything is sent to the Runtime API, in check mode too.
    type: str
    required: true
  servers:
    description: The servers whose requests are held (the Compose side, C(compose1) ...).
    type: list
    elements: str
    default: [compose1]
  park:
    description:
      - C(IPV4:PORT) where nothing listens (for example C(127.0.0.1:1)); with O(state=held) the held servers are moved
        there. Omit to leave them where they are.
    type: str
  addresses:
    description:
      - C(IPV4:PORT) per server of O(servers), the address each goes back to with O(state=released) (the route's
        Compose upstreams). Needed to release servers that were held with O(park).
    type: dict
  state:
    description: V(held) stops the health checks of O(servers), V(released) resumes them.
    type: str
    choices: [held, released]
    default: held
  timeout:
    description: Seconds to wait for the Runtime API.
    type: float
    default: 5
notes:
  - A hold lasts as long as the splitter retries a connection, about C(retries) seconds, and as long as the client
    waits (C(timeout server) of the splitter, the client's own timeout); a service down for longer fails requests.
  - Always release a hold (in a C(block) with C(always)), or a held server that really fails is never marked DOWN.
"""

EXAMPLES = r"""
- name: Hold /api/context while mcp-context restarts
  sophia.migrate.splitter_hold:
    runtime_api: /run/haproxy/admin.sock
    backend: route_www_api_context
    servers: [compose1]
    state: held

- name: Release it (health checks resumed)
  sophia.migrate.splitter_hold:
    runtime_api: /run/haproxy/admin.sock
    backend: route_www_api_context
    state: released

- name: Hold a route whose upstream is a docker-proxy published port (parked where connections are refused)
  sophia.migrate.splitter_hold:
    runtime_api: /run/haproxy/admin.sock
    backend: route_www_api_context
    park: 127.0.0.1:1

- name: Release it, back to its published port
  sophia.migrate.splitter_hold:
    runtime_api: /run/haproxy/admin.sock
    backend: route_www_api_context
    addresses: {compose1: 127.0.0.1:8002}
    state: released
"""

RETURN = r"""
held:
  description: Servers of O(servers) whose health checks are stopped after the module ran (planned in check mode).
  returned: always
  type: list
  elements: str
  sample: [compose1]
servers:
  description:
    - Live state per server of O(backend) (weight, admin V(ready)/V(drain)/V(maint), operational state, address,
      health check V(enabled)/V(disabled)/V(none)).
  returned: always
  type: dict
  sample: {"compose1": {"weight": 100, "admin": "ready", "operational": "RUNNING", "health": "disabled",
           "address": "127.0.0.1:1"}}
"""

import socket

from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import (
    HaproxyError,
    RuntimeApi,
    check_name,
    split_address,
)


def _refused(ip: str, port: int, timeout: float) -> None:
    """The park address must refuse connections (a listener there would take the held requests)."""
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
    except ConnectionRefusedError:
        return
    except OSError as exc:
        raise HaproxyError(f"option park: {ip}:{port} does not refuse connections ({exc}); choose an address where "
                           "nothing listens, such as 127.0.0.1:1") from exc
    raise HaproxyError(f"option park: something listens on {ip}:{port}; choose an address where nothing listens")


def _planned(live: dict, servers: list[str], hold: bool, park: str | None, addresses: dict) -> dict:
    out = {}
    for n in servers:
        health = live[n]["health"]
        if health != "none":
            health = "disabled" if hold else "enabled"
        address = live[n]["address"]
        if hold and park:
            address = park
        elif not hold and n in addresses:
            address = addresses[n]
        out[n] = {"health": health, "address": address}
    return out


def run(module: AnsibleModule) -> dict:
    p = module.params
    # Names go into Runtime API command lines: validated before any socket I/O, check mode included.
    check_name(p["backend"], "option backend:")
    if not p["servers"]:
        raise HaproxyError("option servers: at least one server to hold")
    for name in p["servers"]:
        check_name(name, "option servers: server")
    servers = list(dict.fromkeys(p["servers"]))
    park = None
    if p["park"] is not None:
        ip, port = split_address(p["park"], "option park:")
        park = f"{ip}:{port}"
    addresses = {}
    for name, value in (p["addresses"] or {}).items():
        if name not in servers:
            raise HaproxyError(f"option addresses: {str(name)[:80]!r} is not one of the servers ({', '.join(servers)})")
        ip, port = split_address(value, f"option addresses.{name}:")
        addresses[name] = f"{ip}:{port}"
    api = RuntimeApi(p["runtime_api"], p["timeout"])
    live = api.servers(p["backend"])
    missing = [n for n in servers if n not in live]
    if missing:
        raise HaproxyError(f"backend '{p['backend']}' has no server(s) {', '.join(missing)} "
                           f"(it has: {', '.join(sorted(live))})")
    hold = p["state"] == "held"
    if hold:
        others = [f"{n} (weight {s['weight']}, {s['admin']})" for n, s in sorted(live.items())
                  if n not in servers and s["weight"] > 0 and s["admin"] != "maint"]
        if others:
            raise HaproxyError(f"backend '{p['backend']}': {', '.join(others)} also take(s) the route's traffic; "
                               "a held request can be redispatched there. Hold a route whose whole traffic is on the "
                               "held servers (the other side at 0%).")
        down = [n for n in servers if live[n]["operational"] != "RUNNING"]
        if down:
            module.warn(f"splitter_hold: {', '.join(down)} of {p['backend']} is not UP: a hold keeps a server UP, "
                        "it does not bring one back; its requests fail until it is")
    planned = _planned(live, servers, hold, park, addresses)
    before = {n: {"health": live[n]["health"], "address": live[n]["address"]} for n in servers}
    todo = [n for n in servers if planned[n] != before[n]]
    result = {"changed": bool(todo), "servers": live,
              "held": [n for n in servers if live[n]["health"] == "disabled"]}
    if not todo:
        return result
    result["diff"] = {"before": before, "after": planned, "before_header": f"{p['backend']} servers",
                      "after_header": f"{p['backend']} servers ({p['state']})"}
    if hold and park and any(planned[n]["address"] != before[n]["address"] for n in todo):
        _refused(*split_address(park, "option park:"), min(p["timeout"], 5.0))
    if module.check_mode:
        result["held"] = [n for n in servers if planned[n]["health"] == "disabled"]
        return result
    health = [(n, not hold) for n in todo if planned[n]["health"] != before[n]["health"]]
    moves = [(n, *split_address(planned[n]["address"], "address")) for n in todo
             if planned[n]["address"] != before[n]["address"]]
    # Held: checks off before the move (a parked server must not be marked DOWN). Released: back home first, then
    # the checks, so that no check ever runs against the park address.
    if hold:
        if health:
            api.set_health(p["backend"], health)
        if moves:
            api.set_addresses(p["backend"], moves)
    else:
        if moves:
            api.set_addresses(p["backend"], moves)
        if health:
            api.set_health(p["backend"], health)
    after = api.servers(p["backend"])
    wrong = [n for n in todo if {"health": after[n]["health"], "address": after[n]["address"]} != planned[n]]
    if wrong:
        raise HaproxyError(f"HAProxy did not take the change for {', '.join(wrong)}: "
                           f"{ {n: after[n] for n in wrong} }")
    result["servers"] = after
    result["held"] = [n for n in servers if after[n]["health"] == "disabled"]
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "runtime_api": {"type": "str", "required": True},
            "backend": {"type": "str", "required": True},
            "servers": {"type": "list", "elements": "str", "default": ["compose1"]},
            "park": {"type": "str"},
            "addresses": {"type": "dict"},
            "state": {"type": "str", "choices": ["held", "released"], "default": "held"},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except HaproxyError as exc:
        module.fail_json(msg=f"splitter_hold: {exc}")


if __name__ == "__main__":
    main()
