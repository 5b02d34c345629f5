#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: tls_import
short_description: Plan and check the import of nginx-proxy's certificates as kubernetes.io/tls Secrets
version_added: 0.1.0
description:
  - Continuity of HTTPS across the handover. For every TLS host of the Ingresses (O(hosts)) it finds the
    C(ssl_certificate) and C(ssl_certificate_key) of the nginx-proxy server that serves the host (O(servers), as
    M(sophia.migrate.nginx_routes) returns them), or an explicit entry of O(certificates), and names the Secret the
    Ingresses reference (C(<host with dots as dashes>-tls), C(*) as C(wildcard)).
  - Paths nginx sees inside its container are mapped to host paths with O(path_map) (the longest matching directory
    wins); relative paths are resolved against O(prefix) (nginx's configuration directory, on the host).
  - Without O(contents) it only plans - RV(secrets), RV(files) to read, RV(missing) hosts - and never fails for a
    missing certificate. With O(contents) (the files as read on the host where nginx-proxy runs, base64, for
    example from M(ansible.builtin.slurp)) it checks them - the key matches the certificate, the chain is complete as
    given (leaf first, each certificate issued by the next, the last one a root or issued by a CA of O(ca_bundle)),
    no certificate of the chain is expired or not yet valid (the leaf's notBefore and notAfter are named), the
    certificate is valid for the host - and fails naming the file and the problem.
  - The checks run where the module runs (the controller); nothing it returns holds key material. O(contents) is
    a no_log option; the task that reads the files must be C(no_log) too.
  - With O(existing) (the Secrets of those names the cluster has now, read with M(kubernetes.core.k8s_info))
    it also decides which Secrets to write (RV(apply)) and which to leave (RV(kept)). A Secret cert-manager issued
    into (annotation C(cert-manager.io/certificate-name)) is never replaced, so a later run cannot put the imported
    certificate back over the issued one, nor make cert-manager order again. An absent Secret is created; one
    imported earlier is updated only when nginx-proxy now serves another certificate valid at least as long.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - cryptography
options:
  hosts:
    description: Host names the Ingresses serve with TLS (each needs a Secret).
    type: list
    elements: str
    required: true
  servers:
    description:
      - The C(servers) of M(sophia.migrate.nginx_routes) (C(names), C(tls), C(ssl_certificate),
        C(ssl_certificate_key), C(file), C(line)). The first TLS server that names a host and has a certificate
        serves it.
    type: list
    elements: dict
    default: []
  certificates:
    description:
      - Explicit entries C({host, cert_file, key_file}) (host paths), used instead of O(servers) for their host.
    type: list
    elements: dict
    default: []
  path_map:
    description: Directories as nginx-proxy sees them (in its container) mapped to directories on the host.
    type: dict
    default: {}
  prefix:
    description:
      - Host directory relative C(ssl_certificate) paths are resolved against (nginx's configuration directory).
    type: path
    default: ""
  contents:
    description:
      - Host path to the base64 content of the file as read on the host. Without it the module only plans.
    type: dict
  read_errors:
    description: Host path to the error the reading step reported (a missing file is refused by its name).
    type: dict
    default: {}
  ca_bundle:
    description:
      - PEM file of the CAs a chain may end at (when its last certificate is not a root itself); default the
        controller's system trust store.
    type: path
  min_days:
    description: Refuse a certificate that expires in fewer days than this (0 refuses expired ones only).
    type: int
    default: 0
  fail_on_missing:
    description: Fail when a host has no certificate on nginx-proxy (its Ingress would serve the controller's default).
    type: bool
    default: true
  existing:
    description:
      - The Secrets of the names in RV(secrets) the cluster has now, each C(name), C(issued_by) (its
        C(cert-manager.io/certificate-name) annotation; empty or absent when it has none) and C(certificate) (its
        C(tls.crt) as the API returns it, base64). Never pass a key. Absent names are simply missing. Omitted (the
        cluster was not read) - every Secret is in RV(apply).
    type: list
    elements: dict
"""

EXAMPLES = r"""
- name: Which files serve which host
  sophia.migrate.tls_import:
    hosts: "{{ tls_hosts }}"
    servers: "{{ edge.servers }}"
    path_map: {/etc/nginx: /opt/sophia/nginx-proxy}
    prefix: /opt/sophia/nginx-proxy
  register: plan
  delegate_to: localhost

- name: Read them where nginx-proxy runs
  ansible.builtin.slurp:
    src: "{{ item }}"
  loop: "{{ plan.files }}"
  register: read
  failed_when: false
  no_log: true

- name: Check them
  sophia.migrate.tls_import:
    hosts: "{{ tls_hosts }}"
    servers: "{{ edge.servers }}"
    path_map: {/etc/nginx: /opt/sophia/nginx-proxy}
    prefix: /opt/sophia/nginx-proxy
    contents: "{{ dict(read.results | selectattr('content', 'defined') | map(attribute='item')
                  | zip(read.results | selectattr('content', 'defined') | map(attribute='content'))) }}"
    existing: "{{ live_secrets }}"  # name, issued_by, certificate of each Secret k8s_info found (never the key)
  delegate_to: localhost
"""

RETURN = r"""
secrets:
  description: One Secret per host - C(name), C(host), C(cert_file), C(key_file) (host paths), C(source).
  returned: always
  type: list
  elements: dict
files:
  description: The host files to read (certificates and keys), each once.
  returned: always
  type: list
  elements: str
missing:
  description: Hosts without a certificate on nginx-proxy, with the reason.
  returned: always
  type: list
  elements: dict
problems:
  description: C(host), C(file), C(reason) of every check that failed (planning problems without O(contents)).
  returned: always
  type: list
  elements: dict
certificates:
  description:
    - With O(contents), what each Secret will hold - C(host), C(secret), C(cert_file), C(subject), C(issuer),
      C(dns_names), C(not_before), C(not_after), C(days_left), C(sha256), C(chain) (subjects, leaf first).
  returned: always
  type: list
  elements: dict
apply:
  description:
    - With O(contents), the Secrets to write - C(secret), C(action) (C(create), C(update), or C(write) when
      O(existing) was not given), C(reason).
  returned: always
  type: list
  elements: dict
kept:
  description: With O(contents) and O(existing), the Secrets left as they are - C(secret), C(reason).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _cert_import, _tls
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "hosts": {"type": "list", "elements": "str", "required": True},
            "servers": {"type": "list", "elements": "dict", "default": []},
            "certificates": {"type": "list", "elements": "dict", "default": []},
            "path_map": {"type": "dict", "default": {}},
            "prefix": {"type": "path", "default": ""},
            "contents": {"type": "dict", "no_log": True},
            "read_errors": {"type": "dict", "default": {}},
            "ca_bundle": {"type": "path"},
            "min_days": {"type": "int", "default": 0},
            "fail_on_missing": {"type": "bool", "default": True},
            "existing": {"type": "list", "elements": "dict"},
        },
        supports_check_mode=True,
    )
    if not _tls.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib(_tls.REQUIREMENT))
    p = module.params
    if not all(isinstance(k, str) and isinstance(v, str) and v for k, v in p["path_map"].items()):
        module.fail_json(msg="tls_import: path_map must map directories to non-empty directories (text)")
    if p["existing"] and _cert_import.existing_problems(p["existing"]):
        module.fail_json(msg="tls_import: " + "; ".join(_cert_import.existing_problems(p["existing"])))
    if p["min_days"] < 0 or p["min_days"] > 3650:
        module.fail_json(msg=f"tls_import: min_days must be between 0 and 3650, got {p['min_days']}")
    try:
        planned = _cert_import.plan(p["hosts"], p["servers"], p["certificates"], p["path_map"], p["prefix"])
    except _cert_import.CertImportError as exc:
        module.fail_json(msg=f"tls_import: {exc}")
    result = {"changed": False, "certificates": [], "apply": [], "kept": [], **planned}
    if p["contents"] is None:
        module.exit_json(**result)
    bundle = p["ca_bundle"] or _tls.default_ca_bundle()
    try:
        anchors = _tls.load_anchors(bundle) if bundle and planned["secrets"] else []
    except _tls.TlsError as exc:
        module.fail_json(msg=f"tls_import: ca_bundle: {exc}", **result)
    certificates, problems = _cert_import.check(planned["secrets"], p["contents"], p["read_errors"], anchors,
                                                p["min_days"])
    result["certificates"] = certificates
    result["problems"] = planned["problems"] + problems
    reasons = [x["reason"] for x in result["problems"]]
    if p["fail_on_missing"]:
        reasons += [f"{m['host']} (Secret {m['secret']}): {m['reason']}" for m in planned["missing"]]
    if reasons:
        module.fail_json(msg="tls_import: refusing to import the certificates: " + "; ".join(reasons), **result)
    if p["existing"] is None:
        result["apply"] = [{"secret": c["secret"], "action": "write", "reason": "the cluster was not read"}
                           for c in certificates]
    else:
        result["apply"], result["kept"] = _cert_import.decide(certificates, p["existing"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
