# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: endpoint_moves
short_description: Plan the move of a Docker network alias from one container to another
version_added: 0.2.0
description:
  - Reads the output of C(docker container inspect SOURCE TARGET) and says which of the two containers must be
    reconnected to the network, and with which aliases, so that the alias ends on the wanted side only.
  - The removal comes first; the alias never resolves to both containers. A container that already stands as wanted
    is not touched, so a second run plans nothing.
author:
  - Sophia Platform Team (@sophia-ai)
options:
  _input:
    description: JSON text of C(docker container inspect) for the two containers (a missing one may be absent).
    type: str
    required: true
  endpoint:
    description: C(network), C(alias), C(source_container), C(target_container).
    type: dict
    required: true
  to:
    description: Which container ends with the alias.
    type: str
    choices: [source, target]
    required: true
  created:
    description:
      - Containers this run creates on the network but that do not exist yet (in check mode, the TCP forwarder of an
        endpoint with C(forward)); a missing one is planned as if it stood on the network without aliases.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Plan the move of sophia-redis to the K3s Redis
  ansible.builtin.set_fact:
    moves: "{{ inspect.stdout | sophia.migrate.endpoint_moves(endpoint, 'target') }}"
"""

RETURN = r"""
_value:
  description: Reconnections in order, each with C(container), C(action) (remove or add) and C(aliases) to connect with.
  type: list
  elements: dict
"""

import json

from ansible.errors import AnsibleFilterError


def endpoint_moves(inspect_json, endpoint, to, created=None):
    if to not in ("source", "target"):
        raise AnsibleFilterError(f"endpoint_moves: 'to' must be source or target, not {to!r}")
    missing = [k for k in ("network", "alias", "source_container", "target_container") if not (endpoint or {}).get(k)]
    if missing:
        raise AnsibleFilterError(f"endpoint_moves: the endpoint needs {', '.join(missing)}")
    try:
        containers = json.loads(inspect_json)
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError(f"endpoint_moves: docker inspect output is not JSON: {exc}") from exc
    if not isinstance(containers, list):
        raise AnsibleFilterError("endpoint_moves: docker inspect output must be a list of containers")
    network, alias = endpoint["network"], endpoint["alias"]
    found = {}
    for container in containers:
        name = str(container.get("Name", "")).lstrip("/")
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        if network not in networks:
            raise AnsibleFilterError(f"endpoint_moves: container {name} is not on network {network}")
        found[name] = [a for a in (networks[network] or {}).get("Aliases") or [] if a]
    for name in created or []:
        found.setdefault(name, [])
    keep, drop = endpoint[f"{to}_container"], endpoint["target_container" if to == "source" else "source_container"]
    if keep not in found:
        raise AnsibleFilterError(
            f"endpoint_moves: container {keep} does not exist; the alias {alias} has nowhere to go"
        )
    moves = []
    if alias in found.get(drop, []):
        moves.append({"container": drop, "action": "remove", "aliases": [a for a in found[drop] if a != alias]})
    if alias not in found[keep]:
        moves.append({"container": keep, "action": "add", "aliases": [*found[keep], alias]})
    return moves


class FilterModule:
    def filters(self):
        return {"endpoint_moves": endpoint_moves}
