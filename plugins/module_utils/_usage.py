"""Right-sizing from measured usage: Prometheus queries per workload and the recommendations drawn from them.

The queries follow the metric names of what K3s and the NVIDIA stack export: cAdvisor through the
kubelet (``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``) and NVIDIA's
DCGM exporter (``DCGM_FI_DEV_GPU_UTIL`` in percent, ``DCGM_FI_DEV_FB_USED``/``DCGM_FI_DEV_FB_FREE`` in MiB,
with the ``pod``/``container``/``namespace`` labels the exporter adds when it maps GPUs to pods).

Recommendations (all from data measured in the window, never from defaults):
- CPU request = p95 of cores used x (1 + headroom), at least ``min_cpu_millicores``; limit = request x ``limit_ratio``.
- Memory request = p95 of working set x (1 + headroom); limit = max x (1 + headroom) (at least the request).
- GPU sharing candidate: average GPU utilisation below ``gpu_sharing_threshold`` percent and peak GPU memory
  below half the GPU's memory; such a service can move to a time-sliced GPU.
- HPA (autoscaling/v2) for workloads with a CPU or request-rate signal; VPA objects in recommendation mode.
A workload with no samples gets ``insufficient_data`` and no numbers.
"""

from __future__ import annotations

import math
import re
import typing as t
from urllib.parse import urlsplit

from ansible_collections.sophia.migrate.plugins.module_utils._prometheus import Prometheus

_DURATION = re.compile(r"^([0-9]+)(s|m|h|d)$")


class UsageError(Exception):
    pass


def check_duration(value: str, name: str) -> str:
    if not _DURATION.match(value or ""):
        raise UsageError(f"option '{name}' must be a Prometheus duration like 30s, 15m, 1h or 7d (got {value!r})")
    return value


def check_url(value: str, name: str) -> str:
    """``value`` when it is an http(s) URL with a host (and a valid port), else a UsageError naming ``name``."""
    try:
        parts = urlsplit(value or "")
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"option '{name}' must be an http:// or https:// URL with a host, for example "
                         f"http://prometheus.monitoring:9090 (got {value!r})")
    return value


def _selector(namespace: str, workload_label: str, extra: str = "") -> str:
    parts = [f'{workload_label}!=""', f'{workload_label}!="POD"']
    if namespace:
        parts.append(f'namespace="{namespace}"')
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def queries(
    namespace: str, window: str, step: str, workload_label: str, rate_window: str, request_metric: str
) -> dict[str, str]:
    sel = _selector(namespace, workload_label)
    by = f"sum by ({workload_label})"
    cpu = f"{by} (rate(container_cpu_usage_seconds_total{sel}[{rate_window}]))"
    mem = f"{by} (container_memory_working_set_bytes{sel})"
    gpu = f"avg by ({workload_label}) (DCGM_FI_DEV_GPU_UTIL{sel})"
    gpu_mem = f"{by} (DCGM_FI_DEV_FB_USED{sel})"
    gpu_total = f"{by} (DCGM_FI_DEV_FB_USED{sel} + DCGM_FI_DEV_FB_FREE{sel})"
    out = {
        "cpu_avg": f"avg_over_time(({cpu})[{window}:{step}])",
        "cpu_p95": f"quantile_over_time(0.95, ({cpu})[{window}:{step}])",
        "cpu_max": f"max_over_time(({cpu})[{window}:{step}])",
        "mem_p95": f"quantile_over_time(0.95, ({mem})[{window}:{step}])",
        "mem_max": f"max_over_time(({mem})[{window}:{step}])",
        "gpu_util_avg": f"avg_over_time(({gpu})[{window}:{step}])",
        "gpu_util_max": f"max_over_time(({gpu})[{window}:{step}])",
        "gpu_mem_max_mib": f"max_over_time(({gpu_mem})[{window}:{step}])",
        "gpu_mem_total_mib": f"max_over_time(({gpu_total})[{window}:{step}])",
        "samples": f"count_over_time(({mem})[{window}:{step}])",
    }
    if request_metric:
        out["request_rate"] = f"{by} (rate({request_metric}{sel}[{window}]))"
    return out


