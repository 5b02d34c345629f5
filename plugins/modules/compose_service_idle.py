#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service_idle
short_description: Prove that a Compose service no longer receives traffic before it is stopped
version_added: 0.1.0
description:
  - Reads the network receive counters of every running container of a Compose service (found by its
    Compose labels) at the start and the end of an observation window, and fails when more than
    O(max_packets) packets arrived, naming the containers that are still busy.
  - On the Docker host itself the counters are the TCP segments and UDP datagrams the container's
    network namespace received from outside (C(/proc/<pid>/net)); loopback traffic (the container's
    own health check, Docker's embedded DNS) and ARP/ICMP chatter between neighbours (IPv6 neighbour
    discovery when a container next to it starts or stops) are not counted.
  - Through a remote engine, the engine's stats (all packets received) are used.
  - Use it after traffic has been moved away (the ledger says 100% on the new side) and before the
    service is stopped. Monitoring scrapes and health checks from other containers count as traffic;
    stop the scrapers first or allow for them in O(max_packets).
  - Read-only.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - docker (Python library)
options:
  project:
    description: Compose project name.
    type: str
    required: true
  service:
    description: Compose service name.
    type: str
    required: true
  window:
    description: Observation window in seconds.
    type: float
    default: 30
  max_packets:
    description: Packets allowed during the window, summed over the service's containers.
    type: int
    default: 0
  fail_when_busy:
    description: Fail when the service is not idle. With V(false) the result tells and the task succeeds.
    type: bool
    default: true
  docker_host:
    description: Docker daemon URL. Defaults to C(DOCKER_HOST) or the local socket.
    type: str
"""

EXAMPLES = r"""
- name: The old mcp-research container has served nothing for a minute
  sophia.migrate.compose_service_idle:
    project: sophia
    service: mcp-research
    window: 60
    max_packets: 30   # allow for monitoring scrapes
"""

RETURN = r"""
idle:
  description: True when no more than O(max_packets) packets arrived.
  returned: always
  type: bool
total_packets:
  description: Packets received by the service's containers during the window.
  returned: always
  type: int
packets:
  description: Packets per container.
  returned: always
  type: dict
not_running:
  description: Containers of the service that are not running (they receive nothing).
  returned: always
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _docker_compose as dc
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "project": {"type": "str", "required": True},
            "service": {"type": "str", "required": True},
            "window": {"type": "float", "default": 30},
            "max_packets": {"type": "int", "default": 0},
            "fail_when_busy": {"type": "bool", "default": True},
            "docker_host": {"type": "str"},
        },
        supports_check_mode=True,
    )
    if not dc.HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"))
    p = module.params
    if p["window"] <= 0 or p["max_packets"] < 0:
        module.fail_json(msg="compose_service_idle: 'window' must be > 0 and 'max_packets' >= 0")
    try:
        cli = dc.client(p["docker_host"])
        project = dc.require_project(dc.discover(cli, p["project"], sizes=False), p["project"])
        dc.require_services(project, [p["service"]])
        names = [c["name"] for c in project["services"][p["service"]]["containers"]]
        out = dc.observe_idle(cli, names, p["window"], time.sleep)
    except dc.ComposeInfoError as exc:
        module.fail_json(msg=f"compose_service_idle: {exc}")
    out["idle"] = out["total_packets"] <= p["max_packets"]
    if not out["idle"] and p["fail_when_busy"]:
        busy = ", ".join(f"{c}={n}" for c, n in sorted(out["packets"].items()) if n)
        where = f"{p['project']}/{p['service']}"
        module.fail_json(msg=f"compose_service_idle: {where} received {out['total_packets']} packets "
                             f"in {p['window']:g}s (allowed {p['max_packets']}): {busy}; traffic still arrives",
                         changed=False, **out)
    module.exit_json(changed=False, **out)


if __name__ == "__main__":
    main()
