# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container of a Compose service: image, command, environment (its ConfigMap and Secret), ports, probes from
``healthcheck``, resources and GPUs from ``deploy.resources`` (and v2 ``mem_limit``/``cpus``, ``gpus``,
``runtime: nvidia``, a GPU plan), security context."""

from __future__ import annotations

import copy
import re
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_extras
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_context import _b64, _Ctx, _meta
from ansible_collections.sophia.migrate.plugins.module_utils._compose_values import (
    ComposeError,
    _command,
    _quantity_value,
    _scalar,
    cpu_quantity,
    duration_seconds,
    is_secret_name,
    memory_quantity,
)


def _gpu_request(name: str, svc: dict[str, t.Any], ctx: _Ctx) -> tuple[int, str, bool]:
    """(count, resource name, shared) for a service: GPU plan first, then the Compose file."""
    where = f"service {name}"
    count = 0
    devices = ((((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")) or []
    if not isinstance(devices, list):
        raise ComposeError(f"{where}: deploy.resources.reservations.devices must be a list")
    for index, dev in enumerate(devices):
        here = f"{where}: deploy.resources.reservations.devices[{index}]"
        if not isinstance(dev, dict):
            raise ComposeError(f"{here}: must be a mapping")
        caps = dev.get("capabilities") or []
        if dev.get("driver", "nvidia") != "nvidia" or ("gpu" not in caps and dev.get("driver") != "nvidia"):
            ctx.unsupported_field(name, f"deploy.resources.reservations.devices[{index}]",
                                  f"device driver {dev.get('driver')!r} capabilities {caps} not translated "
                                  "(only nvidia GPUs)")
            continue
        if dev.get("device_ids"):
            ids = dev["device_ids"]
            if not isinstance(ids, list):
                raise ComposeError(f"{here}.device_ids: must be a list")
            count += len(ids)
            ctx.note(name, f"deploy.resources.reservations.devices[{index}].device_ids",
                     f"pinned GPUs {ids} become a request for {len(ids)} GPU(s); Kubernetes picks the devices")
        elif "count" in dev:
            count += _gpu_count(dev["count"], f"{here}.count", name, ctx)
        else:
            count += _gpu_count("all", f"{here}.count", name, ctx)
    if svc.get("gpus") is not None:
        count = max(count, _gpu_count(svc["gpus"], f"{where}: gpus", name, ctx))
    if svc.get("runtime") == "nvidia" and count == 0:
        count = 1
        ctx.note(name, "runtime", "runtime: nvidia without a device reservation becomes a request for 1 GPU")
    resource, shared = "nvidia.com/gpu", False
    plan = ctx.opts.gpu_plan or {}
    if plan:
        mode = plan.get("mode", "dedicated")
        services = plan.get("services") or {}
        if not isinstance(services, dict):
            raise ComposeError(f"gpu_plan: services must be a mapping of service names, got {type(services).__name__}")
        entry = services.get(name)
        if mode == "none":
            if count:
                ctx.warnings.append(f"service {name}: the GPU plan's mode is none; "
                                    f"its {count} GPU(s) are not requested")
            return 0, resource, False
        if entry is not None:
            if not isinstance(entry, dict):
                raise ComposeError(f"gpu_plan: services.{name} must be a mapping")
            try:
                count = int(entry.get("gpus", 1))
            except (TypeError, ValueError) as exc:
                raise ComposeError(f"gpu_plan: services.{name}.gpus must be an integer") from exc
            resource = str(entry.get("resource") or resource)
            shared = bool(entry.get("shared", mode == "time-slicing"))
        elif count and mode == "time-slicing":
            shared = True
    return count, resource, shared


def _gpu_count(value: t.Any, where: str, name: str, ctx: _Ctx) -> int:
    if value in ("all", -1):
        ctx.note(name, where.split(": ", 1)[-1],
                 f"count: all (every GPU of the host) has no Kubernetes equivalent; requesting gpu_count_all="
                 f"{ctx.opts.gpu_count_all} GPU(s)")
        return ctx.opts.gpu_count_all
    try:
        count = int(value)
    except (TypeError, ValueError) as exc:
        raise ComposeError(f"{where}: invalid GPU count {value!r} (expected an integer or 'all')") from exc
    if count < 0:
        raise ComposeError(f"{where}: invalid GPU count {value!r}")
    return count


def _resources(name: str, svc: dict[str, t.Any], ctx: _Ctx) -> dict[str, dict[str, str]]:
    deploy = svc.get("deploy") or {}
    res = deploy.get("resources") or {}
    if not isinstance(res, dict):
        raise ComposeError(f"service {name}: deploy.resources must be a mapping")
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    for section, target in (("limits", limits), ("reservations", requests)):
        block = res.get(section) or {}
        if not isinstance(block, dict):
            raise ComposeError(f"service {name}: deploy.resources.{section} must be a mapping")
        if block.get("cpus") is not None:
            target["cpu"] = cpu_quantity(block["cpus"], f"service {name}: deploy.resources.{section}.cpus")
        if block.get("memory") is not None:
            target["memory"] = memory_quantity(block["memory"], f"service {name}: deploy.resources.{section}.memory")
        if block.get("pids") is not None:
            ctx.unsupported_field(name, f"deploy.resources.{section}.pids", "pid limits are a kubelet setting")
        for key in sorted(set(block) - {"cpus", "memory", "pids", "devices", "generic_resources"}):
            ctx.unsupported_field(name, f"deploy.resources.{section}.{key}", "unknown resource field")
        if block.get("generic_resources"):
            ctx.unsupported_field(name, f"deploy.resources.{section}.generic_resources", "swarm generic resources")
    if svc.get("mem_limit") is not None and "memory" not in limits:
        limits["memory"] = memory_quantity(svc["mem_limit"], f"service {name}: mem_limit")
    if svc.get("mem_reservation") is not None and "memory" not in requests:
        requests["memory"] = memory_quantity(svc["mem_reservation"], f"service {name}: mem_reservation")
    if svc.get("cpus") is not None and "cpu" not in limits:
        limits["cpu"] = cpu_quantity(svc["cpus"], f"service {name}: cpus")
    if svc.get("cpu_shares") is not None:
        ctx.unsupported_field(name, "cpu_shares",
                              "relative CPU shares have no Kubernetes equivalent; use deploy.resources")
    count, resource, shared = _gpu_request(name, svc, ctx)
    if count:
        limits[resource] = str(count)
        ctx.gpu = {"count": count, "resource": resource, "shared": shared}  # type: ignore[attr-defined]
    else:
        ctx.gpu = None  # type: ignore[attr-defined]
    out = {}
    if limits:
        out["limits"] = dict(sorted(limits.items()))
    if requests:
        out["requests"] = dict(sorted(requests.items()))
    return out


_HTTP_CHECK = re.compile(
    r"^(?:curl|wget)\b[^|;&]*?\bhttps?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0)(?::(?P<port>\d+))?(?P<path>/[^\s'\"|;&]*)?")


def _probe(name: str, svc: dict[str, t.Any], ports: list[dict[str, t.Any]], ctx: _Ctx) -> dict[str, t.Any] | None:
    hc = svc.get("healthcheck")
    if not hc:
        return None
    where = f"service {name}: healthcheck"
    if not isinstance(hc, dict):
        raise ComposeError(f"{where}: must be a mapping")
    if hc.get("disable"):
        return None
    test = hc.get("test")
    if test is None:
        ctx.note(name, "healthcheck", "no test given (the image's HEALTHCHECK is not known here); no probe")
        return None
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not isinstance(test, list) or not test:
        raise ComposeError(f"{where}.test: must be a string or a non-empty list")
    kind = str(test[0]).upper()
    if kind == "NONE":
        return None
    if kind == "CMD":
        command = [_scalar(x) for x in test[1:]]
        shell_text = " ".join(command)
    elif kind == "CMD-SHELL":
        shell_text = " ".join(_scalar(x) for x in test[1:])
        command = ["/bin/sh", "-c", shell_text]
    else:
        raise ComposeError(f"{where}.test: first element must be NONE, CMD or CMD-SHELL, got {test[0]!r}")
    if not command:
        raise ComposeError(f"{where}.test: {kind} needs a command")
    probe: dict[str, t.Any] = {}
    m = _HTTP_CHECK.match(shell_text.strip())
    simple = m and not re.search(r"[|;&]|\|\|", shell_text.strip()[m.end():])
    words = (command if kind == "CMD" else _compose_extras.split_words(shell_text.strip()[:m.end()])) \
        if m and simple else None
    headers = _compose_extras.http_probe_headers(words) if words else None
    if m and simple and headers is not None:
        port = int(m.group("port")) if m.group("port") else (ports[0]["target"] if ports else 80)
        scheme = "HTTPS" if "https://" in shell_text else "HTTP"
        probe["httpGet"] = {"path": m.group("path") or "/", "port": port, "scheme": scheme}
        if headers:
            probe["httpGet"]["httpHeaders"] = headers
    else:
        probe["exec"] = {"command": command}
    probe["periodSeconds"] = duration_seconds(hc.get("interval", "30s"), f"{where}.interval")
    probe["timeoutSeconds"] = duration_seconds(hc.get("timeout", "30s"), f"{where}.timeout")
    retries = hc.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 1:
        raise ComposeError(f"{where}.retries: must be a positive integer, got {retries!r}")
    probe["failureThreshold"] = retries
    if hc.get("start_period") is not None:
        probe["initialDelaySeconds"] = duration_seconds(hc["start_period"], f"{where}.start_period")
    if hc.get("start_interval") is not None:
        ctx.note(name, "healthcheck.start_interval", "folded into the probe period")
    return probe


_CREDENTIAL_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:[^/\s@]+@")


def _env_split(name: str, env: dict[str, str], ctx: _Ctx) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) environment: secret by name pattern, explicit list, or a URL with a password in it."""
    plain, secret = {}, {}
    for key in sorted(env):
        if is_secret_name(key, ctx.opts.secret_patterns, ctx.opts.secret_env) or _CREDENTIAL_URL.match(env[key] or ""):
            secret[key] = env[key]
            if env[key]:
                ctx.secret_values.add(env[key])
        else:
            plain[key] = env[key]
    return plain, secret


