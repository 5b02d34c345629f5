#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flyio_repo_scan
short_description: Find the Fly.io references left in repository checkouts, with file and line
version_added: 0.1.0
description:
  - Walks every file and directory of O(paths) and reports each Fly.io reference with its file and line number.
  - "What counts as a reference:"
  - C(fly.toml) (and C(fly.<name>.toml)) files and their C(app = "...") line; such a file without C(app =) is
    reported as kind V(fly_toml).
  - Any other C(*.toml) file whose top level holds C(app = "...") (read as TOML) is a Fly configuration as well; a
    C(*.toml) file that is not UTF-8 or not valid TOML is not, and is listed in RV(notes) (never a failure).
  - A Fly configuration named by a deploy step of a GitHub workflow (C(flyctl deploy --config fly-danger.toml),
    C(fly deploy -c deploy/prod.toml), C(--config=...), also in the C(args) of C(superfly/flyctl-actions)) is read
    as one whatever its name, relative to the checkout that holds C(.github); one that is not found, lies outside
    the scanned tree or is named by a variable is listed in RV(notes).
  - Host names C(*.fly.dev) (kind V(fly_dev_hostname)) and C(*.internal) / C(*.flycast) (kind
    V(internal_hostname); C(docker.internal), C(containers.internal), C(compute.internal) and C(ec2.internal) are
    not Fly host names and are ignored).
  - Images of the Fly.io registry, C(registry.fly.io/<app>[:tag][@sha256:...]) (kind V(registry_image)).
  - C(FLY_*) variables (kind V(fly_variable)).
  - flyctl steps in GitHub workflows under C(.github/workflows/) - C(superfly/flyctl-actions), C(flyctl ...),
    C(fly deploy|apps|secrets|scale|ips|certs|volumes|machine ...) (kind V(flyctl)).
  - Each reference names the Fly app it points at when it can be told (RV(references[].app)) - the first label of a
    C(.fly.dev) name, the label before C(.internal), the registry repository, the C(app =) value, or the
    C(-a)/C(--app) argument of a flyctl step.
  - Directories C(.git), C(.hg), C(.svn), C(node_modules), C(__pycache__), C(.venv) and C(.tox) are not entered;
    symbolic links are not followed; binary files (a NUL byte in the first 8 KiB) and files larger than
    O(max_file_size) are listed in RV(skipped_files) and not read. Text that is not valid UTF-8 is read, its
    invalid bytes shown as U+FFFD (so are those of file names).
  - >-
    A file or directory that cannot be read is listed in RV(skipped_files) with the reason C(unreadable: <why>);
    the scan is then incomplete and M(sophia.migrate.flyio_audit_report) blocks every app for it.
  - >-
    Secrets found on a matching line never leave the module - RV(references[].text) and RV(references[].value) are
    redacted (V(REDACTED) in place of the secret) before they are returned - the password of C(scheme://user:pass@),
    URL query parameters named like token, key, secret, password, sig or auth, C(FlyV1 ...) tokens and
    C(fm1_)/C(fm2_) macaroons, Bearer and Basic credentials, GitHub (C(ghp_), C(github_pat_)), GitLab, AWS
    (C(AKIA...)), JWT (C(eyJ...)), Slack, Stripe, OpenAI, Google and npm token shapes, the values of command-line
    flags such as C(--access-token) and of C(KEY=value), C(key: value) and C("key": "value") assignments whose key
    names a secret (PASSWORD, PASS, SECRET, TOKEN, API_KEY, PRIVATE_KEY, ACCESS_KEY, ...), and long mixed-case
    base64-like strings. The key name, the user, the host and the app stay, so each reference keeps its meaning;
    variable references (C(${{ secrets.X }}), C($X), C({{ x }})) are kept as they are.
  - A path of O(paths) that does not exist is not an error; it is listed in RV(missing_paths), so that the caller
    can tell that the scan is incomplete.
  - Only reads; never changes anything.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
options:
  paths:
    description:
      - Files and directories to scan (repository checkouts on the host the module runs on), in this order.
      - At least one is required.
    type: list
    elements: path
    required: true
  max_file_size:
    description: Files larger than this many bytes are not read (they are listed in RV(skipped_files)).
    type: int
    default: 2000000
  max_line:
    description: Longest excerpt of the matching line returned in RV(references[].text), in characters.
    type: int
    default: 300
notes:
  - The scan runs on the target host; the C(sophia.migrate.flyio_audit) role runs it on the controller.
seealso:
  - module: sophia.migrate.flyio_audit_report
  - module: sophia.migrate.flyio_app_info
"""

EXAMPLES = r"""
- name: Fly.io references left in the checkouts
  sophia.migrate.flyio_repo_scan:
    paths:
      - /srv/src/sophia-main
      - /srv/src/sophia-mcp
  register: fly_refs

- name: Show where each legacy app is still named
  ansible.builtin.debug:
    msg: "{{ item.location }}: {{ item.kind }} {{ item.value }} ({{ item.app | default('-', true) }})"
  loop: "{{ fly_refs.references }}"
  loop_control:
    label: "{{ item.location }}"

- name: Fail when a repository path was not found (the scan would be incomplete)
  ansible.builtin.assert:
    that: fly_refs.missing_paths | length == 0
    fail_msg: "not found: {{ fly_refs.missing_paths | join(', ') }}"
"""

RETURN = r"""
references:
  description: Every reference found, in path, file and line order.
  returned: always
  type: list
  elements: dict
  contains:
    file:
      description: Path of the file.
      type: str
    line:
      description: Line number (1-based).
      type: int
    location:
      description: C(<file>:<line>).
      type: str
    kind:
      description: >-
        V(fly_toml_app), V(fly_toml), V(fly_dev_hostname), V(internal_hostname), V(registry_image),
        V(fly_variable) or V(flyctl).
      type: str
    value:
      description: What matched (empty for V(fly_toml)), redacted.
      type: str
    app:
      description: The Fly app the reference names, or null when it names none.
      type: str
    text:
      description: The line, stripped, redacted, then cut to O(max_line) characters.
      type: str
  sample:
    - file: /srv/src/sophia-main/web/app.env
      line: 2
      location: /srv/src/sophia-main/web/app.env:2
      kind: fly_dev_hostname
      value: sophiaai-dashboard-v2.fly.dev
      app: sophiaai-dashboard-v2
      text: OLD=https://sophiaai-dashboard-v2.fly.dev
    - file: /srv/src/sophia-main/web/app.env
      line: 3
      location: /srv/src/sophia-main/web/app.env:3
      kind: internal_hostname
      value: sophiaai-jobs-v2.internal
      app: sophiaai-jobs-v2
      text: REDIS_URL=redis://default:REDACTED@sophiaai-jobs-v2.internal:6379
fly_tomls:
  description:
    - The Fly configurations found, with the line and value of their C(app =) (null when there is none).
    - C(named_in) (C(<workflow>:<line>)) is set on a file found only because a workflow names it.
  returned: always
  type: list
  elements: dict
  sample: [{file: /srv/src/sophia-main/deploy/fly.toml, line: 1, app: sophiaai-jobs-v2}]
notes:
  description:
    - What the scan could not tell, with C(file), C(line) (null for a whole file) and C(reason) - a C(*.toml) file
      that is not UTF-8 or not TOML, a Fly configuration named in a workflow that is not found, lies outside the
      scanned tree or is named by a variable.
  returned: always
  type: list
  elements: dict
  sample: [{file: /srv/src/sophia-main/.github/workflows/deploy.yml, line: 12,
            reason: "the Fly configuration fly-danger.toml named in the deploy step ... was not found"}]
files_scanned:
  description: Number of text files read.
  returned: always
  type: int
  sample: 42
skipped_files:
  description: >-
    Files (and directories) not read, with the reason - C(binary), C(larger than N bytes), C(unreadable: <why>),
    or, for a path of O(paths), C(a symbolic link, not read) / C(not a regular file, not read).
  returned: always
  type: list
  elements: dict
  sample: [{file: /srv/src/sophia-main/logo.png, reason: binary}]
missing_paths:
  description: Paths of O(paths) that do not exist.
  returned: always
  type: list
  elements: str
  sample: []
apps_referenced:
  description: Sorted names of the apps the references name.
  returned: always
  type: list
  elements: str
  sample: [sophiaai-dashboard-v2, sophiaai-jobs-v2]
"""

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_scan
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

ARGUMENT_SPEC = {
    "paths": {"type": "list", "elements": "path", "required": True},
    "max_file_size": {"type": "int", "default": 2_000_000},
    "max_line": {"type": "int", "default": 300},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    errors = []
    if not p["paths"]:
        errors.append("option 'paths': give at least one file or directory to scan")
    elif any(not (path or "").strip() for path in p["paths"]):
        errors.append("option 'paths': an empty path was given")
    if p["max_file_size"] <= 0:
        errors.append(f"option 'max_file_size': must be a positive number of bytes, got {p['max_file_size']}")
    if p["max_line"] <= 0:
        errors.append(f"option 'max_line': must be a positive number of characters, got {p['max_line']}")
    if errors:
        module.fail_json(msg="flyio_repo_scan: " + "; ".join(errors))
    try:
        result = _flyio_scan.scan_paths(list(p["paths"]), p["max_file_size"], p["max_line"])
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        module.fail_json(msg=f"flyio_repo_scan: cannot read{where}: {exc.strerror or exc}", paths=p["paths"])
    # 'skipped' is a reserved key in Ansible results (a task reported as skipped): return the list under another
    # name. sophia.migrate.flyio_audit_report accepts both.
    result["skipped_files"] = result.pop("skipped")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
