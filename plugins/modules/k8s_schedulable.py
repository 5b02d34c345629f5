#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_schedulable
short_description: Prove offline that rendered workloads can be scheduled on the planned nodes (GPU stack included)
version_added: 0.1.0
description:
  - Reads rendered manifests and places every pod on the planned nodes the way kube-scheduler would, without a cluster.
  - Checks C(runtimeClassName) against the RuntimeClasses in the manifests and O(runtime_classes); C(nodeSelector);
    required node affinity (terms ORed, C(matchExpressions) ANDed, operators In, NotIn, Exists, DoesNotExist, Gt, Lt);
    tolerations against NoSchedule and NoExecute taints; extended resources such as C(nvidia.com/gpu) summed over every
    placed pod against the node's allocatable.
  - K3s C(HelmChart) objects of the GPU stacks are expanded into their DaemonSets from the chart's default values
    (C(<chart>-values-<version>.yaml) in O(chart_values_dirs)) merged with the HelmChart's values -
    C(nvidia-device-plugin) (device plugin, GFD, NFD) and C(gpu-operator) (NFD, the operator's node labels, its
    operand DaemonSets). GPU stack DaemonSets must fit every GPU node.
  - Fails naming each workload and the term that does not match; a manifest or node plan that cannot be read fails
    with a message naming it.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - PyYAML
options:
  paths:
    description: Manifest files or directories (searched recursively for C(*.yaml) and C(*.yml)).
    type: list
    elements: path
    default: []
  manifests:
    description: Manifest objects given directly (added to those read from O(paths)).
    type: list
    elements: dict
    default: []
  nodes:
    description: The planned nodes.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Node name (also its C(kubernetes.io/hostname) label).
        type: str
        required: true
      labels:
        description:
          - Node labels as they will be (for K3s, its C(node-label) settings). C(kubernetes.io/hostname),
            C(kubernetes.io/os=linux) and C(kubernetes.io/arch=amd64) are added when absent.
        type: dict
        default: {}
      taints:
        description: Taints, as C(key=value:Effect) strings (K3s C(node-taint)) or mappings with key, value, effect.
        type: list
        elements: raw
        default: []
      allocatable:
        description: Extended resources the node advertises, for example C(nvidia.com/gpu=4) as a mapping.
        type: dict
        default: {}
      gpus:
        description:
          - Physical GPUs of the node. Unless O(nodes[].allocatable) names C(nvidia.com/gpu), the node advertises
            O(nodes[].gpus) x O(nodes[].time_slicing_replicas) of it. Omitted (and not in allocatable), GPU counts
            are not checked (RV(nodes[].gpu_count_known) is false); labels, taints and RuntimeClasses still are.
        type: int
      time_slicing_replicas:
        description: Time-slicing replicas per GPU (the GPU plan's C(time_slicing_replicas)).
        type: int
        default: 1
  runtime_classes:
    description:
      - RuntimeClass names the cluster has besides those in the manifests. K3s creates C(nvidia) and
        C(nvidia-experimental) from its packaged C(runtimes.yaml); the GPU Operator's RuntimeClass is added when its
        HelmChart is among the manifests.
    type: list
    elements: str
    default: []
  chart_values_dirs:
    description: Directories holding the charts' default values files (the collection's C(specs/k8s)).
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: The GPU workloads fit the planned GPU node
  sophia.migrate.k8s_schedulable:
    paths: [/var/lib/sophia-migrate/k8s_services/services]
    runtime_classes: [nvidia, nvidia-experimental]
    nodes:
      - name: lambda-gpu-01
        labels: {nvidia.com/gpu.present: "true"}
        gpus: 4
        time_slicing_replicas: 1
"""

RETURN = r"""
schedulable:
  description: Whether every workload could be placed.
  returned: always
  type: bool
problems:
  description: One line per workload that cannot be placed, naming it, the node and the term that does not match.
  returned: always
  type: list
  elements: str
workloads:
  description: Each workload with its pod count, extended-resource requests per pod and the nodes it was placed on.
  returned: success
  type: list
  elements: dict
nodes:
  description: The planned nodes with the labels the GPU stack adds, their allocatable and what is left free.
  returned: success
  type: list
  elements: dict
  contains:
    gpu_count_known:
      description: Whether GPU requests were checked against a planned C(nvidia.com/gpu) allocatable.
      type: bool
gpu_requested:
  description: C(nvidia.com/gpu) requested by all workloads (pods x per-pod request).
  returned: success
  type: int
gpu_allocatable:
  description: C(nvidia.com/gpu) the planned nodes advertise.
  returned: success
  type: int
runtime_classes:
  description: RuntimeClass names taken as existing.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_schedule as ks
from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

NODE_SPEC = {
    "name": {"type": "str", "required": True},
    "labels": {"type": "dict", "default": {}},
    "taints": {"type": "list", "elements": "raw", "default": []},
    "allocatable": {"type": "dict", "default": {}},
    "gpus": {"type": "int"},
    "time_slicing_replicas": {"type": "int", "default": 1},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "default": []},
            "manifests": {"type": "list", "elements": "dict", "default": []},
            "nodes": {"type": "list", "elements": "dict", "required": True, "options": NODE_SPEC},
            "runtime_classes": {"type": "list", "elements": "str", "default": []},
            "chart_values_dirs": {"type": "list", "elements": "path", "default": []},
        },
        supports_check_mode=True,
    )
    if not kv.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    p = module.params
    if not p["paths"] and not p["manifests"]:
        module.fail_json(msg="k8s_schedulable: give the manifests in paths or manifests", schedulable=False,
                         problems=[])
    try:
        docs = kv.load_manifest_files(p["paths"]) + [("manifests", d) for d in p["manifests"]]
        nodes = [ks.plan_node(n, i) for i, n in enumerate(p["nodes"])]
        result = ks.check(docs, nodes, ks.ChartValues(p["chart_values_dirs"]), p["runtime_classes"])
    except (kv.ManifestError, ks.ScheduleError) as exc:
        module.fail_json(msg=f"k8s_schedulable: {exc}", schedulable=False, problems=[str(exc)])
    if not result["schedulable"]:
        problems = result["problems"]
        module.fail_json(msg=f"k8s_schedulable: {len(problems)} workload(s) cannot be scheduled; first: {problems[0]}",
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
