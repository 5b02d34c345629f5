#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: usage_report
short_description: Right-size workloads from measured CPU, memory and GPU usage in Prometheus
version_added: 0.1.0
description:
  - Queries Prometheus (its HTTP API) over a window for each workload, CPU cores (average, p95, max),
    memory working set (p95, max), GPU utilisation (average, max) and GPU memory, using the metric names
    that K3s (cAdvisor through the kubelet) and NVIDIA's DCGM exporter publish.
  - Returns right-sizing recommendations (requests and limits with headroom), GPU sharing candidates
    (services whose GPU use stays low), the average utilisation of every GPU against the target
    (the seed's success criterion is an average below 80%), HorizontalPodAutoscaler manifests for
    workloads with a CPU or request-rate signal and VerticalPodAutoscaler objects in recommendation mode.
  - A workload without samples in the window is reported as C(insufficient_data), never given defaults.
  - Read-only; it changes nothing (apply the recommendations with P(sophia.migrate.compose_to_k8s#module) and the
    k8s_services role).
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - requests
options:
  prometheus_url:
    description: Base URL of Prometheus (C(http://) or C(https://) with a host), for example V(http://prometheus.monitoring:9090).
    type: str
    required: true
  validate_certs:
    description: Verify the TLS certificate of Prometheus.
    type: bool
    default: true
  timeout:
    description: Seconds per query.
    type: float
    default: 30
  namespace:
    description: Only workloads of this Kubernetes namespace (empty for all).
    type: str
    default: ""
  workloads:
    description: Only these workloads (values of O(workload_label)); listed ones without data are reported as such.
    type: list
    elements: str
    default: []
  workload_label:
    description: Label that names a workload in the metrics.
    type: str
    default: container
  window:
    description: Observation window (Prometheus duration).
    type: str
    default: 1h
  step:
    description: Resolution of the window's subqueries (Prometheus duration).
    type: str
    default: 1m
  rate_window:
    description: Range of the C(rate()) over CPU counters (Prometheus duration).
    type: str
    default: 5m
  request_metric:
    description: Counter of served requests, used as an HPA signal (for example V(http_requests_total)).
    type: str
    default: ""
  headroom:
    description: Fraction added on top of the measured p95/max (0.2 = 20%).
    type: float
    default: 0.2
  limit_ratio:
    description: CPU limit as a multiple of the CPU request.
    type: float
    default: 2.0
  min_cpu_millicores:
    description: Smallest CPU request recommended.
    type: int
    default: 10
  gpu_sharing_threshold:
    description: Average GPU utilisation (percent) below which a service is a candidate for a time-sliced GPU.
    type: float
    default: 30
  gpu_util_target:
    description: The average utilisation (percent) the GPUs must stay below.
    type: float
    default: 80
  hpa_max_replicas:
    description: maxReplicas of the HPA manifests.
    type: int
    default: 3
  hpa_cpu_target:
    description: Target average CPU utilisation (percent of the request) of the HPA manifests.
    type: int
    default: 70
"""

EXAMPLES = r"""
- name: Right-size the Sophia workloads from the last 7 days
  sophia.migrate.usage_report:
    prometheus_url: http://127.0.0.1:9090
    namespace: sophia
    window: 7d
    step: 5m
  register: usage

- name: Show GPU sharing candidates
  ansible.builtin.debug:
    msg: "{{ usage.sharing_candidates }} (GPU average {{ usage.gpu_util_average_percent }}%)"
"""

RETURN = r"""
workloads:
  description:
    - Per workload, the measured figures, C(resources) (requests and limits) and the C(gpu) verdict.
    - A workload without samples has C(insufficient_data=true) and no numbers.
  returned: always
  type: dict
gpus:
  description: Per GPU, average and peak utilisation and peak memory in the window.
  returned: always
  type: list
  elements: dict
gpu_util_average_percent:
  description: Average utilisation over all GPUs (null when no GPU metrics exist).
  returned: always
  type: float
gpu_util_target_met:
  description: Whether that average is below O(gpu_util_target) (null without GPU metrics).
  returned: always
  type: bool
sharing_candidates:
  description: Workloads that can move to a time-sliced GPU.
  returned: always
  type: list
  elements: str
insufficient_data:
  description: Workloads without samples in the window.
  returned: always
  type: list
  elements: str
hpa_manifests:
  description: autoscaling/v2 HorizontalPodAutoscaler objects.
  returned: always
  type: list
  elements: dict
vpa_manifests:
  description: autoscaling.k8s.io/v1 VerticalPodAutoscaler objects with updateMode Off.
  returned: always
  type: list
  elements: dict
markdown:
  description: A readable report of the above.
  returned: always
  type: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _http, _usage
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._prometheus import Prometheus, PrometheusError

OPTIONS = ("namespace", "window", "step", "workload_label", "rate_window", "request_metric", "workloads", "headroom",
           "limit_ratio", "min_cpu_millicores", "gpu_sharing_threshold", "gpu_util_target", "hpa_max_replicas",
           "hpa_cpu_target")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prometheus_url": {"type": "str", "required": True},
            "validate_certs": {"type": "bool", "default": True},
            "timeout": {"type": "float", "default": 30},
            "namespace": {"type": "str", "default": ""},
            "workloads": {"type": "list", "elements": "str", "default": []},
            "workload_label": {"type": "str", "default": "container"},
            "window": {"type": "str", "default": "1h"},
            "step": {"type": "str", "default": "1m"},
            "rate_window": {"type": "str", "default": "5m"},
            "request_metric": {"type": "str", "default": ""},
            "headroom": {"type": "float", "default": 0.2},
            "limit_ratio": {"type": "float", "default": 2.0},
            "min_cpu_millicores": {"type": "int", "default": 10},
            "gpu_sharing_threshold": {"type": "float", "default": 30},
            "gpu_util_target": {"type": "float", "default": 80},
            "hpa_max_replicas": {"type": "int", "default": 3},
            "hpa_cpu_target": {"type": "int", "default": 70},
        },
        supports_check_mode=True,
    )
    if not _http.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    p = module.params
    try:
        _usage.check_url(p["prometheus_url"], "prometheus_url")
        prom = Prometheus(p["prometheus_url"], timeout=p["timeout"], validate_certs=p["validate_certs"])
        result = _usage.report(prom, **{k: p[k] for k in OPTIONS})
    except (_usage.UsageError, PrometheusError, _http.HttpError) as exc:
        module.fail_json(msg=f"usage_report: {exc}")
    module.exit_json(changed=False, markdown=_usage.markdown(result), **result)


if __name__ == "__main__":
    main()
