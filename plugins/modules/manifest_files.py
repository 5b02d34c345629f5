#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: manifest_files
short_description: Write a set of files into one or more directories in one step, atomically, with a diff per file
version_added: 0.3.0
description:
  - Writes every file of O(files) into every directory of O(dest) (for example a role's staging directory and the
    K3s auto-deploy directory), in one module run where M(ansible.builtin.copy) would take one run per file and
    directory.
  - Each file is written atomically (a temporary file in the same directory gets its mode before a byte is written,
    then fsync, rename and fsync of the directory), so K3s, which deploys what appears in its directory, never reads a
    half-written manifest.
  - A file whose content, mode, owner and group already match is left alone; a file whose content matches but whose
    mode, owner or group differ is only fixed in place.
  - A symbolic link at a target path is refused by name, never written through.
  - In check mode nothing is written and the result says what would change. In diff mode every file whose content
    changes (or would) has its before and after in the diff. Files that hold secrets go through a task with
    C(no_log) and C(diff) off.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  files:
    description:
      - The files to write, each a plain file name (no directory part) and its text content, written as UTF-8.
      - The content is written byte for byte; read it with C(lookup('ansible.builtin.file', path, rstrip=false)) to
        keep its last newline.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The file name in each directory of O(dest).
        type: str
        required: true
      content:
        description: The file's content.
        type: str
        required: true
  dest:
    description:
      - The directories to write every file into. They must exist, except in check mode, where a missing directory
        means that every file in it would be created (an earlier task creates it in a real run).
    type: list
    elements: path
    required: true
  mode:
    description: The files' permissions, an octal string such as V(0600).
    type: str
    default: "0600"
  owner:
    description: The files' owner (a user name or a numeric id); unset leaves it to the writing user.
    type: str
  group:
    description: The files' group (a group name or a numeric id); unset leaves it to the writing user's group.
    type: str
"""

EXAMPLES = r"""
# Rendered and validated on the controller (in a scratch directory), then staged and installed by one task:
# the file lookup runs on the controller; rstrip=false keeps each file's last newline.
- name: Stage the validated manifests, and install them into the K3s auto-deploy directory
  sophia.migrate.manifest_files:
    files: "{{ dict(names | zip(contents)) | dict2items(key_name='name', value_name='content') }}"
    dest:
      - /var/lib/sophia/ingress_certs/staging
      - /var/lib/rancher/k3s/server/manifests
    owner: root
    group: root
    mode: "0600"
  vars:
    names: [sophia-ingress-00-namespace.yaml, sophia-ingress-60-ingresses.yaml]
    contents: "{{ query('ansible.builtin.file', *(names | map('regex_replace', '^', scratch ~ '/')), rstrip=false) }}"

# Render several templates with one module run (the template module takes one run per file)
- name: Render the manifests into the scratch directory
  sophia.migrate.manifest_files:
    files: "{{ dict(names | zip(query('ansible.builtin.template', *(names | map('regex_replace', '$', '.j2')))))
               | dict2items(key_name='name', value_name='content') }}"
    dest: ["{{ scratch }}"]
  delegate_to: localhost

- name: A Secret goes through a task that shows neither its arguments nor its diff
  sophia.migrate.manifest_files:
    files: [{name: sophia-ingress-40-tls-secrets.yaml, content: "{{ secrets_manifest }}"}]
    dest: [/var/lib/rancher/k3s/server/manifests]
  no_log: true
  diff: false
"""

RETURN = r"""
written:
  description: The paths whose content was written (in check mode, would be), created or replaced.
  returned: always
  type: list
  elements: str
  sample: [/var/lib/rancher/k3s/server/manifests/sophia-ingress-60-ingresses.yaml]
fixed:
  description: The paths whose content matched but whose mode, owner or group was (or would be) set.
  returned: always
  type: list
  elements: str
unchanged:
  description: How many paths already matched in every respect.
  returned: always
  type: int
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _file_set
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

ARGUMENT_SPEC = {
    "files": {"type": "list", "elements": "dict", "required": True,
              "options": {"name": {"type": "str", "required": True}, "content": {"type": "str", "required": True}}},
    "dest": {"type": "list", "elements": "path", "required": True},
    "mode": {"type": "str", "default": "0600"},
    "owner": {"type": "str"},
    "group": {"type": "str"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    try:
        plan = _file_set.FileSet(p["files"], p["dest"], p["mode"], p["owner"], p["group"])
        result = plan.apply(check=module.check_mode)
    except _file_set.FileSetError as exc:
        module.fail_json(msg=f"manifest_files: {exc}")
    except OSError as exc:
        module.fail_json(msg=f"manifest_files: {exc.filename or ''}: {exc.strerror or exc}")
    diff = result.pop("diff")
    changed = bool(result["written"] or result["fixed"])
    module.exit_json(changed=changed, **result, **({"diff": diff} if module._diff else {}))


if __name__ == "__main__":
    main()
