# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NetworkPolicies from Compose networks (option network_policies): one per network, pods on it accept traffic from
pods on it, and one per service for its published ports."""

from __future__ import annotations

import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_extras
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_context import _Ctx, _meta
from ansible_collections.sophia.migrate.plugins.module_utils._compose_values import ComposeError, dns_name


def _svc_networks(name: str, svc: dict[str, t.Any]) -> list[str]:
    try:
        return _compose_extras.service_networks(svc)
    except ValueError as exc:
        raise ComposeError(f"service {name}: {exc}") from None


def _published_policy(name: str, k8s: str, ports: list[dict[str, t.Any]], ctx: _Ctx) -> list[dict[str, t.Any]]:
    """A NetworkPolicy that lets any client reach the published ports of a service (Compose publishes them on the
    host, outside every network)."""
    published = sorted({(p["target"], p["protocol"]) for p in ports if p.get("published")})
    if not published:
        return []
    policy = dns_name(f"{k8s}-published")
    ctx.claim("NetworkPolicy", policy, f"the published ports of service {name!r}")
    return [{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(policy, ctx, name),
             "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": k8s}}, "policyTypes": ["Ingress"],
                      "ingress": [{"ports": [{"port": port, "protocol": proto} for port, proto in published]}]}}]


def _network_policies(services: dict[str, t.Any], selected: list[str], ctx: _Ctx) -> dict[str, list[dict[str, t.Any]]]:
    """One NetworkPolicy per Compose network: pods on it accept traffic from pods on it (as kompose does). Each goes
    into the file of the first selected service on that network."""
    members: dict[str, list[str]] = {}
    for name in selected:
        for net in _svc_networks(name, services[name]):
            members.setdefault(net, []).append(name)
    top = ctx.project.get("networks") or {}
    if not isinstance(top, dict):
        raise ComposeError("networks: the top-level 'networks' must be a mapping")
    out: dict[str, list[dict[str, t.Any]]] = {}
    for net, names in sorted(members.items()):
        decl = top.get(net) or {}
        if net != "default" and net not in top:
            raise ComposeError(f"service {names[0]}: networks: {net!r} is not declared in the top-level 'networks'")
        if isinstance(decl, dict) and decl.get("external"):
            ctx.note(names[0], f"networks.{net}", "external network: only the services of this project are allowed "
                                                  "in; add other clients to the policy by hand")
        label = _compose_extras.network_label(net, dns_name)
        policy = dns_name(f"{ctx.project['name']}-net-{net}")
        ctx.claim("NetworkPolicy", policy, f"network {net!r}")
        selector = {"matchLabels": {label: "true"}}
        out.setdefault(sorted(names)[0], []).append({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(policy, ctx, sorted(names)[0], {"sophia.migrate/network": dns_name(net)}),
            "spec": {"podSelector": selector, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": selector}]}]}})
    return out