def _container(
        name: str, k8s: str, image: t.Any, svc: dict[str, t.Any], ports: list[dict[str, t.Any]],
        docs: list[dict[str, t.Any]], ctx: _Ctx,
) -> tuple[dict[str, t.Any], dict[str, str], dict[str, t.Any] | None, dict[str, t.Any] | None]:
    """(container, secret environment, probe, GPU request) of a service; its environment objects go to ``docs``."""
    container = _container_base(name, k8s, image, svc, ctx)
    plain, secret = _env_split(name, svc.get("environment") or {}, ctx)
    env_from = _env_objects(name, k8s, plain, secret, docs, ctx)
    if env_from:
        container["envFrom"] = env_from
    cports = _container_ports(name, ports, ctx)
    if cports:
        container["ports"] = cports
    probe = _probe(name, svc, ports, ctx)
    if probe:
        container["livenessProbe"] = probe
        container["readinessProbe"] = copy.deepcopy(probe)
    resources = _container_resources(name, svc, ctx)
    gpu = ctx.gpu  # type: ignore[attr-defined]
    if resources:
        container["resources"] = resources
    sc = _security_context(name, svc, ctx)
    if sc:
        container["securityContext"] = sc
    if svc.get("stdin_open"):
        container["stdin"] = True
    if svc.get("tty"):
        container["tty"] = True
    return container, secret, probe, gpu


