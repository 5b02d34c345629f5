#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dns_check
short_description: Check that host names resolve to the expected addresses
version_added: 0.1.0
description:
  - Resolves every host name in O(hosts) for the record types in O(record_types) and compares the answer with
    O(expected_addresses). CNAME chains are followed for C(A)/C(AAAA) and reported.
  - Used as the preflight before Let's Encrypt production issuance (the name must point at the ingress that
    answers the HTTP-01 challenge) and as the final DNS check when the Compose stack is retired.
  - Queries go to the system resolver, or to O(nameservers) on O(port) (tests point it at a stub on loopback).
  - Only reads; never changes anything.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - dnspython
options:
  hosts:
    description:
      - Host names to check. An item may also be a dict with C(name) and its own C(expected_addresses).
    type: list
    elements: raw
    required: true
  expected_addresses:
    description:
      - IPv4/IPv6 addresses the names must resolve to; for O(record_types=[CNAME]) the expected target names.
    type: list
    elements: str
    default: []
  record_types:
    description: Record types to query.
    type: list
    elements: str
    choices: [A, AAAA, CNAME]
    default: [A, AAAA]
  match:
    description:
      - V(all) - every resolved address must be expected (no stray record still pointing at the old host).
      - V(any) - at least one resolved address must be expected.
    type: str
    choices: [all, any]
    default: all
  nameservers:
    description: Nameserver IP addresses to ask (empty uses the system resolver configuration).
    type: list
    elements: str
    default: []
  port:
    description: Port of the nameservers.
    type: int
    default: 53
  timeout:
    description: Seconds to wait for each query.
    type: float
    default: 5.0
  fail_on_mismatch:
    description: Fail (with the per-host results) when any host does not match.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Refuse production certificates unless the names point at the K3s ingress
  sophia.migrate.dns_check:
    hosts: [www.sophia-intel.ai]
    expected_addresses: [192.222.51.223]
    fail_on_mismatch: true

- name: Ask a specific resolver, both address families, per-host expectations
  sophia.migrate.dns_check:
    hosts:
      - www.sophia-intel.ai
      - name: api.sophia-intel.ai
        expected_addresses: [192.222.51.223, "2001:db8::10"]
    expected_addresses: [192.222.51.223]
    nameservers: [1.1.1.1]
  register: dns

- name: The CNAME of a name points at the right target
  sophia.migrate.dns_check:
    hosts: [docs.sophia-intel.ai]
    record_types: [CNAME]
    expected_addresses: [www.sophia-intel.ai]
"""

RETURN = r"""
matched:
  description: True when every host matches.
  returned: always
  type: bool
mismatched:
  description: Host names that do not match.
  returned: always
  type: list
  elements: str
results:
  description: One entry per host.
  returned: always
  type: list
  elements: dict
  sample:
    - host: www.sophia-intel.ai
      match: false
      reason: resolves to unexpected address(es) 203.0.113.9 (expected 192.222.51.223)
      addresses: [203.0.113.9]
      cname_chain: []
      cname: []
      expected: [192.222.51.223]
      errors: []
nameservers:
  description: Nameservers that were asked.
  returned: always
  type: list
  elements: str
port:
  description: Port the nameservers were asked on.
  returned: always
  type: int
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _dns
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "hosts": {"type": "list", "elements": "raw", "required": True},
            "expected_addresses": {"type": "list", "elements": "str", "default": []},
            "record_types": {"type": "list", "elements": "str", "choices": list(_dns.RECORD_TYPES),
                             "default": ["A", "AAAA"]},
            "match": {"type": "str", "choices": ["all", "any"], "default": "all"},
            "nameservers": {"type": "list", "elements": "str", "default": []},
            "port": {"type": "int", "default": 53},
            "timeout": {"type": "float", "default": 5.0},
            "fail_on_mismatch": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not _dns.HAS_DNSPYTHON:
        module.fail_json(msg=missing_required_lib("dnspython"))
    p = module.params
    try:
        result = _dns.check_hosts(p["hosts"], p["expected_addresses"], p["record_types"], p["nameservers"],
                                  p["port"], p["timeout"], p["match"])
    except _dns.DnsCheckError as exc:
        module.fail_json(msg=f"dns_check: {exc}")
    if p["fail_on_mismatch"] and not result["matched"]:
        reasons = "; ".join(f"{r['host']}: {r['reason']}" for r in result["results"] if not r["match"])
        module.fail_json(msg=f"dns_check: DNS does not point where expected: {reasons}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
