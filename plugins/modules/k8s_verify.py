#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_verify
short_description: Verify a deployed K3s GPU cluster from its objects and events (verdict and reasons)
version_added: 0.1.0
description:
  - Reads nodes, pods, events, Jobs, Deployments, StatefulSets, DaemonSets, PersistentVolumeClaims, cert-manager
    Certificates and ACME Challenges with the kubernetes client (or takes them in O(objects)) and decides whether the
    cluster works.
  - Checks - every node (or O(expect.gpu_node)) Ready; C(nvidia.com/gpu) allocatable equal to
    O(expect.gpu_allocatable); the HelmChart install Jobs of K3s' helm-controller in O(expect.helm_jobs) completed;
    the GPU stack's pods (O(expect.gpu_stack_pods)) Ready; the Deployments in O(expect.controllers) Available; every
    Certificate Ready; every Deployment/StatefulSet (or those in O(expect.workloads)) rolled out; every
    PersistentVolumeClaim Bound; every Pending pod explained from its FailedScheduling events.
  - With O(expect.cuda_smoke), also checks the CUDA smoke pods (C(nvidia-smi) in pods that request one
    C(nvidia.com/gpu) each, created and removed by the caller) from their phase and the logs given.
  - Without an API server (no kubeconfig, nothing listening, as in the lab) it reports RV(verdict) C(not run) and
    the reason, and does not fail; so does O(not_run_reason), without reading anything. Each check that would have
    run is in RV(checks) with C(ran=false) and the reason.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - kubernetes (Python client, only to read a cluster)