def per_gpu_queries(window: str, step: str) -> dict[str, str]:
    return {
        "util_avg": f"avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}])",
        "util_max": f"max_over_time(DCGM_FI_DEV_GPU_UTIL[{window}])",
        "mem_used_max_mib": f"max_over_time(DCGM_FI_DEV_FB_USED[{window}])",
    }


def mebibytes(value: float) -> str:
    return f"{max(1, math.ceil(value / (1024 * 1024)))}Mi"


def recommend(
    measured: dict[str, float | None],
    headroom: float,
    limit_ratio: float,
    min_cpu_millicores: int,
    gpu_sharing_threshold: float,
) -> dict[str, t.Any]:
    """Turn measured figures of one workload into requests/limits and a GPU verdict."""
    rec: dict[str, t.Any] = {"measured": {k: v for k, v in measured.items() if v is not None}}
    if not measured.get("samples"):
        rec["insufficient_data"] = True
        return rec
    rec["insufficient_data"] = False
    resources: dict[str, dict[str, str]] = {"requests": {}, "limits": {}}
    if measured.get("cpu_p95") is not None:
        req_m = max(1, math.ceil(max(measured["cpu_p95"] * (1 + headroom), min_cpu_millicores / 1000) * 100)) * 10
        resources["requests"]["cpu"] = f"{req_m}m"
        resources["limits"]["cpu"] = f"{math.ceil(req_m * limit_ratio)}m"
    if measured.get("mem_p95") is not None:
        req_mem = measured["mem_p95"] * (1 + headroom)
        resources["requests"]["memory"] = mebibytes(req_mem)
        resources["limits"]["memory"] = mebibytes(
            max(measured.get("mem_max") or 0, measured["mem_p95"]) * (1 + headroom)
        )
    rec["resources"] = resources
    util = measured.get("gpu_util_avg")
    if util is not None:
        total = measured.get("gpu_mem_total_mib") or 0
        peak = measured.get("gpu_mem_max_mib") or 0
        low_util = util < gpu_sharing_threshold
        low_mem = total > 0 and peak < total / 2
        rec["gpu"] = {
            "util_avg_percent": round(util, 1),
            "util_max_percent": round(measured.get("gpu_util_max") or util, 1),
            "mem_peak_mib": round(peak),
            "mem_total_mib": round(total),
            "sharing_candidate": bool(low_util and low_mem),
            "reason": (
                f"average GPU use {util:.1f}% < {gpu_sharing_threshold:g}% and peak memory {peak:.0f} MiB "
                f"< half of {total:.0f} MiB: can share a time-sliced GPU"
            )
            if low_util and low_mem
            else (
                f"average GPU use {util:.1f}% (threshold {gpu_sharing_threshold:g}%), peak memory {peak:.0f} of "
                f"{total:.0f} MiB: keep a dedicated GPU"
            ),
        }
    return rec


def hpa_manifest(name: str, namespace: str, max_replicas: int, cpu_target: int) -> dict[str, t.Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": namespace or "default",
            "labels": {"app.kubernetes.io/managed-by": "sophia.migrate"},
        },
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_target}},
                }
            ],
        },
    }


def vpa_manifest(name: str, namespace: str) -> dict[str, t.Any]:
    return {
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {
            "name": name,
            "namespace": namespace or "default",
            "labels": {"app.kubernetes.io/managed-by": "sophia.migrate"},
        },
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "updatePolicy": {"updateMode": "Off"},
        },
    }


def collect(
    prom: Prometheus,
    namespace: str,
    window: str,
    step: str,
    workload_label: str,
    rate_window: str,
    request_metric: str,
    workloads: list[str],
) -> dict[str, dict[str, float | None]]:
    figures: dict[str, dict[str, float | None]] = {}
    for key, expr in queries(namespace, window, step, workload_label, rate_window, request_metric).items():
        for row in prom.query(expr):
            name = row["labels"].get(workload_label)
            if not name or (workloads and name not in workloads):
                continue
            value = row["value"]
            figures.setdefault(name, {})[key] = None if math.isnan(value) else value
    for name in workloads:
        figures.setdefault(name, {})
    return dict(sorted(figures.items()))


