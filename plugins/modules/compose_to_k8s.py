#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_to_k8s
short_description: Translate a Docker Compose project into validated Kubernetes manifests
version_added: 0.1.0
description:
  - Reads Compose files (v2/v3 and the Compose Specification with C(extends), C(env_file), C(profiles),
    YAML anchors and C(x-) extensions, C(${VAR}) interpolation with C(.env)) and writes one manifest file per
    service into O(dest).
  - Top-level C(include) (Compose 2.20+) is resolved like Compose does (paths relative to the including file, each
    included file with its own project directory and C(.env)); a missing file or a name defined twice is an error.
  - When every service sits behind C(profiles) that O(profiles) does not activate, the module fails and names the
    profiles found, instead of succeeding with nothing.
  - One-shot services (C(restart=no), C(deploy.restart_policy.condition=none), or C(on-failure) without ports)
    become Jobs (restartPolicy Never or OnFailure). C(deploy.placement.constraints) become a required node affinity.
  - Long-syntax options are carried (port C(mode=host) as hostPort, volume C(subpath) as subPath, bind
    C(propagation) as mountPropagation, C(create_host_path) as hostPath type DirectoryOrCreate, C(tmpfs.size) as an
    emptyDir sizeLimit) or listed in RV(notes).
  - Beyond the JSON schema, the objects are checked as the API server would (IP addresses of host aliases, DNS-1123
    names, label values, image references); C(extra_hosts) with C(host-gateway) is left out with a note.
  - Stateless services become Deployments; stateful ones (O(stateful), or a known data image such as redis, qdrant,
    postgres with a named volume) become StatefulSets with C(volumeClaimTemplates). Every service with ports gets a
    Service; named volumes of Deployments get PersistentVolumeClaims.
  - Environment values whose names match O(secret_patterns) or are listed in O(secret_env), and Compose C(secrets),
    go into Secret objects; other environment goes into a ConfigMap. Secret values never appear in the result, the
    diff or an error message (they are replaced by C(VALUE_REDACTED)). Files are written with mode 0600.
  - C(healthcheck) becomes liveness and readiness probes (exec, or httpGet when the test is a plain curl/wget of
    localhost; C(-H) headers become C(httpHeaders), other curl options keep an exec probe). C(deploy.resources)
    (and v2 C(mem_limit)/C(cpus)) become resources.
  - GPUs come from C(deploy.resources.reservations.devices) (driver nvidia; C(count), C(device_ids)), C(gpus),
    C(runtime=nvidia), and from O(gpu_plan) (the result of M(sophia.migrate.gpu_plan)), which wins when it names the
    service. GPU pods get the GPU resource limit, C(runtimeClassName), a node selector and tolerations.
    C(count=all) has no Kubernetes equivalent; it becomes a request for O(gpu_count_all) GPUs and a note.
  - C(depends_on) becomes init containers that wait for the dependency's first TCP port (O(depends_on=init)) and is
    always recorded in the annotation C(sophia.migrate/depends-on) and in RV(order).
  - Fields with no translation are listed in RV(unsupported); approximations in RV(notes). Nothing is dropped silently.
  - Output is deterministic (sorted services, objects and keys), so diffs between runs are meaningful.
  - In check mode nothing is written; with C(--diff) the diff against the files in O(dest) is returned.
  - The Kubernetes schemas built for validation are cached on the host the module runs on, in the directory named by
    the environment variable C(SOPHIA_MIGRATE_SCHEMA_CACHE) (C(off) turns the cache off), else
    C($XDG_CACHE_HOME/sophia-migrate/k8s-schemas) or C(~/.cache/sophia-migrate/k8s-schemas). Files that are not the
    user's own, are writable by others or cannot be read are ignored and rebuilt; the cache never changes a result.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - PyYAML
  - kubernetes-validate (when O(validate=true))
