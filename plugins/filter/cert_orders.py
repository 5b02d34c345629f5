# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cert_orders
short_description: The state of each certificate order from cert-manager's Certificates, staging before production
version_added: 0.4.0
description:
  - Reads cert-manager's C(Certificate) objects (as M(kubernetes.core.k8s_info) returns them) and tells, for each, its
    stage (from the issuer - C(letsencrypt-staging) or C(letsencrypt-production), see O(issuers)), its names, the
    Secret it writes, whether it is C(Ready), its C(notAfter), failed issuance attempts and the reason cert-manager
    gives, and the ledger status that state stands for (C(done) when Ready, C(failed) after a failed attempt,
    C(started) while the order is pending).
  - It also tells which TLS hosts (the input O(hosts)) may get a production Certificate - those covered by a Ready
    staging Certificate, and those that have a production Certificate already (it is never taken away) - and which
    wait. So production orders are placed only for names that passed the HTTP-01 path with the staging issuer, and
    no order is placed again for names that have one (Let's Encrypt's rate limits).
author:
  - Sophia Platform Team (@sophia-ai)
positional: hosts, issuers
options:
  _input:
    description: Certificate objects (C(metadata.name), C(spec.dnsNames), C(spec.secretName), C(spec.issuerRef.name),
      C(status.conditions), C(status.notAfter), C(status.failedIssuanceAttempts), C(status.lastFailureTime)).
    type: list
    elements: dict
    required: true
  hosts:
    description: The TLS hosts of the Ingresses.
    type: list
    elements: str
    required: true
  issuers:
    description: ClusterIssuer name of each stage.
    type: dict
    default: {staging: letsencrypt-staging, production: letsencrypt-production}
"""

EXAMPLES = r"""
- name: What was ordered, and which hosts may get a production certificate
  ansible.builtin.set_fact:
    orders: "{{ live_certificates.resources | sophia.migrate.cert_orders(tls_hosts) }}"
"""

RETURN = r"""
_value:
  description:
    - C(orders) - one per Certificate, sorted by name - C(name), C(stage), C(issuer), C(dns_names), C(secret),
      C(ready), C(not_after), C(failed_attempts), C(last_failure), C(reason), C(ledger_status).
    - C(staging_ready) - hosts covered by a Ready staging Certificate; C(production_ordered) - hosts that have a
      production Certificate; C(production_allowed) - the union of both, in the order of O(hosts); C(waiting) - each
      other host with the reason, C({host, reason}).
  type: dict
"""

import typing as t
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def _get(obj: t.Any, *path: str) -> t.Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
    return obj


def _ready(conditions: t.Any) -> tuple[bool, str]:
    for cond in conditions if isinstance(conditions, list) else []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            text = ": ".join(str(x) for x in (cond.get("reason"), cond.get("message")) if x)
            return cond.get("status") == "True", text or f"Ready={cond.get('status')}"
    return False, "no Ready condition yet (the order is pending)"


def _order(obj: Mapping, stages: dict[str, str], n: int) -> dict[str, t.Any]:
    name = _get(obj, "metadata", "name")
    if not isinstance(name, str) or not name:
        raise AnsibleFilterError(f"cert_orders: Certificate {n} has no metadata.name: {obj!r:.120}")
    names = _get(obj, "spec", "dnsNames")
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
        raise AnsibleFilterError(f"cert_orders: Certificate {name}: spec.dnsNames must be a list of names")
    issuer = _get(obj, "spec", "issuerRef", "name")
    ready, reason = _ready(_get(obj, "status", "conditions"))
    attempts = _get(obj, "status", "failedIssuanceAttempts")
    last_failure = _get(obj, "status", "lastFailureTime") or ""
    failed = not ready and (bool(last_failure) or (isinstance(attempts, int) and attempts > 0))
    return {"name": name, "stage": stages.get(issuer, issuer or ""), "issuer": issuer or "", "dns_names": names,
            "secret": _get(obj, "spec", "secretName") or "", "ready": ready,
            "not_after": _get(obj, "status", "notAfter") or "",
            "failed_attempts": attempts if isinstance(attempts, int) else 0, "last_failure": last_failure,
            "reason": reason, "ledger_status": "done" if ready else ("failed" if failed else "started")}


def cert_orders(certificates: t.Any, hosts: t.Any, issuers: t.Any = None) -> dict[str, t.Any]:
    if not isinstance(certificates, list):
        raise AnsibleFilterError(f"cert_orders: the input must be a list of Certificates, got "
                                 f"{type(certificates).__name__}")
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise AnsibleFilterError("cert_orders: hosts must be a list of host names")
    issuers = issuers if issuers is not None else {"staging": "letsencrypt-staging",
                                                   "production": "letsencrypt-production"}
    if not isinstance(issuers, Mapping) or not {"staging", "production"} <= set(issuers):
        raise AnsibleFilterError("cert_orders: issuers must name the ClusterIssuer of staging and of production")
    stages = {issuers["staging"]: "staging", issuers["production"]: "production"}
    orders = sorted((_order(obj, stages, n) for n, obj in enumerate(certificates) if isinstance(obj, Mapping)),
                    key=lambda o: o["name"])
    covered = {stage: [o for o in orders if o["stage"] == stage] for stage in ("staging", "production")}
    staging_ready = [h for h in hosts if any(o["ready"] and h in o["dns_names"] for o in covered["staging"])]
    production = [h for h in hosts if any(h in o["dns_names"] for o in covered["production"])]
    allowed = [h for h in hosts if h in staging_ready or h in production]
    waiting = []
    for host in hosts:
        if host in allowed:
            continue
        mine = [o for o in covered["staging"] if host in o["dns_names"]]
        reason = ("; ".join(f"staging Certificate {o['name']} is not Ready: {o['reason']}" for o in mine)
                  or "no staging Certificate names it yet (run Phase 2A with ingress_certs_issuance_stage=staging)")
        waiting.append({"host": host, "reason": reason})
    return {"orders": orders, "staging_ready": staging_ready, "production_ordered": production,
            "production_allowed": allowed, "waiting": waiting}


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"cert_orders": cert_orders}
