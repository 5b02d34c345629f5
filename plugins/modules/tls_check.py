#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: tls_check
short_description: Check the certificate each public host is served with (chain, host name, expiry, identity)
version_added: 0.1.0
description:
  - Connects to every target (C(address), C(port)) with SNI C(host), as a browser does, and judges the certificate
    it is served; meant to run before the traffic walk, after each step, after the handover and after the
    decommission (docs/tls_check.md).
  - C(chain) - the served chain verifies against O(ca_bundle) (default the system trust store) with OpenSSL, as a
    client does; a self-signed certificate or a missing intermediate fails it.
  - C(hostname) - the certificate is valid for C(host) (subjectAltName; a wildcard for exactly one label).
  - C(expiry) - the certificate is valid now and for at least O(min_days) more days.
  - C(expected) - when C(expect_sha256) or C(expect_issuer) is given, the certificate is that one (SHA-256 of the
    DER certificate) or is issued by that CA (its CN, O or full RFC 4514 name).
  - Every failure is named in the target's C(reasons) (C(connection refused), C(untrusted), C(host name mismatch),
    C(expired), C(unexpected certificate), ...). The module fails when any target fails, unless O(report_only).
  - Only reads; never changes anything.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - cryptography
options:
  targets:
    description: The endpoints to check.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Server name sent as SNI and checked against the certificate.
        type: str
        required: true
      address:
        description: Address or name to connect to (default O(targets[].host)), e.g. the edge's or the ingress' address.
        type: str
      port:
        description: TCP port.
        type: int
        default: 443
      expect_sha256:
        description: SHA-256 fingerprint the served certificate must have (hex, colons allowed).
        type: str
      expect_issuer:
        description: The served certificate's issuer (its CN, O or RFC 4514 name), e.g. C(R11) or C(Let's Encrypt).
        type: str
  ca_bundle:
    description: PEM file of the CAs to trust (default the system trust store).
    type: path
  min_days:
    description: Fewer days left than this fails C(expiry).
    type: int
    default: 14
  timeout:
    description:
      - Seconds the check of one target may take, its connections and TLS handshakes together (a server that accepts
        the connection and never answers the handshake fails with C(TLS handshake timed out) at this bound).
    type: float
    default: 10.0
  report_only:
    description: Never fail; return the verdicts only.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Every public host is served a valid certificate before the walk
  sophia.migrate.tls_check:
    targets:
      - host: www.sophia-intel.ai
        address: 192.222.51.223
        expect_issuer: Let's Encrypt
      - host: api.sophia-intel.ai
        address: 192.222.51.223
    min_days: 14
  delegate_to: localhost

- name: The K3s ingress serves the imported certificate (same fingerprint as nginx-proxy)
  sophia.migrate.tls_check:
    targets:
      - host: www.sophia-intel.ai
        address: 127.0.0.1
        port: 30443
        expect_sha256: "{{ edge_tls.results[0].certificate.sha256 }}"
"""

RETURN = r"""
passed:
  description: True when every target passed.
  returned: always
  type: bool
failed_hosts:
  description: C(host@address:port) of every target that failed.
  returned: always
  type: list
  elements: str
results:
  description: One entry per target.
  returned: always
  type: list
  elements: dict
  sample:
    - host: www.sophia-intel.ai
      address: 192.222.51.223
      port: 443
      verdict: fail
      reasons: ["expired: notBefore 2026-01-01T00:00:00Z, notAfter 2026-03-31T23:59:59Z"]
      checks: {connect: true, chain: true, hostname: true, expiry: false, expected: null}
      certificate:
        subject: CN=www.sophia-intel.ai
        issuer: CN=R11,O=Let's Encrypt,C=US
        dns_names: [www.sophia-intel.ai]
        not_before: "2026-01-01T00:00:00Z"
        not_after: "2026-03-31T23:59:59Z"
        days_left: -3
        sha256: 3f2a...
        serial: 4a1b...
        self_signed: false
"""

import os
import ssl

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _tls
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "targets": {"type": "list", "elements": "dict", "required": True, "options": {
                "host": {"type": "str", "required": True},
                "address": {"type": "str"},
                "port": {"type": "int", "default": 443},
                "expect_sha256": {"type": "str"},
                "expect_issuer": {"type": "str"},
            }},
            "ca_bundle": {"type": "path"},
            "min_days": {"type": "int", "default": 14},
            "timeout": {"type": "float", "default": 10.0},
            "report_only": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not _tls.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib(_tls.REQUIREMENT))
    p = module.params
    if not p["targets"]:
        module.fail_json(msg="tls_check: targets is empty; give at least one host to check")
    if not -3650 <= p["min_days"] <= 3650:
        module.fail_json(msg=f"tls_check: min_days must be between -3650 and 3650, got {p['min_days']}")
    if p["ca_bundle"] and not os.path.isfile(p["ca_bundle"]):
        module.fail_json(msg=f"tls_check: ca_bundle {p['ca_bundle']} is not a file")
    for index, target in enumerate(p["targets"]):
        where = f"targets[{index}]"
        host = target["host"]
        if not _tls.is_server_name(host):
            module.fail_json(msg=f"tls_check: {where}.host must be a DNS name (ASCII, no spaces), got {host!r:.80}")
        address = target["address"] or host
        if not _tls.is_address(address):
            module.fail_json(msg=f"tls_check: {where}.address must be a host name or an IP address, "
                                 f"got {address!r:.80}")
        if target["expect_sha256"] and not _tls.normalise_fingerprint(target["expect_sha256"]):
            module.fail_json(msg=f"tls_check: {where}.expect_sha256 must be a SHA-256 fingerprint (64 hex digits, "
                                 f"colons allowed), got {target['expect_sha256']!r:.100}")
    results = []
    for target in p["targets"]:
        try:
            results.append(_tls.check_endpoint(
                target["host"], target["address"] or target["host"], target["port"], p["ca_bundle"] or "",
                p["min_days"], p["timeout"], target["expect_sha256"] or "", target["expect_issuer"] or ""))
        except (ssl.SSLError, OSError, ValueError) as exc:  # the CA bundle itself, a certificate not readable
            module.fail_json(msg=f"tls_check: {target['host']}: {exc}")
    failed = [f"{r['host']}@{r['address']}:{r['port']}" for r in results if r["verdict"] != "pass"]
    result = {"changed": False, "passed": not failed, "failed_hosts": failed, "results": results}
    if failed and not p["report_only"]:
        reasons = "; ".join(f"{r['host']}@{r['address']}:{r['port']}: {', '.join(r['reasons'])}"
                            for r in results if r["verdict"] != "pass")
        module.fail_json(msg=f"tls_check: {len(failed)} of {len(results)} host(s) failed: {reasons}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