options:
  objects:
    description:
      - The objects to verify, by kind (C(nodes), C(pods), C(events), C(jobs), C(deployments), C(statefulsets),
        C(daemonsets), C(certificates), C(challenges), C(pvcs)), each a list of objects as C(kubectl get -o yaml)
        shows them. Given, no cluster is read.
    type: dict
  not_run_reason:
    description:
      - Why the verification cannot run here (for example K3s staged, not started). Given, nothing is read and
        RV(verdict) is C(not run) with this reason for every check.
    type: str
  kubeconfig:
    description: Kubeconfig of the cluster to read (default the client's usual lookup).
    type: path
  context:
    description: Kubeconfig context.
    type: str
  namespaces:
    description: Namespaces to read namespaced objects from (empty - all; Jobs are read from kube-system).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds allowed for each list request.
    type: int
    default: 15
  expect:
    description: What must exist and hold.
    type: dict
    default: {}
    suboptions:
      gpu_node:
        description: Name of the GPU node (default every node).
        type: str
      gpu_allocatable:
        description:
          - C(nvidia.com/gpu) the GPU node must advertise (GPUs x time-slicing replicas); omitted, not checked.
        type: int
      helm_jobs:
        description: Names of helm-controller install Jobs that must have completed (C(helm-install-<HelmChart name>)).
        type: list
        elements: str
        default: []
      helm_namespace:
        description: Namespace of the install Jobs.
        type: str
        default: kube-system
      gpu_stack_pods:
        description: Pods of the GPU stack that must exist and be Ready, as C({namespace, name_prefix}).
        type: list
        elements: dict
        default: []
      controllers:
        description: Deployments that must be Available (ingress controller, cert-manager), as C({namespace, name}).
        type: list
        elements: dict
        default: []
      workloads:
        description:
          - Deployments and StatefulSets that must be rolled out, as C({kind, namespace, name}).
          - Omitted, every one read is checked.
        type: list
        elements: dict
      cuda_smoke:
        description:
          - The CUDA smoke pods to judge, as C({namespace, name_prefix, count, gpu_uuids, logs, require_each_gpu,
            skip_reason}) - C(count) pods named C(<name_prefix>*) must have Succeeded and their C(logs) (pod name to
            log text) list a GPU UUID; only UUIDs in C(gpu_uuids) (the host's C(nvidia-smi)); with
            C(require_each_gpu) every one of them.
          - With C(skip_reason) the check is reported not run with that reason (the smoke test is switched off).
        type: dict
  fail_on_problems:
    description: Fail when the verdict is C(fail) (the reasons are in the message and the result).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Verify the K3s GPU cluster after Phase 2A
  sophia.migrate.k8s_verify:
    kubeconfig: /etc/rancher/k3s/k3s.yaml
    expect:
      gpu_node: lambda-gpu-01
      gpu_allocatable: 3
      helm_jobs: [helm-install-nvidia-device-plugin]
      gpu_stack_pods: [{namespace: nvidia-device-plugin, name_prefix: nvidia-device-plugin}]
      controllers:
        - {namespace: ingress-nginx, name: ingress-nginx-controller}
        - {namespace: cert-manager, name: cert-manager}
  register: cluster_verdict
"""

RETURN = r"""
verdict:
  description: C(pass), C(fail) or C(not run) (no API server to read).
  returned: always
  type: str
ran:
  description: Whether objects were verified.
  returned: always
  type: bool
reasons:
  description: Every failed check's reasons, or why the verification did not run.
  returned: always
  type: list
  elements: str
checks:
  description:
    - Each check with C(ran), C(ok) (C(null) when not run), its C(reasons) (why it failed, or why it did not run) and
      the objects it C(checked); C(cuda_smoke) also has C(gpus_seen).
  returned: always
  type: list
  elements: dict
not_run:
  description: "Each check that did not run, as C(<check>: <reason>)."
  returned: always
  type: list
  elements: str
pending:
  description: Each Pending pod with the scheduler's message split into reasons and what each usually means.
  returned: when ran
  type: list
  elements: dict
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_verify as kverify
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

EXPECT_SPEC = {
    "gpu_node": {"type": "str"},
    "gpu_allocatable": {"type": "int"},
    "helm_jobs": {"type": "list", "elements": "str", "default": []},
    "helm_namespace": {"type": "str", "default": "kube-system"},
    "gpu_stack_pods": {"type": "list", "elements": "dict", "default": []},
    "controllers": {"type": "list", "elements": "dict", "default": []},
    "workloads": {"type": "list", "elements": "dict"},
    "cuda_smoke": {"type": "dict"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "objects": {"type": "dict"},
            "not_run_reason": {"type": "str"},
            "kubeconfig": {"type": "path"},
            "context": {"type": "str"},
            "namespaces": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 15},
            "expect": {"type": "dict", "default": {}, "options": EXPECT_SPEC},
            "fail_on_problems": {"type": "bool", "default": True},
        },
        mutually_exclusive=[("objects", "kubeconfig"), ("objects", "context"), ("objects", "not_run_reason")],
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] <= 0:
        module.fail_json(msg=f"k8s_verify: timeout must be a positive number of seconds, got {p['timeout']}")
    if p["not_run_reason"] is not None:
        if not p["not_run_reason"].strip():
            module.fail_json(msg="k8s_verify: not_run_reason must say why the verification cannot run (it is empty)")
        module.exit_json(changed=False, **kverify.not_run(f"not run: {p['not_run_reason'].strip()}", p["expect"]))
    try:
        objects = p["objects"]
        if objects is None:
            objects = kverify.read_cluster(p["kubeconfig"], p["context"], p["namespaces"], p["timeout"])
        result = kverify.verify(objects, p["expect"])
    except kverify.NoApiServer as exc:
        module.exit_json(changed=False, **kverify.not_run(f"not run: no API server: {exc}", p["expect"]))
    except kverify.VerifyError as exc:
        module.fail_json(msg=f"k8s_verify: {exc}", ran=False, verdict="not run", reasons=[str(exc)])
    if result["verdict"] == "fail" and p["fail_on_problems"]:
        module.fail_json(msg=f"k8s_verify: {len(result['reasons'])} problem(s); first: {result['reasons'][0]}",
                         changed=False, ran=True, **result)
    module.exit_json(changed=False, ran=True, **result)


if __name__ == "__main__":
    main()
