"""Carry the Compose stack's monitoring configuration over to Kubernetes.

- Prometheus ``scrape_configs`` with ``static_configs`` targets ``<compose-service>:<port>`` become
  ``kubernetes_sd_configs`` (role ``endpoints``) that keep exactly that Service and port in the target
  namespace; job name, metrics path, scheme, interval, timeout and params are kept.
- Targets that the Kubernetes monitoring stack already covers (node exporter, cAdvisor) are reported as
  replaced, targets outside the stack (IP addresses, external hosts) are kept as static targets, and
  anything that cannot be carried over (file/docker/consul service discovery, relabelling on Docker
  metadata) is reported with the reason. Nothing is dropped silently.
- Grafana dashboards (JSON) become ConfigMaps labelled for Grafana's dashboard sidecar; datasource
  references are rewritten through a map, and unknown datasources are reported.
"""

from __future__ import annotations

import copy
import json
import os
import re
import typing as t

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the modules
    yaml = None  # type: ignore[assignment]
    HAS_YAML = False

REPLACED_BY_STACK = {
    "node-exporter": "the chart's node exporter DaemonSet",
    "node_exporter": "the chart's node exporter DaemonSet",
    "cadvisor": "the kubelet's cAdvisor endpoint scraped by the chart",
}
KEEP_KEYS = (
    "job_name",
    "metrics_path",
    "scheme",
    "scrape_interval",
    "scrape_timeout",
    "params",
    "honor_labels",
    "honor_timestamps",
    "metric_relabel_configs",
    "tls_config",
)
UNSUPPORTED_SD = (
    "file_sd_configs",
    "docker_sd_configs",
    "dockerswarm_sd_configs",
    "consul_sd_configs",
    "dns_sd_configs",
    "ec2_sd_configs",
    "gce_sd_configs",
    "azure_sd_configs",
)
_NAME = re.compile(r"[^a-z0-9-]+")


class TranslateError(Exception):
    pass


def _dns1123(value: str) -> str:
    return _NAME.sub("-", value.lower()).strip("-")[:63] or "x"


def _is_address(host: str) -> bool:
    return bool(re.match(r"^\d+\.\d+\.\d+\.\d+$", host)) or "." in host


def load_yaml(path: str) -> t.Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as exc:
        raise TranslateError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TranslateError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise TranslateError(f"{path}: not valid YAML: {exc}") from exc


def translate_scrape_configs(
    config: dict[str, t.Any], namespace: str, services: dict[str, str], source: str = "prometheus.yml"
) -> dict[str, t.Any]:
    """``services`` maps Compose host names to Kubernetes Service names (identity when equal)."""
    if not isinstance(config, dict) or not isinstance(config.get("scrape_configs", []), list):
        raise TranslateError(f"{source}: no 'scrape_configs' list")
    translated, kept, replaced, untranslated = [], [], [], []
    for index, job in enumerate(config.get("scrape_configs") or []):
        if not isinstance(job, dict) or not job.get("job_name"):
            raise TranslateError(f"{source}: scrape_configs[{index}] has no job_name")
        name = job["job_name"]
        for key in UNSUPPORTED_SD:
            if key in job:
                untranslated.append(
                    {
                        "job": name,
                        "what": key,
                        "why": f"{key} has no equivalent here; use a ServiceMonitor or Kubernetes service discovery",
                    }
                )
        if any("__meta_docker" in json.dumps(rc) for rc in job.get("relabel_configs") or []):
            untranslated.append(
                {
                    "job": name,
                    "what": "relabel_configs",
                    "why": "relabelling on Docker metadata (__meta_docker_*) does not exist in Kubernetes",
                }
            )
        base = {k: copy.deepcopy(job[k]) for k in KEEP_KEYS if k in job}
        static_left: list[str] = []
        total_targets = sum(len(g.get("targets") or []) for g in job.get("static_configs") or [])
        for group in job.get("static_configs") or []:
            labels = group.get("labels") or {}
            for target in group.get("targets") or []:
                host, _sep, port = str(target).rpartition(":")
                if not host:
                    host, port = port, ""
                if host in REPLACED_BY_STACK:
                    replaced.append({"job": name, "target": target, "by": REPLACED_BY_STACK[host]})
                elif host in services or (not _is_address(host) and not services):
                    svc = services.get(host, host)
                    keep = [
                        {"source_labels": ["__meta_kubernetes_service_name"], "regex": _dns1123(svc), "action": "keep"},
                    ]
                    if port:
                        keep.append(
                            {
                                "source_labels": ["__meta_kubernetes_endpoint_port_number"],
                                "regex": port,
                                "action": "keep",
                            }
                        )
                    relabel = keep + [{"target_label": k, "replacement": str(v)} for k, v in sorted(labels.items())]
                    relabel.append({"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"})
                    translated.append(
                        {
                            **base,
                            "job_name": name if total_targets == 1 else f"{name}-{_dns1123(svc)}",
                            "kubernetes_sd_configs": [{"role": "endpoints", "namespaces": {"names": [namespace]}}],
                            "relabel_configs": relabel,
                        }
                    )
                else:
                    static_left.append(target)
        if static_left:
            kept.append({**base, "static_configs": [{"targets": static_left}]})
        if not job.get("static_configs") and not any(k in job for k in UNSUPPORTED_SD):
            untranslated.append({"job": name, "what": "job", "why": "no static_configs to translate"})
    return {
        "scrape_configs": translated + kept,
        "translated": len(translated),
        "kept_static": kept,
        "replaced": replaced,
        "untranslated": untranslated,
    }


def _datasource(value: t.Any, uid_map: dict[str, str], unknown: set[str]) -> t.Any:
    if isinstance(value, str):
        if value in uid_map:
            return uid_map[value]
        if not value.startswith("$"):
            unknown.add(value)
        return value
    if isinstance(value, dict) and value.get("uid") and not str(value["uid"]).startswith("$"):
        if value["uid"] in uid_map:
            return {**value, "uid": uid_map[value["uid"]]}
        unknown.add(str(value["uid"]))
    return value


def _rewrite_datasources(node: t.Any, uid_map: dict[str, str], unknown: set[str]) -> t.Any:
    if isinstance(node, dict):
        return {
            key: _datasource(value, uid_map, unknown)
            if key == "datasource"
            else _rewrite_datasources(value, uid_map, unknown)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_datasources(v, uid_map, unknown) for v in node]
    return node


def dashboards_to_configmaps(
    directory: str, namespace: str, uid_map: dict[str, str], label: str = "grafana_dashboard"
) -> dict[str, t.Any]:
    if not os.path.isdir(directory):
        raise TranslateError(f"{directory}: not a directory of Grafana dashboards")
    maps, problems = [], []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as handle:
                board = json.load(handle)
        except (OSError, ValueError) as exc:
            problems.append({"file": name, "why": f"not readable JSON: {exc}"})
            continue
        unknown: set[str] = set()
        board = _rewrite_datasources(board, uid_map, unknown)
        for uid in sorted(unknown):
            problems.append(
                {"file": name, "why": f"datasource '{uid}' has no mapping; it will not resolve in the new Grafana"}
            )
        maps.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"dashboard-{_dns1123(os.path.splitext(name)[0])}",
                    "namespace": namespace,
                    "labels": {label: "1", "app.kubernetes.io/managed-by": "sophia.migrate"},
                },
                "data": {name: json.dumps(board, indent=1, sort_keys=True)},
            }
        )
    return {"configmaps": maps, "problems": problems}
