#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: k8s_manifest_validate
short_description: Validate rendered Kubernetes manifests offline (core kinds, CRDs, Helm chart values)
version_added: 0.1.0
description:
  - Validates manifest files before they are installed, without a cluster.
  - Core kinds are checked against the Kubernetes OpenAPI schemas of O(k8s_version) shipped by
    C(kubernetes-validate), in strict mode so that a misspelled field is an error.
  - Custom resources (for example C(HelmChart), C(HelmChartConfig), C(Certificate), C(ClusterIssuer),
    C(ClusterPolicy)) are checked against the C(openAPIV3Schema) of their CustomResourceDefinition found
    in O(schema_dirs).
  - Helm values set through a K3s C(HelmChart) or C(HelmChartConfig) are checked against the chart's default
    values file C(<chart>-values-<version>.yaml) in O(schema_dirs); a key the chart does not have is an error.
  - Kinds with no schema anywhere are reported in RV(warnings), never silently passed.
  - The Kubernetes schemas built for validation are cached on the host the module runs on, in the directory named by
    the environment variable C(SOPHIA_MIGRATE_SCHEMA_CACHE) (C(off) turns the cache off), else
    C($XDG_CACHE_HOME/sophia-migrate/k8s-schemas) or C(~/.cache/sophia-migrate/k8s-schemas). Files that are not the
    user's own, are writable by others or cannot be read are ignored and rebuilt; the cache never changes a result.
  - The collection ships CRDs and chart values in its C(specs/k8s/) directory; roles pass
    C({{ role_path }}/../../specs/k8s).
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - kubernetes-validate
  - jsonschema
  - PyYAML
options:
  paths:
    description: Manifest files or directories (searched recursively for C(*.yaml) and C(*.yml)).
    type: list
    elements: path
    required: true
  schema_dirs:
    description: Directories holding CRD files and chart default values files.
    type: list
    elements: path
    default: []
  k8s_version:
    description: Kubernetes version whose schemas core kinds are validated against (1.29 or later).
    type: str
    default: "1.31"
  strict:
    description: Reject fields the schema does not define.
    type: bool
    default: true
  fail_on_warnings:
    description: Fail when a document could not be validated for lack of a schema.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Validate the rendered manifests before installing them
  sophia.migrate.k8s_manifest_validate:
    paths:
      - "{{ staging_dir }}/manifests"
    schema_dirs:
      - "{{ role_path }}/../../specs/k8s"
    k8s_version: "1.31"
  delegate_to: localhost
"""

RETURN = r"""
valid:
  description: True when no document has an error.
  returned: always
  type: bool
documents:
  description: Number of documents checked.
  returned: always
  type: int
kinds:
  description: Number of documents per kind.
  returned: always
  type: dict
  sample: {"HelmChart": 2, "Namespace": 1}
errors:
  description: One line per problem, naming the file, the object and the field.
  returned: always
  type: list
  elements: str
  sample: ["gpu.yaml: HelmChart kube-system/gpu-operator: chart gpu-operator has no value 'drivr'"]
warnings:
  description: Documents that could not be validated for lack of a schema.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "path", "required": True},
            "schema_dirs": {"type": "list", "elements": "path", "default": []},
            "k8s_version": {"type": "str", "default": "1.31"},
            "strict": {"type": "bool", "default": True},
            "fail_on_warnings": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not kv.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    if not kv.HAS_KUBERNETES_VALIDATE:
        module.fail_json(msg=missing_required_lib("kubernetes-validate"))
    p = module.params
    try:
        result = kv.validate_documents(kv.load_manifest_files(p["paths"]), kv.Schemas(p["schema_dirs"]),
                                       p["k8s_version"], p["strict"])
    except kv.ManifestError as exc:
        module.fail_json(msg=f"k8s_manifest_validate: {exc}")
    if result["errors"] or (p["fail_on_warnings"] and result["warnings"]):
        problems = result["errors"] or result["warnings"]
        module.fail_json(msg=f"k8s_manifest_validate: {len(problems)} problem(s); first: {problems[0]}", changed=False,
                         **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