def gpus(prom: Prometheus, window: str, step: str) -> list[dict[str, t.Any]]:
    rows: dict[str, dict[str, t.Any]] = {}
    for key, expr in per_gpu_queries(window, step).items():
        for row in prom.query(expr):
            labels = row["labels"]
            gid = labels.get("UUID") or labels.get("gpu") or "?"
            entry = rows.setdefault(
                gid,
                {
                    "uuid": labels.get("UUID"),
                    "gpu": labels.get("gpu"),
                    "model": labels.get("modelName"),
                    "host": labels.get("Hostname"),
                },
            )
            entry[key] = round(row["value"], 2)
    return [rows[k] for k in sorted(rows)]


def report(
    prom: Prometheus,
    namespace: str = "",
    window: str = "1h",
    step: str = "1m",
    workload_label: str = "container",
    rate_window: str = "5m",
    request_metric: str = "",
    workloads: list[str] | None = None,
    headroom: float = 0.2,
    limit_ratio: float = 2.0,
    min_cpu_millicores: int = 10,
    gpu_sharing_threshold: float = 30.0,
    gpu_util_target: float = 80.0,
    hpa_max_replicas: int = 3,
    hpa_cpu_target: int = 70,
) -> dict[str, t.Any]:
    check_duration(window, "window")
    check_duration(step, "step")
    check_duration(rate_window, "rate_window")
    if headroom < 0 or limit_ratio < 1:
        raise UsageError("option 'headroom' must be >= 0 and 'limit_ratio' >= 1")
    figures = collect(prom, namespace, window, step, workload_label, rate_window, request_metric, workloads or [])
    recs = {
        name: recommend(m, headroom, limit_ratio, min_cpu_millicores, gpu_sharing_threshold)
        for name, m in figures.items()
    }
    hpas, vpas = [], []
    for name, rec in recs.items():
        if rec["insufficient_data"]:
            continue
        measured = rec["measured"]
        if (measured.get("cpu_avg") or 0) > 0 or (measured.get("request_rate") or 0) > 0:
            hpas.append(hpa_manifest(name, namespace, hpa_max_replicas, hpa_cpu_target))
        vpas.append(vpa_manifest(name, namespace))
    gpu_rows = gpus(prom, window, step)
    avg = (sum(g["util_avg"] for g in gpu_rows if "util_avg" in g) / len(gpu_rows)) if gpu_rows else None
    return {
        "window": window,
        "workloads": recs,
        "gpus": gpu_rows,
        "gpu_util_average_percent": None if avg is None else round(avg, 2),
        "gpu_util_target_met": None if avg is None else avg < gpu_util_target,
        "sharing_candidates": sorted(n for n, r in recs.items() if (r.get("gpu") or {}).get("sharing_candidate")),
        "insufficient_data": sorted(n for n, r in recs.items() if r["insufficient_data"]),
        "hpa_manifests": hpas,
        "vpa_manifests": vpas,
    }


def markdown(result: dict[str, t.Any]) -> str:
    lines = [
        f"# Resource usage over {result['window']}",
        "",
        "| workload | CPU p95 | memory p95 | requests | limits | GPU |",
        "|---|---|---|---|---|---|",
    ]
    for name, rec in result["workloads"].items():
        if rec["insufficient_data"]:
            lines.append(f"| {name} | no data | no data | - | - | - |")
            continue
        m = rec["measured"]
        res = rec.get("resources", {})
        gpu = rec.get("gpu")
        lines.append(
            f"| {name} | {m.get('cpu_p95', 0):.3f} cores | {(m.get('mem_p95') or 0) / 1048576:.0f} MiB | "
            f"{res.get('requests', {})} | {res.get('limits', {})} | "
            f"{(gpu['reason'] if gpu else '-')} |"
        )
    if result["gpus"]:
        lines += ["", "| GPU | model | average use | peak use |", "|---|---|---|---|"]
        for g in result["gpus"]:
            ident = f"{g.get('gpu')} {g.get('uuid') or ''}"
            lines.append(f"| {ident} | {g.get('model') or ''} | {g.get('util_avg')}% | {g.get('util_max')}% |")
    return "\n".join(lines) + "\n"