def _container_base(name: str, k8s: str, image: t.Any, svc: dict[str, t.Any], ctx: _Ctx) -> dict[str, t.Any]:
    """Name, image, pull policy, entrypoint (command), command (args) and working directory."""
    where = f"service {name}"
    container: dict[str, t.Any] = {"name": k8s, "image": str(image)}
    if svc.get("pull_policy"):
        policy = {"always": "Always", "never": "Never", "missing": "IfNotPresent", "if_not_present": "IfNotPresent"}
        if svc["pull_policy"] in policy:
            container["imagePullPolicy"] = policy[svc["pull_policy"]]
        else:
            ctx.unsupported_field(name, "pull_policy", f"{svc['pull_policy']!r} has no equivalent")
    entry = _command(svc.get("entrypoint"), f"{where}: entrypoint")
    cmd = _command(svc.get("command"), f"{where}: command")
    if entry is not None:
        container["command"] = entry
    if cmd is not None:
        container["args"] = cmd
    if svc.get("working_dir"):
        container["workingDir"] = str(svc["working_dir"])
    return container


def _env_objects(name: str, k8s: str, plain: dict[str, str], secret: dict[str, str], docs: list[dict[str, t.Any]],
                 ctx: _Ctx) -> list[dict[str, t.Any]]:
    """The ConfigMap (plain values) and Secret (secret values) of the environment, added to ``docs``; the
    container's ``envFrom`` references to them."""
    env_from = []
    if plain:
        ctx.claim("ConfigMap", f"{k8s}-env", f"the environment of service {name!r}")
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(f"{k8s}-env", ctx, name),
                     "data": plain})
        env_from.append({"configMapRef": {"name": f"{k8s}-env"}})
    if secret:
        ctx.claim("Secret", f"{k8s}-env", f"the environment of service {name!r}")
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": _meta(f"{k8s}-env", ctx, name),
                     "type": "Opaque", "data": {k: _b64(v) for k, v in secret.items()}})
        env_from.append({"secretRef": {"name": f"{k8s}-env"}})
    return env_from


