# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: handover_rules
short_description: The DNAT rules of Phase 2D's port handover, one per port and nat chain, checked
version_added: 0.3.0
description:
  - Turns P(sophia.migrate.traffic_shift#role)'s C(traffic_shift_handover) list and its nat chains into one rule per
    port and chain, with the rule's iptables specification. The role's boot unit (templates/handover.service.j2)
    writes exactly these specifications and the check that the handover is persisted looks for exactly these, so
    the two cannot drift apart.
  - The values end up in a boot unit's shell command, so each is checked, and a bad one is refused by name.
    C(port) is 1-65535, C(to) is host:port, C(destination) (optional) is an IPv4/IPv6 address or network, and a
    chain is an upper-case nat chain name.
author:
  - Sophia Platform Team (@sophia-ai)
positional: chains
options:
  _input:
    description: The handover items (C(port), C(to), optionally C(destination)).
    type: list
    elements: dict
    required: true
  chains:
    description: The nat chains that get each rule.
    type: list
    elements: str
    default: [PREROUTING, OUTPUT]
"""

EXAMPLES = r"""
- name: The rules as the boot unit writes them
  ansible.builtin.debug:
    msg: "{{ traffic_shift_handover | sophia.migrate.handover_rules(['PREROUTING']) | map(attribute='spec') }}"
"""

RETURN = r"""
_value:
  description:
    - One mapping per port and chain, ports in the given order, with C(chain), C(port) (int), C(to),
      C(destination) (empty when not given), C(comment) and C(spec) (the rule after the chain name, as
      C(iptables -t nat -I <chain> 1 <spec>) takes it).
  type: list
  elements: dict
"""

import ipaddress
import re
import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

_TO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:([0-9]{1,5})$")
_CHAIN = re.compile(r"^[A-Z][A-Z0-9_-]*$")


def _port(value: t.Any, what: str) -> int:
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not 1 <= int(text) <= 65535:
        raise AnsibleFilterError(f"handover_rules: {what} must be a port number 1-65535, got {value!r}")
    return int(text)


def handover_rules(handover: t.Any, chains: t.Any = ("PREROUTING", "OUTPUT")) -> list[dict[str, t.Any]]:
    if not isinstance(handover, list):
        raise AnsibleFilterError("handover_rules: the handover must be a list of mappings, "
                                 f"got {type(handover).__name__}")
    if isinstance(chains, str) or not isinstance(chains, (list, tuple)) or not chains:
        raise AnsibleFilterError(f"handover_rules: chains must be a non-empty list of nat chain names, got {chains!r}")
    for chain in chains:
        if not isinstance(chain, str) or not _CHAIN.match(chain):
            raise AnsibleFilterError(f"handover_rules: {chain!r} is not a nat chain name (upper case, e.g. PREROUTING)")
    rules = []
    for index, item in enumerate(handover):
        if not isinstance(item, Mapping):
            raise AnsibleFilterError(f"handover_rules: item {index} must be a mapping with port and to, got {item!r}")
        for key in ("port", "to"):
            if key not in item:
                raise AnsibleFilterError(f"handover_rules: item {index} has no {key!r}: {dict(item)!r}")
        port = _port(item["port"], f"item {index}'s port")
        to = str(item["to"])
        match = _TO.match(to)
        if not match:
            raise AnsibleFilterError(f"handover_rules: item {index} (port {port}): to must be host:port, got {to!r}")
        _port(match.group(1), f"item {index} (port {port}): the port of to")
        destination = item.get("destination") or ""
        if destination:
            try:
                ipaddress.ip_network(str(destination), strict=False)
            except ValueError:
                raise AnsibleFilterError(f"handover_rules: item {index} (port {port}): destination must be an "
                                         f"address or network, got {destination!r}") from None
            destination = str(destination)
        comment = f"sophia.migrate handover {port}"
        spec = (f"-p tcp{' -d ' + destination if destination else ''} --dport {port} -m comment "
                f'--comment "{comment}" -j DNAT --to-destination {to}')
        rules.extend({"chain": chain, "port": port, "to": to, "destination": destination, "comment": comment,
                      "spec": spec} for chain in chains)
    return rules


class FilterModule:
    def filters(self) -> dict[str, t.Any]:
        return {"handover_rules": handover_rules}
