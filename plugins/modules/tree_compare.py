#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: tree_compare
short_description: Prove that two directory trees hold the same files (sha256 manifest)
version_added: 0.1.0
description:
  - Builds a manifest of both trees (sha256, size, mode, owner of every regular file, and symlink targets) and
    compares them file by file; reports the first differences by path.
  - Used after copying a volume (embeddings, model caches) to prove the copy is complete and unchanged.
  - Read-only.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
options:
  source:
    description: The original tree.
    type: path
    required: true
  target:
    description: The copy.
    type: path
    required: true
  owners:
    description: Compare owner and group too (false when the copy lives where ids differ).
    type: bool
    default: true
  limit:
    description: How many differences to list.
    type: int
    default: 20
  fail_on_difference:
    description: Fail when the trees differ.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The embeddings copy is identical
  sophia.migrate.tree_compare:
    source: /var/lib/docker/volumes/sophia_embeddings/_data
    target: /var/lib/rancher/k3s/storage/pvc-embeddings
"""

RETURN = r"""
equal:
  description: True when every file matches.
  returned: always
  type: bool
differences:
  description: Number of paths that differ.
  returned: always
  type: int
first_differences:
  description: Up to O(limit) differences, each with C(path) and C(problem).
  returned: always
  type: list
  elements: dict
manifest_sha256_source:
  description: Digest of the source manifest.
  returned: always
  type: str
manifest_sha256_target:
  description: Digest of the target manifest (equal to the source's when the trees are equal).
  returned: always
  type: str
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _volume
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "path", "required": True},
            "target": {"type": "path", "required": True},
            "owners": {"type": "bool", "default": True},
            "limit": {"type": "int", "default": 20},
            "fail_on_difference": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = _volume.compare_trees(p["source"], p["target"], p["limit"], p["owners"])
    except (_volume.VolumeError, OSError) as exc:
        module.fail_json(msg=f"tree_compare: {exc}")
    if not result["equal"] and p["fail_on_difference"]:
        first = result["first_differences"][0]
        module.fail_json(msg=f"tree_compare: {result['differences']} path(s) differ; first: {first['path']}: "
                             f"{first['problem']}", changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