def _container_ports(name: str, ports: list[dict[str, t.Any]], ctx: _Ctx) -> list[dict[str, t.Any]]:
    """Container ports, once per (port, protocol); a published port of mode host becomes a hostPort."""
    cports = []
    seen_ports = set()
    for p in ports:
        key = (p["target"], p["protocol"])
        if key in seen_ports:
            continue
        seen_ports.add(key)
        entry_port = {"containerPort": p["target"], "protocol": p["protocol"]}
        if p.get("mode") == "host":
            if p.get("published"):
                entry_port["hostPort"] = p["published"]
                ctx.note(name, f"ports.{p['target']}", f"mode host: published on the node as hostPort {p['published']}")
            else:
                ctx.note(name, f"ports.{p['target']}", "mode host without a published port: no hostPort")
        cports.append(entry_port)
    return cports


def _container_resources(name: str, svc: dict[str, t.Any], ctx: _Ctx) -> dict[str, dict[str, str]]:
    """Requests and limits from the Compose file with the measured right-sizing (option resource_overrides) over
    them; a request above its limit is refused (the API server would refuse it)."""
    resources = _resources(name, svc, ctx)
    for section, values in ((ctx.opts.resource_overrides or {}).get(name) or {}).items():
        resources.setdefault(section, {}).update(values)
    for key in ("cpu", "memory"):  # the API server refuses a request above its limit
        low, high = resources.get("requests", {}).get(key), resources.get("limits", {}).get(key)
        if low is not None and high is not None and _quantity_value(low) > _quantity_value(high):
            raise ComposeError(f"service {name}: requests.{key} {low} is above limits.{key} {high}"
                               + (" (with resource_overrides)" if name in (ctx.opts.resource_overrides or {}) else ""))
    return resources


def _security_context(name: str, svc: dict[str, t.Any], ctx: _Ctx) -> dict[str, t.Any]:
    """``user``, ``read_only``, ``privileged``, ``cap_add`` and ``cap_drop`` as the container's securityContext."""
    sc: dict[str, t.Any] = {}
    if svc.get("user") is not None:
        user = str(svc["user"])
        uid, _sep, gid = user.partition(":")
        if uid.isdigit() and (not gid or gid.isdigit()):
            sc["runAsUser"] = int(uid)
            if gid:
                sc["runAsGroup"] = int(gid)
        else:
            ctx.unsupported_field(name, "user", f"user {user!r} is not numeric; Kubernetes needs a numeric UID/GID")
    if svc.get("read_only"):
        sc["readOnlyRootFilesystem"] = True
    if svc.get("privileged"):
        sc["privileged"] = True
    caps = {}
    if svc.get("cap_add"):
        caps["add"] = sorted(str(c).upper().removeprefix("CAP_") for c in svc["cap_add"])
    if svc.get("cap_drop"):
        caps["drop"] = sorted(str(c).upper().removeprefix("CAP_") for c in svc["cap_drop"])
    if caps:
        sc["capabilities"] = caps
    return sc
