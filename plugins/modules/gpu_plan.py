#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_plan
short_description: Decide how services share the GPUs found (dedicated, time-slicing or none)
version_added: 0.1.0
description:
  - Given the GPUs found by M(sophia.migrate.gpu_facts) and the GPU requests of services, decides the placement.
  - Dedicated GPUs when there are at least as many GPUs as requested; otherwise time-slicing replicas
    (NVIDIA device plugin C(sharing.timeSlicing)) with the smallest replica count that fits.
  - Fails with the numbers when the requests cannot fit (no GPU, one service wanting more GPUs than exist,
    time-slicing disabled, or more replicas needed than O(max_replicas)).
  - Pure computation; it never changes the host.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  gpus:
    description: The RV(sophia.migrate.gpu_facts#module:gpu_facts.gpus) list (only its length is used).
    type: list
    elements: dict
    required: true
  requests:
    description:
      - Service name to number of whole GPUs requested. Defaults to the seed's strategy
        (mcp-research, mcp-context, mcp-agents one GPU each).
    type: dict
  allow_time_slicing:
    description: Allow time-slicing when there are fewer GPUs than requested.
    type: bool
    default: true
  max_replicas:
    description: Largest number of time-slicing replicas per physical GPU.
    type: int
    default: 8
"""

EXAMPLES = r"""
- name: Plan GPU placement for the seed's services
  sophia.migrate.gpu_plan:
    gpus: "{{ gpu.gpu_facts.gpus }}"
  register: gpu_placement
"""

RETURN = r"""
plan:
  description: The placement.
  returned: success
  type: dict
  contains:
    mode:
      description: V(dedicated), V(time-slicing) or V(none).
      type: str
    time_slicing_replicas:
      description: Replicas per physical GPU (1 unless time-slicing).
      type: int
    services:
      description: "Per service: gpus, resource (nvidia.com/gpu), shared."
      type: dict
    device_plugin_config:
      description: The device plugin time-slicing config (version v1, sharing.timeSlicing) or an empty dict.
      type: dict
    gpus_found:
      description: Physical GPUs.
      type: int
    gpus_requested:
      description: Sum of the requests.
      type: int
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _gpu
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "gpus": {"type": "list", "elements": "dict", "required": True},
            "requests": {"type": "dict"},
            "allow_time_slicing": {"type": "bool", "default": True},
            "max_replicas": {"type": "int", "default": 8},
        },
        supports_check_mode=True,
    )
    p = module.params
    requests = None
    if p["requests"] is not None:
        try:
            requests = {str(k): int(v) for k, v in p["requests"].items()}
        except (TypeError, ValueError) as exc:
            module.fail_json(msg=f"gpu_plan: option requests must map service names to integers: {exc}")
    try:
        result = _gpu.plan(p["gpus"], requests, p["allow_time_slicing"], p["max_replicas"])
    except _gpu.GpuPlanError as exc:
        module.fail_json(msg=f"gpu_plan: {exc}")
    module.exit_json(changed=False, plan=result)


if __name__ == "__main__":
    main()
