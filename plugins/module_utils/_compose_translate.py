# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Translate a loaded Compose project (``_compose_load.load_project()``) into Kubernetes objects: ``translate()``.

- Deployment for stateless services, StatefulSet with ``volumeClaimTemplates`` for stateful ones
  (listed by the caller, or a known data image such as redis/qdrant/postgres with a named volume);
- a Service per service with ports (``ports`` and ``expose``), a headless one for StatefulSets;
- PersistentVolumeClaims for named volumes of Deployments;
- ConfigMaps for plain environment and Compose ``configs``; Secrets for environment values that look
  secret (name patterns or an explicit list) and Compose ``secrets``;
- probes from ``healthcheck`` (exec, or httpGet when the command is an obvious curl/wget of localhost);
- resources from ``deploy.resources`` (and v2 ``mem_limit``/``cpus``), GPUs from
  ``deploy.resources.reservations.devices`` / ``gpus`` / ``runtime: nvidia`` and from a GPU plan.

Every field that has no Kubernetes translation is listed in ``unsupported``; nothing is dropped
silently. Output is deterministic (sorted services, keys and objects). Secret values never appear
in the returned summary: ``_compose_output.redact()`` replaces them.
"""

from __future__ import annotations

import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_extras
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_context import (
    Options,
    _Ctx,
    _depends,
    _sorted_docs,
)
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_network import _network_policies
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_workload import _service
from ansible_collections.sophia.migrate.plugins.module_utils._compose_values import (
    _QUANTITY,
    ComposeError,
    _quantity_value,
    dns_name,
    is_secret_name,
    parse_ports,
)


def check_resource_overrides(overrides: dict[str, t.Any], services: dict[str, t.Any]) -> None:
    """Refuse right-sizing that names no service of the project, a section or resource other than requests/limits of
    cpu/memory, a value that is not a Kubernetes quantity, or a request above its limit."""
    if not isinstance(overrides, dict):
        raise ComposeError("resource_overrides must be a mapping of service names")
    unknown = sorted(set(overrides) - set(services))
    if unknown:
        raise ComposeError(f"resource_overrides: not in the compose project: {', '.join(map(str, unknown))} "
                           "(a right-sizing file written for another version of the project?)")
    for name, sections in overrides.items():
        if not isinstance(sections, dict) or set(sections) - {"requests", "limits"}:
            raise ComposeError(f"resource_overrides.{name}: a mapping with requests and/or limits")
        for section, values in sections.items():
            if not isinstance(values, dict) or set(values) - {"cpu", "memory"}:
                raise ComposeError(f"resource_overrides.{name}.{section}: a mapping of cpu and/or memory")
            for key, value in values.items():
                if not _QUANTITY.match(str(value)):
                    raise ComposeError(f"resource_overrides.{name}.{section}.{key}: {value!r} is not a Kubernetes "
                                       "quantity (e.g. 250m, 512Mi)")
        for key in ("cpu", "memory"):
            low, high = (sections.get("requests") or {}).get(key), (sections.get("limits") or {}).get(key)
            if low is not None and high is not None and _quantity_value(str(low)) > _quantity_value(str(high)):
                raise ComposeError(f"resource_overrides.{name}: requests.{key} {low} is above limits.{key} {high}")


def translate(project: dict[str, t.Any], opts: Options | None = None) -> dict[str, t.Any]:
    """Kubernetes objects for every service of ``project`` (see module docstring)."""
    opts = opts or Options()
    ctx = _Ctx(project, opts)
    ctx.secret_values.update(v for k, v in (project.get("variables") or {}).items()
                             if v and is_secret_name(k, opts.secret_patterns, opts.secret_env))
    services = project["services"]
    if opts.services:
        missing = sorted(set(opts.services) - set(services))
        inactive = project.get("inactive") or {}
        for name in missing:
            if name in inactive:
                raise ComposeError(f"option services: {name} belongs to the profile(s) {', '.join(inactive[name])}, "
                                   "which the option profiles does not activate")
        if missing:
            raise ComposeError(f"option services: not in the compose project: {', '.join(missing)}")
    selected = sorted(opts.services or services)
    check_resource_overrides(opts.resource_overrides or {}, services)
    _refuse_name_collisions(project)
    if project.get("unset_variables"):
        ctx.warnings.append("variables not set, replaced by a blank string as Compose does: "
                            + ", ".join(project["unset_variables"]))
    per_service: dict[str, list[dict[str, t.Any]]] = {}
    summary: dict[str, dict[str, t.Any]] = {}
    ports_of = {}
    for name in sorted(services):
        svc = services[name]
        ports_of[name] = parse_ports(svc.get("ports") or [], f"service {name}: ports") + [
            {"target": p["target"], "published": None, "protocol": p["protocol"], "name": None}
            for p in parse_ports([str(e) for e in (svc.get("expose") or [])], f"service {name}: expose")]
    for name in selected:
        docs, info = _service(name, services[name], ports_of, ctx)
        per_service[name] = docs
        summary[name] = info
    if opts.network_policies:
        for name, policies in _network_policies(services, selected, ctx).items():
            per_service[name] = _sorted_docs([*per_service[name], *policies])
            summary[name]["objects"] = [f"{d['kind']}/{d['metadata']['name']}" for d in per_service[name]]
    elif any(services[n].get("networks") for n in selected):
        ctx.note(selected[0], "networks", "Compose networks isolate services; set network_policies=true to keep "
                                          "that isolation as NetworkPolicies")
    problems = _compose_extras.check_objects([d for n in selected for d in per_service[n]])
    if problems:
        raise ComposeError("generated objects the API server would reject: " + "; ".join(problems))
    stateless = [n for n in selected if summary[n]["kind"] != "StatefulSet"]
    stateful = [n for n in selected if summary[n]["kind"] == "StatefulSet"]
    return {
        "project": project["name"],
        "objects": per_service,
        "services": summary,
        "order": {"stateless": _topo(stateless, services), "stateful": _topo(stateful, services),
                  "apply": _apply_order(selected, services, {n: summary[n]["kind"] for n in selected})},
        "unsupported": sorted(ctx.unsupported, key=lambda u: (u["service"], u["field"])),
        "notes": sorted(ctx.notes, key=lambda u: (u["service"], u["field"])),
        "warnings": ctx.warnings,
        "secret_values": ctx.secret_values,
    }


def _refuse_name_collisions(project: dict[str, t.Any]) -> None:
    """Compose names that differ only where Kubernetes names cannot (``api_x`` and ``api-x``, case, length) map to
    the same object name: refuse them, naming both, instead of letting one object replace the other."""
    prefix = project["name"]
    for field, label in (("services", "service"), ("volumes", "volume"), ("secrets", "secret"),
                         ("configs", "config")):
        seen: dict[tuple[str, str], str] = {}
        for name in sorted(str(n) for n in (project.get(field) or {})):
            # the pod volume (or object) name, and the project-prefixed object name (claim, Secret, ConfigMap)
            derived = [("own", dns_name(name))]
            if field != "services":
                derived.append(("object", dns_name(f"{prefix}-{name}")))
            for space, k8s in derived:
                other = seen.setdefault((space, k8s), name)
                if other != name:
                    raise ComposeError(f"{field}: {label}s {other!r} and {name!r} both become the Kubernetes name "
                                       f"{k8s!r}; one would replace the other: rename one of them")


def _topo(names: list[str], services: dict[str, t.Any]) -> list[str]:
    """Dependencies first, alphabetical otherwise (deterministic)."""
    order: list[str] = []
    wanted = set(names)

    def visit(n: str, stack: tuple[str, ...]) -> None:
        if n in order or n not in wanted or n in stack:
            return
        for dep in sorted(_depends(n, services[n])):
            visit(dep, (*stack, n))
        order.append(n)

    for n in sorted(names):
        visit(n, ())
    return order


def _apply_order(names: list[str], services: dict[str, t.Any], kinds: dict[str, str]) -> list[str]:
    """Stateless services first, then stateful ones (seed Phase 2B), except that a service's dependencies always
    come before it (a stateful dependency of a stateless service moves up). Cycles are broken by name."""
    wanted = set(names)
    deps = {n: {d for d in _depends(n, services[n]) if d in wanted and d != n} for n in names}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(names):
        ready = [n for n in names if n not in done and deps[n] <= done]
        if not ready:  # a cycle: take the first remaining by the same priority
            ready = [n for n in names if n not in done]
        pick = min(ready, key=lambda n: (kinds[n] == "StatefulSet", n))
        order.append(pick)
        done.add(pick)
    return order