options:
  src:
    description: Compose files, merged in order (like C(docker compose -f a -f b)).
    type: list
    elements: path
    required: true
  project_name:
    description: Project name (labels, object name prefixes). Defaults to the file's C(name) or its directory name.
    type: str
  project_dir:
    description: Directory for relative paths and C(.env). Defaults to the first file's directory.
    type: path
  profiles:
    description: Active Compose profiles; services with other profiles are left out. V(*) activates all.
    type: list
    elements: str
    default: []
  variables:
    description: Interpolation variables, overriding C(.env). Put secrets in O(secret_variables) instead.
    type: dict
    default: {}
  secret_variables:
    description:
      - Interpolation variables holding secrets (for example from Ansible Vault), overriding O(variables) and C(.env).
      - Never logged; their values are replaced by C(VALUE_REDACTED) wherever they would appear in the result.
    type: dict
    default: {}
  services:
    description: Translate only these services (default all).
    type: list
    elements: str
    default: []
  dest:
    description: Directory the manifest files C(<service>.yaml) are written to. Without it nothing is written.
    type: path
  namespace:
    description: Namespace of every object.
    type: str
    default: default
  stateful:
    description: Services to run as StatefulSets (in addition to data images with named volumes).
    type: list
    elements: str
    default: []
  stateless:
    description: Services to run as Deployments even if they look stateful.
    type: list
    elements: str
    default: []
  secret_env:
    description: Environment variable names that are secret whatever their name.
    type: list
    elements: str
    default: []
  secret_patterns:
    description:
      - Glob patterns (case-insensitive) of environment variable names that are secret; C(-) and C(.) in a name also
        match as C(_).
      - The default treats as secret PASSWORD, PASSWD, PASSPHRASE, SECRET and CREDENTIAL anywhere in the name, TOKEN
        and KEY as a suffix or a word, and PASS and PWD as a word (C(DB_PASS), C(PASSWORD), C(MYSQL_PWD)).
    type: list
    elements: str
    default: ["*PASSWORD*", "*PASSWD*", "*PASSPHRASE*", "*SECRET*", "*CREDENTIAL*", "*API_KEY*", "*APIKEY*", "*TOKEN",
              "TOKEN_*", "*_TOKEN_*", "*KEY", "KEY_*", "*_KEY_*", "PASS", "*_PASS", "PASS_*", "*_PASS_*", "PWD",
              "*_PWD", "PWD_*", "*_PWD_*"]
  gpu_plan:
    description:
      - The C(plan) returned by M(sophia.migrate.gpu_plan) (C(mode), C(services) with C(gpus), C(resource), C(shared)).
      - A service named in it gets that many GPUs of that resource; with C(mode=none) no service gets a GPU.
    type: dict
    default: {}
  gpu_count_all:
    description: Number of GPUs requested for C(count=all) / C(gpus=all).
    type: int
    default: 1
  gpu_runtime_class:
    description: C(runtimeClassName) of GPU pods.
    type: str
    default: nvidia
  gpu_node_selector:
    description: Node selector of GPU pods.
    type: dict
    default: {"nvidia.com/gpu.present": "true"}
  gpu_tolerations:
    description: Tolerations of GPU pods.
    type: list
    elements: dict
    default: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
  volume_size:
    description: Storage request of every claim not in O(volume_sizes).
    type: str
    default: 1Gi
  volume_sizes:
    description: Storage request per named volume.
    type: dict
    default: {}
  storage_class:
    description: storageClassName of the claims (default the cluster's default class).
    type: str
  image_pull_secrets:
    description: Names of image pull Secrets added to every pod.
    type: list
    elements: str
    default: []
  wait_image:
    description: Image of the init containers that wait for dependencies (needs C(sh) and C(nc)).
    type: str
    default: busybox:1.36
  depends_on:
    description: V(init) adds wait init containers; V(ordering) only records the order.
    type: str
    choices: [init, ordering]
    default: init
  bind_mounts:
    description: How bind mounts are translated (always reported in RV(notes)).
    type: str
    choices: [hostPath, emptyDir]
    default: hostPath
  external_volumes:
    description:
      - Existing PersistentVolumeClaim per external Compose volume (C(volumes.<name>.external=true)), by the volume's
        key or its C(name). The pod mounts that claim; no claim is created.
      - An external volume that is not listed here is refused (a new, empty claim would lose its data).
    type: dict
    default: {}
  network_policies:
    description:
      - Keep the isolation of Compose networks as NetworkPolicies (as kompose does), one per network; each pod gets
        the label C(network.sophia.migrate/<network>=true) per network it is on (C(default) when it names none).
      - Published ports of a service stay reachable from anywhere (one more NetworkPolicy per service).
      - Without it, Compose networks are only reported in RV(notes).
    type: bool
    default: false
  resource_overrides:
    description:
      - Measured right-sizing per service (the approved recommendations of M(sophia.migrate.usage_report), written by
        C(playbooks/phase2c.yml)), by service name, each with C(requests) and/or C(limits) of C(cpu) and C(memory) in
        Kubernetes quantities. Each value replaces what C(deploy.resources) gives for that key; GPU resources are never
        changed.
      - A service that is not in the project, another key, a value that is not a quantity, or a request above its limit
        is refused before anything is written.
    type: dict
    default: {}
  validate:
    description: Validate every object offline (kubernetes-validate, strict) and fail on errors before writing.
    type: bool
    default: true
  k8s_version:
    description: Kubernetes version whose schemas are used.
    type: str
    default: "1.31"
"""

EXAMPLES = r"""
- name: Render the Sophia stack for K3s
  sophia.migrate.compose_to_k8s:
    src: [/opt/sophia/docker-compose.yml]
    project_name: sophia
    namespace: sophia
    dest: /var/lib/sophia-migrate/manifests
    stateful: [redis, qdrant]
    secret_env: [DATABASE_URL]
    gpu_plan: "{{ gpu.plan }}"
  register: rendered

- name: Show what could not be translated
  ansible.builtin.debug:
    var: rendered.unsupported
"""

RETURN = r"""
files:
  description: Manifest file per service (absolute paths), when O(dest) is set.
  returned: always
  type: dict
  sample: {"redis": "/var/lib/sophia-migrate/manifests/redis.yaml"}
order:
  description:
    - C(stateless) (Deployments and Jobs) and C(stateful) (StatefulSets) list the services of each group,
      dependencies first.
    - C(apply) is the order to apply them in, stateless services before stateful ones (seed Phase 2B), except that a
      dependency always comes before its dependants (a stateful dependency of a stateless service moves up).
  returned: always
  type: dict
  sample: {"stateless": ["sophia-dashboard", "mcp-github"], "stateful": ["redis"],
           "apply": ["sophia-dashboard", "redis", "mcp-github"]}
services:
  description:
    - Per service its kind (Deployment, StatefulSet or Job), image, ports, GPU request, probe type, dependencies,
      objects and secret key names.
  returned: always
  type: dict
manifests:
  description: All objects, Secret data and secret values replaced by C(VALUE_REDACTED).
  returned: always
  type: list
  elements: dict
unsupported:
  description: Fields with no Kubernetes translation (service, field, reason).
  returned: always
  type: list
  elements: dict
notes:
  description: Fields translated approximately (service, field, note).
  returned: always
  type: list
  elements: dict
warnings_list:
  description: Behaviour that changes in Kubernetes (restart policies, GPU plan overrides).
  returned: always
  type: list
  elements: str
validation:
  description: Summary of the offline validation (documents, kinds, errors, warnings).
  returned: when O(validate=true)
  type: dict
"""

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _compose_load,
    _compose_output,
    _compose_translate,
    _compose_translate_context,
    _compose_values,
    _files,
    _k8s_validate,
)
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def _options(p: dict) -> _compose_translate_context.Options:
    return _compose_translate_context.Options(
        namespace=p["namespace"], stateful=tuple(p["stateful"]), stateless=tuple(p["stateless"]),
        secret_env=tuple(p["secret_env"]), secret_patterns=tuple(p["secret_patterns"]), gpu_plan=p["gpu_plan"],
        gpu_count_all=p["gpu_count_all"], gpu_runtime_class=p["gpu_runtime_class"],
        gpu_node_selector=p["gpu_node_selector"], gpu_tolerations=tuple(p["gpu_tolerations"]),
        volume_size=p["volume_size"], volume_sizes=p["volume_sizes"], storage_class=p["storage_class"],
        image_pull_secrets=tuple(p["image_pull_secrets"]), wait_image=p["wait_image"], depends_on=p["depends_on"],
        bind_mounts=p["bind_mounts"], services=tuple(p["services"]),
        external_volumes={str(k): str(v) for k, v in p["external_volumes"].items()},
        network_policies=p["network_policies"], resource_overrides=p["resource_overrides"])


def _read(path: str) -> str | None:
    try:
        # a file there that is not UTF-8 is simply different from the manifest (and replaced)
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    _files.atomic_write(path, text, 0o600)


def _project_secrets(project: dict, p: dict) -> set[str]:
    """Values of secret variables and secret environment entries of a (partly) loaded project."""
    out = {v for k, v in (project.get("variables") or {}).items()
           if v and _compose_values.is_secret_name(k, p["secret_patterns"], p["secret_env"])}
    for svc in (project.get("services") or {}).values():
        env = svc.get("environment") if isinstance(svc, dict) else None
        out |= {str(v) for k, v in (env or {}).items()
                if v and _compose_values.is_secret_name(k, p["secret_patterns"], p["secret_env"])}
    return out


def run(module: AnsibleModule) -> dict:
    p = module.params
    plain = {str(k): "" if v is None else str(v) for k, v in p["variables"].items()}
    hidden = {str(k): "" if v is None else str(v) for k, v in p["secret_variables"].items()}
    variables = {**plain, **hidden}
    known = {v for k, v in variables.items() if v and _compose_values.is_secret_name(
        k, p["secret_patterns"], p["secret_env"])} | {v for v in hidden.values() if v}
    project: dict = {}
    try:
        project = _compose_load.load_project(p["src"], p["project_name"], p["profiles"], variables, p["project_dir"])
        out = _compose_translate.translate(project, _options(p))
    except _compose_values.ComposeError as exc:
        # an error message may quote a value (a command line, an interpolated string): never a secret one
        raise _compose_values.ComposeError(
            _compose_output.redact(str(exc), known | _project_secrets(project, p))) from None
    secrets = out.pop("secret_values") | known
    all_docs = [doc for name in sorted(out["objects"]) for doc in out["objects"][name]]
    result: dict = {"changed": False, "files": {}, "order": out["order"], "services": out["services"],
                    "unsupported": out["unsupported"], "notes": out["notes"], "warnings_list": out["warnings"]}
    if p["validate"]:
        summary = _k8s_validate.validate_documents(
            [(f"{d['kind']}/{d['metadata']['name']}", d) for d in all_docs], _k8s_validate.Schemas(), p["k8s_version"])
        result["validation"] = summary
        if summary["errors"]:
            module.fail_json(msg=_compose_output.redact("compose_to_k8s: generated manifests do not validate: "
                                                        + "; ".join(summary["errors"]), secrets),
                             **_compose_output.redact(result, secrets))
    diffs = []
    if p["dest"]:
        if not module.check_mode:
            os.makedirs(p["dest"], mode=0o700, exist_ok=True)
        for name in sorted(out["objects"]):
            path = os.path.join(os.path.abspath(p["dest"]), f"{_compose_values.dns_name(name)}.yaml")
            result["files"][name] = path
            text = _compose_output.dump(out["objects"][name])
            before = _read(path)
            if before == text:
                continue
            result["changed"] = True
            diffs.append({"before_header": path, "after_header": path,
                          "before": _compose_output.redact(before or "", secrets),
                          "after": _compose_output.dump(_compose_output.redact(out["objects"][name], secrets))})
            if not module.check_mode:
                _write(path, text)
    result["manifests"] = all_docs
    result = _compose_output.redact(result, secrets)
    if module._diff and diffs:
        result["diff"] = diffs
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "list", "elements": "path", "required": True},
            "project_name": {"type": "str"},
            "project_dir": {"type": "path"},
            "profiles": {"type": "list", "elements": "str", "default": []},
            "variables": {"type": "dict", "default": {}},
            "secret_variables": {"type": "dict", "default": {}, "no_log": True},
            "services": {"type": "list", "elements": "str", "default": []},
            "dest": {"type": "path"},
            "namespace": {"type": "str", "default": "default"},
            "stateful": {"type": "list", "elements": "str", "default": []},
            "stateless": {"type": "list", "elements": "str", "default": []},
            "secret_env": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "secret_patterns": {"type": "list", "elements": "str", "no_log": False,
                                "default": list(_compose_values.DEFAULT_SECRET_PATTERNS)},
            "gpu_plan": {"type": "dict", "default": {}},
            "gpu_count_all": {"type": "int", "default": 1},
            "gpu_runtime_class": {"type": "str", "default": "nvidia"},
            "gpu_node_selector": {"type": "dict",
                                  "default": dict(_compose_translate_context.DEFAULT_GPU_NODE_SELECTOR)},
            "gpu_tolerations": {"type": "list", "elements": "dict",
                                "default": [dict(x) for x in _compose_translate_context.DEFAULT_GPU_TOLERATIONS]},
            "volume_size": {"type": "str", "default": "1Gi"},
            "volume_sizes": {"type": "dict", "default": {}},
            "resource_overrides": {"type": "dict", "default": {}},
            "storage_class": {"type": "str"},
            "image_pull_secrets": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "wait_image": {"type": "str", "default": "busybox:1.36"},
            "depends_on": {"type": "str", "choices": ["init", "ordering"], "default": "init"},
            "bind_mounts": {"type": "str", "choices": ["hostPath", "emptyDir"], "default": "hostPath"},
            "external_volumes": {"type": "dict", "default": {}},
            "network_policies": {"type": "bool", "default": False},
            "validate": {"type": "bool", "default": True},
            "k8s_version": {"type": "str", "default": "1.31"},
        },
        supports_check_mode=True,
    )
    if not _compose_load.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    if module.params["validate"] and not _k8s_validate.HAS_KUBERNETES_VALIDATE:
        module.fail_json(msg=missing_required_lib("kubernetes-validate"))
    try:
        module.exit_json(**run(module))
    except (_compose_values.ComposeError, _k8s_validate.ManifestError) as exc:
        module.fail_json(msg=f"compose_to_k8s: {exc}")
    except OSError as exc:
        module.fail_json(msg=f"compose_to_k8s: cannot write manifests to {module.params['dest']}: {exc}")


if __name__ == "__main__":
    main()
