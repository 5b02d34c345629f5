#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_facts
short_description: Discover NVIDIA GPUs (index, UUID, model, memory, driver, CUDA, MIG) on a host
version_added: 0.1.0
description:
  - Runs C(nvidia-smi --query-gpu=index,uuid,name,memory.total,driver_version,mig.mode.current
    --format=csv,noheader,nounits)
    and C(nvidia-smi -L) (for MIG devices) and returns the GPUs as facts.
  - Fallbacks when C(nvidia-smi) is missing or fails, in order - C(/proc/driver/nvidia/version) for the driver
    version and C(lspci -nn) to count NVIDIA controllers (reported in RV(gpu_facts.lspci_gpu_count)).
  - A host without a GPU yields an empty list, never an error.
  - Read-only; it never changes the host.
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
  nvidia_smi:
    description: Name or path of the C(nvidia-smi) binary.
    type: str
    default: nvidia-smi
  query_output:
    description:
      - Output of the CSV query, given instead of running C(nvidia-smi) (for tests and recorded outputs).
    type: str
  list_output:
    description: Output of C(nvidia-smi -L), used together with O(query_output).
    type: str
"""

EXAMPLES = r"""
- name: Discover GPUs
  sophia.migrate.gpu_facts:
  register: gpu

- name: Show the models
  ansible.builtin.debug:
    msg: "{{ gpu.gpu_facts.gpus | map(attribute='name') | list }}"
"""

RETURN = r"""
gpu_facts:
  description: GPUs found and where the information came from.
  returned: always
  type: dict
  contains:
    gpus:
      description: >-
        One entry per GPU (index, uuid, name, memory_mib, driver_version, mig_mode, mig_enabled, mig_devices).
      type: list
      elements: dict
    count:
      description: Number of GPUs.
      type: int
    driver_version:
      description: Driver version (from nvidia-smi or /proc/driver/nvidia/version), null when unknown.
      type: str
    cuda_version:
      description: CUDA version from the nvidia-smi banner, null when unknown.
      type: str
    source:
      description: V(nvidia-smi), V(input), V(proc), V(lspci) or V(none).
      type: str
    lspci_gpu_count:
      description: NVIDIA controllers seen by lspci when nvidia-smi was not usable, else null.
      type: int
"""

import os

from ansible_collections.sophia.migrate.plugins.module_utils import _gpu
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def _run(module: AnsibleModule, args: list[str]) -> str | None:
    rc, out, _err = module.run_command(args, check_rc=False)
    return out if rc == 0 else None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "nvidia_smi": {"type": "str", "default": "nvidia-smi"},
            "query_output": {"type": "str"},
            "list_output": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    facts = {"gpus": [], "count": 0, "driver_version": None, "cuda_version": None, "source": "none",
             "lspci_gpu_count": None}
    try:
        query, listing, banner, source = p["query_output"], p["list_output"], None, "input"
        if query is None:
            smi = module.get_bin_path(p["nvidia_smi"]) if not os.path.isabs(p["nvidia_smi"]) else p["nvidia_smi"]
            if smi and os.path.exists(smi):
                query = _run(module, [smi, *_gpu.QUERY_ARGS])
                listing = _run(module, [smi, "-L"])
                banner = _run(module, [smi])
                source = "nvidia-smi"
        if query is not None:
            gpus = _gpu.parse_query_csv(query)
            _gpu.attach_mig_devices(gpus, listing or "")
            facts.update(gpus=gpus, count=len(gpus), source=source if gpus else "none",
                         driver_version=gpus[0]["driver_version"] if gpus else None,
                         cuda_version=_gpu.parse_cuda_version(banner or ""))
        if not facts["gpus"] and p["query_output"] is None:
            if os.path.exists("/proc/driver/nvidia/version"):
                with open("/proc/driver/nvidia/version", encoding="utf-8") as fh:
                    facts["driver_version"] = _gpu.parse_driver_version(fh.read())
                    facts["source"] = "proc"
            lspci = module.get_bin_path("lspci")
            if lspci:
                out = _run(module, [lspci, "-nn"])
                if out is not None:
                    facts["lspci_gpu_count"] = _gpu.count_lspci_nvidia(out)
                    if facts["lspci_gpu_count"] and facts["source"] == "none":
                        facts["source"] = "lspci"
    except (ValueError, OSError) as exc:
        module.fail_json(msg=f"gpu_facts: cannot read GPU information: {exc}")
    module.exit_json(changed=False, gpu_facts=facts)


if __name__ == "__main__":
    main()
