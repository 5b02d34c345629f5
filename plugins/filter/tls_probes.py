# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: tls_probes
short_description: health_gate tls probes for the public hosts that tls_check checks
version_added: 0.3.0
description:
  - Turns the targets of P(sophia.migrate.tls_check#module) (C(traffic_shift_tls_check)) into
    P(sophia.migrate.health_gate#module) probes of type C(tls), so that every traffic step's gate also checks, in each
    round, that each public host is served a certificate that chains to O(ca_bundle), matches the host name and has at
    least O(min_days) days left.
  - An empty O(ca_bundle) leaves the probes on the system's trust store.
author:
  - Sophia Platform Team (@sophia-ai)
positional: ca_bundle, min_days
options:
  _input:
    description: The targets, each with C(host) (the name sent as SNI and checked), and optionally C(address),
      C(port), C(expect_sha256) and C(expect_issuer), as P(sophia.migrate.tls_check#module) takes them.
    type: list
    elements: dict
    required: true
  ca_bundle:
    description: PEM file of the CAs to trust on the host that runs the gate; empty for the system's.
    type: str
    default: ""
  min_days:
    description: Fewer days left than this fails the probe.
    type: int
    default: 14
"""

EXAMPLES = r"""
- name: The gate's probes plus one tls probe per public host
  ansible.builtin.set_fact:
    probes: "{{ gate_probes + (traffic_shift_tls_check | sophia.migrate.tls_probes(traffic_shift_tls_ca_bundle, 14)) }}"
"""

RETURN = r"""
_value:
  description: One probe per target, named C(tls <host>@<address>:<port>).
  type: list
  elements: dict
"""

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

_RENAMED = {"expect_sha256": "expected_sha256", "expect_issuer": "expected_issuer"}
_KNOWN = {"host", "address", "port", *_RENAMED}


def tls_probes(targets: t.Any, ca_bundle: t.Any = "", min_days: t.Any = 14) -> list[dict[str, t.Any]]:
    if isinstance(targets, (str, bytes, Mapping)) or not isinstance(targets, (list, tuple)):
        raise AnsibleFilterError(f"tls_probes: the input must be a list of targets, got {type(targets).__name__}")
    if isinstance(min_days, bool) or not str(min_days).isdigit():
        raise AnsibleFilterError(f"tls_probes: min_days must be a whole number of days, got {min_days!r}")
    probes = []
    for n, target in enumerate(targets):
        if not isinstance(target, Mapping) or not isinstance(target.get("host"), str) or not target["host"]:
            raise AnsibleFilterError(f"tls_probes: target {n} must be a mapping with a host name, got {target!r:.120}")
        unknown = sorted(set(target) - _KNOWN)
        if unknown:
            raise AnsibleFilterError(f"tls_probes: target {n} ({target['host']}): unknown keys {', '.join(unknown)}")
        address, port = target.get("address") or target["host"], target.get("port", 443)
        probe = {"name": f"tls {target['host']}@{address}:{port}", "type": "tls", "host": address,
                 "server_name": target["host"], "port": port, "min_days": int(min_days)}
        probe.update({_RENAMED[k]: target[k] for k in _RENAMED if target.get(k)})
        if ca_bundle:
            probe["ca_path"] = str(ca_bundle)
        probes.append(probe)
    return probes


class FilterModule:
    def filters(self) -> dict[str, t.Any]:
        return {"tls_probes": tls_probes}
