#!/usr/bin/python
# Copyright: (c) 2026, Sophia Platform Team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: splitter_weight
short_description: Read or set a route's traffic share between the Compose side and K3s in a running HAProxy
version_added: 0.2.0
description:
  - The traffic splitter of P(sophia.migrate.traffic_shift#role) is an HAProxy backend per route with the
    Compose upstream(s) as "old" servers and the K3s ingress as "new" server(s). This module reads the
    share of the new side from the running process and, with O(share), sets it through the HAProxy
    Runtime API (C(set server <backend>/<server> weight|state)), with no reload and no dropped connection.
  - Weights are planned so that the new side gets exactly O(share) percent whatever the number of
    servers per side; a side at 0 percent is also put in O(zero_state) so that sticky sessions leave it.
  - After a change the live state is read back and the module fails unless it matches. With
    O(state_file) the live state is saved to HAProxy's C(server-state-file) so a reload or restart
    keeps the weights.
  - Written here rather than using M(community.general.haproxy) because a route's share is a pair of
    weights that must move together and be confirmed, that module has no check mode or diff, and it
    needs netcat on the host.
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
      - The route's backend in the HAProxy configuration.
      - Backend and server names are HAProxy names (1 to 64 letters, digits, C(_), C(.), C(:), C(-)); any other
        name is refused before anything is sent to the Runtime API, in check mode too.
    type: str
    required: true
  old_servers:
    description: Server names of the Compose side in O(backend).
    type: list
    elements: str
    required: true
  new_servers:
    description: Server names of the K3s side in O(backend).
    type: list
    elements: str
    required: true
  share:
    description: Percent of requests the new side should get (0-100). Omit to only read the live share.
    type: int
  zero_state:
    description:
      - Administrative state of the servers of a side whose share is 0. V(maint) also moves sticky
        sessions away; V(drain) lets sticky sessions finish where they are.
    type: str
    choices: [maint, drain]
    default: maint
  state_file:
    description: HAProxy C(server-state-file) to write the live state to after a change (or when missing).
    type: path
  timeout:
    description: Seconds to wait for the Runtime API.
    type: float
    default: 5
"""

EXAMPLES = r"""
- name: Send 25% of /api/context to K3s
  sophia.migrate.splitter_weight:
    runtime_api: /run/haproxy/admin.sock
    backend: route_mcp_context
    old_servers: [compose1]
    new_servers: [k3s1]
    share: 25
    state_file: /var/lib/haproxy/server-state

- name: Where does the route stand?
  sophia.migrate.splitter_weight:
    runtime_api: /run/haproxy/admin.sock
    backend: route_mcp_context
    old_servers: [compose1]
    new_servers: [k3s1]
  register: live
"""

RETURN = r"""
share:
  description: The new side's share in percent after the module ran (null when every server is at weight 0).
  returned: always
  type: int
  sample: 25
previous_share:
  description: The share before the module ran.
  returned: always
  type: int
  sample: 5
servers:
  description:
    - Live state per server after the module ran (weight, admin V(ready)/V(drain)/V(maint), operational state, address,
      health check V(enabled)/V(disabled)/V(none); M(sophia.migrate.splitter_hold) disables it during a hold).
  returned: always
  type: dict
  sample: {"compose1": {"weight": 75, "admin": "ready", "operational": "RUNNING", "address": "10.0.0.5:8080",
           "health": "enabled"}}
planned:
  description: Weight and admin state planned per server (equal to the live state unless in check mode).
  returned: when O(share) is given
  type: dict
"""

import os

from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._haproxy import (
    HaproxyError,
    RuntimeApi,
    check_name,
    plan_weights,
    share_of,
)


def _view(servers: dict) -> dict:
    return {name: {"weight": s["weight"], "admin": s["admin"]} for name, s in sorted(servers.items())}


def run(module: AnsibleModule) -> dict:
    p = module.params
    # Names go into Runtime API command lines: validated before any socket I/O, check mode included.
    check_name(p["backend"], "option backend:")
    for option in ("old_servers", "new_servers"):
        for name in p[option]:
            check_name(name, f"option {option}: server")
    api = RuntimeApi(p["runtime_api"], p["timeout"])
    names = list(p["old_servers"]) + list(p["new_servers"])
    if len(set(names)) != len(names):
        raise HaproxyError("old_servers and new_servers must be distinct server names")
    live = api.servers(p["backend"])
    missing = [n for n in names if n not in live]
    if missing:
        raise HaproxyError(f"backend '{p['backend']}' has no server(s) {', '.join(missing)} "
                           f"(it has: {', '.join(sorted(live))})")
    admin = {n: live[n]["admin"] for n in names}
    before = share_of({n: live[n]["weight"] for n in names}, p["new_servers"], admin)
    result = {"changed": False, "previous_share": before, "share": before, "servers": live}
    if p["share"] is None:
        return result
    weights = plan_weights(p["share"], p["old_servers"], p["new_servers"])
    planned = {n: {"weight": w, "admin": "ready" if w > 0 else p["zero_state"]} for n, w in weights.items()}
    todo = [n for n in names if (live[n]["weight"], live[n]["admin"]) != (planned[n]["weight"], planned[n]["admin"])]
    result["planned"] = planned
    state_missing = bool(p["state_file"]) and not os.path.exists(p["state_file"])
    if not todo and not state_missing:
        return result
    result["changed"] = True
    result["diff"] = {
        "before": _view({n: live[n] for n in names}),
        "after": planned,
        "before_header": f"{p['backend']} ({before}% new)",
        "after_header": f"{p['backend']} ({p['share']}% new)",
    }
    if module.check_mode:
        result["share"] = p["share"]
        return result
    # Servers that gain weight first, then those that lose it: the backend never has all servers at 0.
    order = sorted(todo, key=lambda n: planned[n]["weight"] <= live[n]["weight"])
    api.set_servers(p["backend"], [(n, planned[n]["weight"], planned[n]["admin"]) for n in order])
    after = api.servers(p["backend"])
    wrong = [n for n in names if (after[n]["weight"], after[n]["admin"]) != (planned[n]["weight"], planned[n]["admin"])]
    if wrong:
        raise HaproxyError(f"HAProxy did not take the new weights for {', '.join(wrong)}: "
                           f"{ {n: after[n] for n in wrong} }")
    if p["state_file"]:
        api.save_state(p["state_file"])
    result["servers"] = after
    admin_after = {n: after[n]["admin"] for n in names}
    result["share"] = share_of({n: after[n]["weight"] for n in names}, p["new_servers"], admin_after)
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "runtime_api": {"type": "str", "required": True},
            "backend": {"type": "str", "required": True},
            "old_servers": {"type": "list", "elements": "str", "required": True},
            "new_servers": {"type": "list", "elements": "str", "required": True},
            "share": {"type": "int"},
            "zero_state": {"type": "str", "choices": ["maint", "drain"], "default": "maint"},
            "state_file": {"type": "path"},
            "timeout": {"type": "float", "default": 5},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except HaproxyError as exc:
        module.fail_json(msg=f"splitter_weight: {exc}")


if __name__ == "__main__":
    main()
