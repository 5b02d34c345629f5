"""Compose constructs beyond the core loading and translation (``_compose_load``, ``_compose_translate*``): ``include``
paths, long-syntax volume and tmpfs options, Swarm placement constraints, curl/wget healthcheck headers,
NetworkPolicies from Compose networks, and the checks of generated objects that the API server makes but the JSON
schema does not (IPs, DNS-1123 names, label values, port names).

Pure functions: errors are returned as strings (or raised by the caller as ``ComposeError``), so this module does
not import the ``_compose_*`` modules.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import typing as t

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# docker image reference: [registry[:port]/]path[:tag][@digest]
IMAGE_REF = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
    r"(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,})?$")


def valid_label_key(key: str) -> bool:
    prefix, sep, name = key.rpartition("/")
    return bool(LABEL_NAME.match(name)) and (not sep or bool(DNS1123_SUBDOMAIN.match(prefix)))


# --------------------------------------------------------------------------- include

def include_entries(spec: t.Any, path: str) -> list[dict[str, t.Any]]:
    """Top-level ``include`` as [{paths, project_directory, env_file, index}] (paths absolute), or ValueError."""
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise ValueError(f"{path}: include: must be a list")
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for index, entry_spec in enumerate(spec):
        here = f"{path}: include[{index}]"
        item = {"path": entry_spec} if isinstance(entry_spec, str) else entry_spec
        if not isinstance(item, dict) or not item.get("path"):
            raise ValueError(f"{here}: needs a path")
        paths = item["path"] if isinstance(item["path"], list) else [item["path"]]
        full = []
        for entry in paths:
            text = str(entry)
            if "://" in text or text.startswith(("git@", "oci:")):
                raise ValueError(f"{here}: remote include {text!r} is not supported; download it and include the "
                                 "local copy")
            full.append(os.path.normpath(os.path.join(base, os.path.expanduser(text))))
        project = item.get("project_directory")
        project = os.path.normpath(os.path.join(base, str(project))) if project else os.path.dirname(full[0])
        env_files = item.get("env_file")
        env_files = [env_files] if isinstance(env_files, str) else list(env_files or [])
        out.append({"paths": full, "project_directory": project, "index": index,
                    "env_file": [os.path.normpath(os.path.join(base, str(e))) for e in env_files]})
    return out


def absolutize(data: dict[str, t.Any], base: str) -> dict[str, t.Any]:
    """Relative paths of an included file (env_file, bind mounts, secret/config files) made absolute against ``base``
    (its project directory), as Compose resolves them before merging."""
    def fix(p: t.Any) -> t.Any:
        return os.path.normpath(os.path.join(base, os.path.expanduser(p))) if isinstance(p, str) and p else p

    services = data.get("services") or {}
    for svc in services.values():
        if not isinstance(svc, dict):
            continue
        env = svc.get("env_file")
        if isinstance(env, str):
            svc["env_file"] = fix(env)
        elif isinstance(env, list):
            svc["env_file"] = [fix(e) if isinstance(e, str) else {**e, "path": fix(e.get("path"))}
                               if isinstance(e, dict) else e for e in env]
        vols = []
        for vol in svc.get("volumes") or []:
            if isinstance(vol, str) and vol.startswith((".", "~")) and ":" in vol:
                src, rest = vol.split(":", 1)
                vols.append(f"{fix(src)}:{rest}")
            elif isinstance(vol, dict) and vol.get("type") == "bind" and isinstance(vol.get("source"), str):
                vols.append({**vol, "source": fix(vol["source"])})
            else:
                vols.append(vol)
        if vols:
            svc["volumes"] = vols
    for section in ("secrets", "configs"):
        for decl in (data.get(section) or {}).values():
            if isinstance(decl, dict) and isinstance(decl.get("file"), str):
                decl["file"] = fix(decl["file"])
    return data


# --------------------------------------------------------------------------- volumes

PROPAGATION = {"rslave": "HostToContainer", "slave": "HostToContainer", "rshared": "Bidirectional",
               "shared": "Bidirectional", "private": None, "rprivate": None}


def tmpfs_options(text: str) -> tuple[str, dict[str, str]]:
    """``/path:size=64m,mode=1777`` as (path, {option: value})."""
    path, _sep, opts = str(text).partition(":")
    out = {}
    for opt in filter(None, opts.split(",")):
        key, _eq, value = opt.partition("=")
        out[key.strip()] = value.strip()
    return path, out


# --------------------------------------------------------------------------- placement

_CONSTRAINT = re.compile(r"^\s*(?P<key>[A-Za-z0-9_.\-/]+)\s*(?P<op>==|!=)\s*(?P<value>.*?)\s*$")
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


def placement_affinity(placement: dict[str, t.Any]) -> tuple[dict[str, t.Any] | None, list[tuple[str, str]]]:
    """Swarm ``deploy.placement`` as a required node affinity; (affinity or None, [(field, note)]) for what is
    carried approximately or not at all."""
    notes: list[tuple[str, str]] = []
    exprs: list[dict[str, t.Any]] = []
    for index, raw in enumerate(placement.get("constraints") or []):
        field = f"deploy.placement.constraints[{index}]"
        m = _CONSTRAINT.match(str(raw))
        if not m:
            notes.append((field, f"constraint {raw!r} not understood; not carried"))
            continue
        key, op, value = m.group("key"), m.group("op"), m.group("value").strip("'\"")
        k8s_key: str | None = None
        operator = "In" if op == "==" else "NotIn"
        if key == "node.hostname":
            k8s_key = "kubernetes.io/hostname"
        elif key.startswith("node.labels."):
            k8s_key = key.removeprefix("node.labels.")
        elif key == "node.platform.os":
            k8s_key = "kubernetes.io/os"
        elif key == "node.platform.arch":
            k8s_key, value = "kubernetes.io/arch", _ARCH.get(value, value)
        elif key == "node.role":
            k8s_key = "node-role.kubernetes.io/control-plane"
            wants_manager = (value == "manager") == (op == "==")
            exprs.append({"key": k8s_key, "operator": "Exists" if wants_manager else "DoesNotExist"})
            notes.append((field, f"{raw} becomes node-role.kubernetes.io/control-plane "
                                 f"{'Exists' if wants_manager else 'DoesNotExist'}"))
            continue
        if k8s_key is None:
            notes.append((field, f"constraint {raw!r} ({key}) has no Kubernetes node label; not carried"))
            continue
        if not valid_label_key(k8s_key) or not LABEL_VALUE.match(value):
            notes.append((field, f"constraint {raw!r} is not a valid node label key/value; not carried"))
            continue
        exprs.append({"key": k8s_key, "operator": operator, "values": [value]})
    for index, pref in enumerate(placement.get("preferences") or []):
        notes.append((f"deploy.placement.preferences[{index}]",
                      f"spread preference {pref!r} not carried (use topologySpreadConstraints)"))
    for key in sorted(set(placement) - {"constraints", "preferences"}):
        notes.append((f"deploy.placement.{key}", "not carried"))
    if not exprs:
        return None, notes
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": exprs}]}}}, notes


# --------------------------------------------------------------------------- healthchecks

_CURL_FLAGS = {"-f", "--fail", "-s", "--silent", "-S", "--show-error", "-sS", "-fs", "-sf", "-fsS", "-sfS", "-fSs",
               "-L", "--location", "-k", "--insecure", "-I", "--head", "-q", "--quiet", "--spider", "-nv",
               "--no-verbose", "-qO-", "-O-", "--no-check-certificate", "-4", "-6"}
_CURL_VALUE_FLAGS = {"-o", "--output", "-O", "-m", "--max-time", "--connect-timeout", "-T", "--timeout", "-t",
                     "--tries", "--retry", "-w", "--write-out", "-A", "--user-agent"}


def http_probe_headers(words: list[str]) -> list[dict[str, str]] | None:
    """``httpHeaders`` of a curl/wget health check's words (up to the URL), or None when the command has options
    that an httpGet probe cannot carry (the caller then keeps an exec probe)."""
    headers: list[dict[str, str]] = []
    index = 1
    while index < len(words):
        word = words[index]
        header = None
        if word in ("-H", "--header") and index + 1 < len(words):
            header = words[index + 1]
            index += 1
        elif word.startswith("--header="):
            header = word.split("=", 1)[1]
        elif word.startswith("-H") and len(word) > 2:
            header = word[2:]
        elif word in _CURL_VALUE_FLAGS:
            index += 1
        elif word.startswith(("--output=", "--max-time=", "--timeout=", "--tries=", "--connect-timeout=",
                              "--user-agent=", "--write-out=")) or word.startswith("-O") or word in _CURL_FLAGS:
            pass
        elif word.startswith(("http://", "https://")):
            break
        else:
            return None
        if header is not None:
            name, sep, value = header.partition(":")
            if not sep or not HEADER_NAME.match(name.strip()):
                return None
            headers.append({"name": name.strip(), "value": value.strip()})
        index += 1
    return headers


def split_words(text: str) -> list[str] | None:
    try:
        return shlex.split(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- networks

def network_label(network: str, dns_name: t.Callable[[str], str]) -> str:
    return f"network.sophia.migrate/{dns_name(network)}"


def service_networks(svc: dict[str, t.Any]) -> list[str]:
    nets = svc.get("networks")
    if nets is None:
        return ["default"]
    if not isinstance(nets, (list, dict)):
        raise ValueError(f"networks: must be a list or a mapping, got {type(nets).__name__}")
    return sorted(str(n) for n in nets)


# --------------------------------------------------------------------------- output checks

def check_objects(docs: list[dict[str, t.Any]]) -> list[str]:
    """What the API server would reject in ``docs`` although the JSON schema accepts it."""
    problems: list[str] = []
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        where = f"{kind}/{meta['name']}"
        name_rule = DNS1035_LABEL if kind == "Service" else DNS1123_SUBDOMAIN
        if not name_rule.match(meta["name"]) or (kind in ("Service", "StatefulSet") and len(meta["name"]) > 63):
            problems.append(f"{where}: name {meta['name']!r} is not a valid {kind} name "
                            f"({'DNS-1035 label' if kind == 'Service' else 'DNS-1123 subdomain'})")
        for key, value in (meta.get("labels") or {}).items():
            if not valid_label_key(key) or not LABEL_VALUE.match(str(value)):
                problems.append(f"{where}: label {key}={value!r} is not a valid label")
        spec = doc.get("spec") or {}
        pod = ((spec.get("jobTemplate") or {}).get("spec", spec).get("template") or {}).get("spec")
        if pod:
            problems += _check_pod(where, pod)
        for port in (spec.get("ports") or []) if kind == "Service" else []:
            if port.get("name") and not PORT_NAME.match(port["name"]):
                problems.append(f"{where}: port name {port['name']!r} is not a valid IANA service name")
    return problems


def _check_pod(where: str, pod: dict[str, t.Any]) -> list[str]:
    problems = []
    for alias in pod.get("hostAliases") or []:
        try:
            ipaddress.ip_address(alias["ip"])
        except ValueError:
            problems.append(f"{where}: hostAliases ip {alias['ip']!r} is not an IP address")
        for host in alias.get("hostnames") or []:
            if not DNS1123_SUBDOMAIN.match(host):
                problems.append(f"{where}: hostAliases hostname {host!r} is not a DNS-1123 subdomain")
    for key, value in (pod.get("nodeSelector") or {}).items():
        if not valid_label_key(key) or not LABEL_VALUE.match(str(value)):
            problems.append(f"{where}: nodeSelector {key}={value!r} is not a valid label")
    if pod.get("hostname") and not DNS1123_LABEL.match(pod["hostname"]):
        problems.append(f"{where}: hostname {pod['hostname']!r} is not a DNS-1123 label")
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        if not DNS1123_LABEL.match(container["name"]):
            problems.append(f"{where}: container name {container['name']!r} is not a DNS-1123 label")
        if not IMAGE_REF.match(container.get("image") or ""):
            problems.append(f"{where}: image {container.get('image')!r} is not a valid image reference")
        for port in container.get("ports") or []:
            if port.get("hostPort") is not None and not 1 <= port["hostPort"] <= 65535:
                problems.append(f"{where}: hostPort {port['hostPort']} out of range")
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPropagation") == "Bidirectional" and not (
                    container.get("securityContext") or {}).get("privileged"):
                problems.append(f"{where}: mountPropagation Bidirectional needs a privileged container")
    return problems
