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
  - With O(state=released) the health checks are resumed (C(enable health)).
  - Only the held servers may take the route's traffic while it is held (every other server of O(backend) at
    weight 0 or in maintenance), because a retried request may be sent to another server (C(option redispatch)), and
    the hold must not move writes to the other side. The module fails before changing anything otherwise.
  - Changed only when a server's health check changes state; the live state is read back after a change.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  runtime_api:
    description: Path of HAProxy's admin stats socket, or C(ipv4@HOST:PORT) / C(HOST:PORT) for a TCP one.
    type: str
    required: true
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
  sample: {"compose1": {"weight": 100, "admin": "ready", "operational": "RUNNING", "health": "disabled"}}
"""

from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import HaproxyError, RuntimeApi, check_name


def run(module: AnsibleModule) -> dict:
    p = module.params
    # Names go into Runtime API command lines: validated before any socket I/O, check mode included.
    check_name(p["backend"], "option backend:")
    if not p["servers"]:
        raise HaproxyError("option servers: at least one server to hold")
    for name in p["servers"]:
        check_name(name, "option servers: server")
    servers = list(dict.fromkeys(p["servers"]))
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
    todo = [n for n in servers if live[n]["health"] == ("enabled" if hold else "disabled")]
    result = {"changed": bool(todo), "servers": live,
              "held": [n for n in servers if live[n]["health"] == "disabled"]}
    if not todo:
        return result
    result["diff"] = {
        "before": {n: live[n]["health"] for n in servers},
        "after": {n: ("disabled" if n in todo and hold else "enabled" if n in todo else live[n]["health"])
                  for n in servers},
        "before_header": f"{p['backend']} health checks",
        "after_header": f"{p['backend']} health checks ({p['state']})",
    }
    if module.check_mode:
        result["held"] = [n for n, h in result["diff"]["after"].items() if h == "disabled"]
        return result
    api.set_health(p["backend"], [(n, not hold) for n in todo])
    after = api.servers(p["backend"])
    wrong = [n for n in todo if after[n]["health"] != result["diff"]["after"][n]]
    if wrong:
        raise HaproxyError(f"HAProxy did not take the health check change for {', '.join(wrong)}: "
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
