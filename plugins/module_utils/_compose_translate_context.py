# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every step of the Compose translation shares: the options (``Options``), the per-run record of notes,
unsupported fields, warnings, secret values and the objects made so far (``_Ctx``), object metadata, and the order
of objects in a service's manifest."""

from __future__ import annotations

import base64
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._compose_values import (
    DEFAULT_SECRET_PATTERNS,
    ComposeError,
    dns_name,
)

MANAGED_BY = "sophia.migrate"


class Options(t.NamedTuple):
    namespace: str = "default"
    stateful: tuple[str, ...] = ()
    stateless: tuple[str, ...] = ()
    secret_env: tuple[str, ...] = ()
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    gpu_plan: dict[str, t.Any] | None = None
    gpu_count_all: int = 1
    gpu_runtime_class: str = "nvidia"
    gpu_node_selector: dict[str, str] | None = None
    gpu_tolerations: tuple[dict[str, t.Any], ...] | None = None
    volume_size: str = "1Gi"
    volume_sizes: dict[str, str] | None = None
    storage_class: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    wait_image: str = "busybox:1.36"
    depends_on: str = "init"  # init | ordering
    bind_mounts: str = "hostPath"  # hostPath | emptyDir
    services: tuple[str, ...] = ()
    # measured right-sizing (phase 2C): {service: {requests: {cpu, memory}, limits: {cpu, memory}}}, Kubernetes
    # quantities; replaces what deploy.resources gives for those keys, never a GPU resource
    resource_overrides: dict[str, t.Any] | None = None
    external_volumes: dict[str, str] | None = None
    network_policies: bool = False


DEFAULT_GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


class _Ctx:
    def __init__(self, project: dict[str, t.Any], opts: Options):
        self.project = project
        self.opts = opts
        self.unsupported: list[dict[str, str]] = []
        self.notes: list[dict[str, str]] = []
        self.warnings: list[str] = []
        self.secret_values: set[str] = set()
        # (kind, name) of every object made so far -> what in the Compose project it was made from
        self.objects: dict[tuple[str, str], str] = {}

    def claim(self, kind: str, name: str, origin: str) -> None:
        """Refuse a second, different Compose origin for the same Kubernetes object (one would replace the other)."""
        first = self.objects.setdefault((kind, name), origin)
        if first != origin:
            raise ComposeError(f"{first} and {origin} both become the Kubernetes {kind} {name!r}; one would "
                               "replace the other: rename one of them in the Compose file")

    def unsupported_field(self, service: str, field: str, reason: str) -> None:
        self.unsupported.append({"service": service, "field": field, "reason": reason})

    def note(self, service: str, field: str, text: str) -> None:
        self.notes.append({"service": service, "field": field, "note": text})


def _meta(name: str, ctx: _Ctx, service: str, extra_labels: dict[str, str] | None = None,
          annotations: dict[str, str] | None = None) -> dict[str, t.Any]:
    labels = {
        "app.kubernetes.io/name": dns_name(service),
        "app.kubernetes.io/part-of": ctx.project["name"],
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }
    labels.update(extra_labels or {})
    meta: dict[str, t.Any] = {"name": name, "namespace": ctx.opts.namespace, "labels": dict(sorted(labels.items()))}
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    return meta


def _b64(value: str | bytes) -> str:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


_KIND_ORDER = {"Namespace": 0, "Secret": 1, "ConfigMap": 2, "PersistentVolumeClaim": 3, "Service": 4,
               "NetworkPolicy": 4, "Deployment": 5, "StatefulSet": 5, "Job": 5}


def _sorted_docs(docs: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    return sorted(docs, key=lambda d: (_KIND_ORDER.get(d["kind"], 9), d["kind"], d["metadata"]["name"]))


def _depends(name: str, svc: dict[str, t.Any]) -> dict[str, str]:
    dep = svc.get("depends_on") or {}
    if isinstance(dep, list):
        return {str(d): "service_started" for d in dep}
    if isinstance(dep, dict):
        out = {}
        for d, v in dep.items():
            cond = (v or {}).get("condition", "service_started") if isinstance(v, dict) else "service_started"
            out[str(d)] = str(cond)
        return out
    raise ComposeError(f"service {name}: depends_on must be a list or a mapping")
