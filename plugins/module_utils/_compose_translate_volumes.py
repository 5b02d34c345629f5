# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pod volumes of a Compose service: named volumes (PersistentVolumeClaims, claim templates of a StatefulSet,
existing claims of external volumes), bind mounts (hostPath or emptyDir), tmpfs, and Compose ``secrets`` and
``configs`` mounted from Secrets and ConfigMaps; with the mount options carried or noted."""

from __future__ import annotations

import os
import re
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_extras
from ansible_collections.sophia.migrate.plugins.module_utils._compose_translate_context import _b64, _Ctx, _meta
from ansible_collections.sophia.migrate.plugins.module_utils._compose_values import (
    ComposeError,
    _not_utf8,
    dns_name,
    memory_quantity,
)


def _volume_entries(name: str, svc: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    out = []
    for index, vol in enumerate(svc.get("volumes") or []):
        here = f"service {name}: volumes[{index}]"
        if isinstance(vol, dict):
            vtype = vol.get("type", "volume")
            if not vol.get("target"):
                raise ComposeError(f"{here}: long syntax needs a 'target'")
            extra = {k: v for k, v in vol.items() if k not in ("type", "source", "target", "read_only")}
            for key, value in extra.items():
                if key in ("volume", "bind", "tmpfs", "image") and not isinstance(value, dict):
                    raise ComposeError(f"{here}: {key}: must be a mapping")
            out.append({"type": vtype, "source": vol.get("source"), "target": vol["target"],
                        "read_only": bool(vol.get("read_only")), "index": index, "options": extra, "mode": []})
            continue
        if not isinstance(vol, str):
            raise ComposeError(f"{here}: must be a string or a mapping")
        parts = vol.split(":")
        if len(parts) == 1:
            out.append({"type": "volume", "source": None, "target": parts[0], "read_only": False, "index": index,
                        "options": {}, "mode": []})
            continue
        if len(parts) > 3:
            raise ComposeError(f"{here}: invalid volume {vol!r} (expected SOURCE:TARGET[:MODE])")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else ""
        is_path = source.startswith((".", "/", "~"))
        modes = [m for m in mode.split(",") if m and m not in ("ro", "rw")]
        out.append({"type": "bind" if is_path else "volume", "source": source, "target": target,
                    "read_only": "ro" in mode.split(","), "index": index, "options": {}, "mode": modes})
    for entry in out:
        if not str(entry["target"]).startswith("/"):
            raise ComposeError(f"service {name}: volumes[{entry['index']}]: target {entry['target']!r} "
                               "must be an absolute path")
    return out


def _external_claim(name: str, src: str, decl: dict[str, t.Any], ctx: _Ctx) -> str:
    """The existing claim that the external volume ``src`` maps to (option external_volumes), or a refusal."""
    mapping = ctx.opts.external_volumes or {}
    ext = decl.get("external")
    ext_name = decl.get("name") or (ext.get("name") if isinstance(ext, dict) else None)
    claim = mapping.get(src) if src in mapping else mapping.get(str(ext_name)) if ext_name else None
    if not claim:
        raise ComposeError(f"service {name}: volume {src!r} is external (it exists outside the Compose project) and "
                           f"the option external_volumes names no claim for it; set external_volumes: {{{src}: "
                           "<existing PersistentVolumeClaim>}")
    claim = str(claim)
    if not _compose_extras.DNS1123_SUBDOMAIN.match(claim):
        raise ComposeError(f"option external_volumes: {src}: {claim!r} is not a valid claim name (DNS-1123)")
    ctx.note(name, f"volumes.{src}", f"external volume uses the existing claim {claim} (not created here)")
    return claim


def _mount_options(name: str, e: dict[str, t.Any], mount: dict[str, t.Any], container: dict[str, t.Any],
                   ctx: _Ctx) -> None:
    """Long-syntax (and short-syntax mode) mount options: carried into the volumeMount, or noted."""
    field = f"volumes[{e['index']}]"
    opts = e["options"]
    volume = opts.get("volume") or {}
    bind = opts.get("bind") or {}
    tmpfs = opts.get("tmpfs") or {}
    if volume.get("subpath"):
        mount["subPath"] = str(volume["subpath"]).strip("/")
    if volume.get("nocopy") or "nocopy" in e["mode"]:
        ctx.note(name, f"{field}.nocopy",
                 "Kubernetes never copies image content into a volume (nocopy is its only behaviour)")
    for key in sorted(set(volume) - {"subpath", "nocopy"}):
        ctx.note(name, f"{field}.volume.{key}", "not carried")
    propagation = bind.get("propagation") or next((m for m in e["mode"] if m in _compose_extras.PROPAGATION), None)
    if propagation:
        k8s = _compose_extras.PROPAGATION.get(str(propagation), "?")
        privileged = (container.get("securityContext") or {}).get("privileged")
        if k8s == "?":
            ctx.note(name, f"{field}.bind.propagation", f"propagation {propagation!r} not understood; not carried")
        elif k8s == "Bidirectional" and not privileged:
            ctx.note(name, f"{field}.bind.propagation", f"{propagation} needs Bidirectional propagation, which "
                                                        "Kubernetes allows only in privileged containers; not carried")
        elif k8s:
            mount["mountPropagation"] = k8s
    if bind.get("selinux") or any(m in ("z", "Z") for m in e["mode"]):
        ctx.note(name, f"{field}.bind.selinux", "SELinux relabelling is not carried (use seLinuxOptions)")
    for key in sorted(set(bind) - {"propagation", "selinux", "create_host_path"}):
        ctx.note(name, f"{field}.bind.{key}", "not carried")
    for key in sorted(set(tmpfs) - {"size"}):
        ctx.note(name, f"{field}.tmpfs.{key}", "not carried (an emptyDir has no mode)")
    for key in sorted(set(opts) - {"volume", "bind", "tmpfs"}):
        ctx.note(name, f"{field}.{key}", "not carried")
    for mode in e["mode"]:
        if mode not in _compose_extras.PROPAGATION and mode not in ("z", "Z", "nocopy"):
            ctx.note(name, f"{field}.{mode}", f"mount option {mode!r} not carried")


def _unique_pod_volumes(where: str, volumes: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Pod volumes once each; two different volumes of one name (a named volume 'vol-0' next to a bind mount, ...)
    are refused: Kubernetes would reject the pod."""
    seen: dict[str, dict[str, t.Any]] = {}
    for volume in volumes:
        first = seen.setdefault(volume["name"], volume)
        if first != volume:
            raise ComposeError(f"{where}: two different volumes of the pod are named {volume['name']!r} (a named "
                               "volume, secret or config whose name matches a generated one); rename it in the "
                               "Compose file")
    return list(seen.values())


def _top_content(field: str, src: str, decl: dict[str, t.Any], ctx: _Ctx, where: str) -> str | bytes | None:
    if decl.get("external"):
        service = where.split(":", maxsplit=1)[0].removeprefix("service ")
        ctx.note(service, field, f"{src} is external: create it in the cluster")
        return None
    if decl.get("file"):
        path = os.path.join(ctx.project["project_dir"], str(decl["file"]))
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except OSError as exc:
            raise ComposeError(f"{where}: cannot read {field[:-1]} file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            if field == "configs":
                raise ComposeError(f"{where}: cannot read config file {_not_utf8(path, exc)}") from exc
            with open(path, "rb") as handle:
                return handle.read()  # a binary secret (keystore, key file): Secret data is base64 anyway
    if decl.get("environment"):
        value = ctx.project["variables"].get(str(decl["environment"]))
        if value is None:
            raise ComposeError(f"{where}: variable {decl['environment']} for {field[:-1]} {src} is not set")
        return value
    if "content" in decl:
        return str(decl["content"])
    raise ComposeError(f"{where}: top-level {field}.{src} needs file, environment or content")


class PodVolumes(t.NamedTuple):
    """The pod's volumes, the container's mounts of them, and the claim templates of a StatefulSet."""
    volumes: list[dict[str, t.Any]]
    mounts: list[dict[str, t.Any]]
    claim_templates: list[dict[str, t.Any]]


def _pod_volumes(name: str, svc: dict[str, t.Any], entries: list[dict[str, t.Any]], stateful: bool,
                 container: dict[str, t.Any], docs: list[dict[str, t.Any]], ctx: _Ctx) -> PodVolumes:
    """The volumes of a service (``volumes``, ``tmpfs``, ``secrets``, ``configs``); the objects they need (claims,
    Secrets, ConfigMaps) go to ``docs``, the mounts into ``container``."""
    vols = PodVolumes([], [], [])
    for e in entries:
        _entry_volume(name, e, stateful, container, vols, docs, ctx)
    _tmpfs_volumes(name, svc, vols, ctx)
    _file_volumes(name, svc, vols, docs, ctx)
    if vols.mounts:
        container["volumeMounts"] = vols.mounts
    return vols


def _entry_volume(name: str, e: dict[str, t.Any], stateful: bool, container: dict[str, t.Any], vols: PodVolumes,
                  docs: list[dict[str, t.Any]], ctx: _Ctx) -> None:
    """One entry of ``volumes``: its pod volume and mount (a type without a translation is listed as unsupported)."""
    vname = f"vol-{e['index']}"
    mount = {"name": vname, "mountPath": e["target"]}
    if e["read_only"]:
        mount["readOnly"] = True
    _mount_options(name, e, mount, container, ctx)
    if e["type"] == "volume" and e["source"]:
        _named_volume(name, e, mount, stateful, vols, docs, ctx)
    elif e["type"] == "volume" or e["type"] == "tmpfs":
        empty: dict[str, t.Any] = {"medium": "Memory"} if e["type"] == "tmpfs" else {}
        tmpfs = e["options"].get("tmpfs") or {}
        if e["type"] == "tmpfs" and tmpfs.get("size") is not None:
            empty["sizeLimit"] = memory_quantity(tmpfs["size"], f"service {name}: volumes[{e['index']}].tmpfs.size")
        vols.volumes.append({"name": vname, "emptyDir": empty})
    elif e["type"] == "bind":
        vols.volumes.append(_bind_volume(name, e, vname, ctx))
    else:
        ctx.unsupported_field(name, f"volumes[{e['index']}]", f"volume type {e['type']!r} not translated")
        return
    vols.mounts.append(mount)


def _named_volume(name: str, e: dict[str, t.Any], mount: dict[str, t.Any], stateful: bool, vols: PodVolumes,
                  docs: list[dict[str, t.Any]], ctx: _Ctx) -> None:
    """A named volume: an existing claim (external), a claim template (StatefulSet) or a PersistentVolumeClaim."""
    opts = ctx.opts
    top_volumes = ctx.project.get("volumes") or {}
    src = str(e["source"])
    if src not in top_volumes:
        raise ComposeError(f"service {name}: volumes[{e['index']}]: named volume {src!r} is not declared "
                           "in the top-level 'volumes'")
    decl = top_volumes[src] or {}
    if isinstance(decl, dict) and decl.get("external"):
        vname = dns_name(src)
        mount["name"] = vname
        volume = {"name": vname, "persistentVolumeClaim": {"claimName": _external_claim(name, src, decl, ctx)}}
        if volume not in vols.volumes:
            vols.volumes.append(volume)
        return
    claim = dns_name(f"{ctx.project['name']}-{src}" if not stateful else src)
    vname = dns_name(src)
    mount["name"] = vname
    size = (opts.volume_sizes or {}).get(src, opts.volume_size)
    spec: dict[str, t.Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if opts.storage_class:
        spec["storageClassName"] = opts.storage_class
    if stateful:
        if not any(c["metadata"]["name"] == vname for c in vols.claim_templates):
            vols.claim_templates.append({"metadata": {"name": vname}, "spec": spec})
    elif {"name": vname, "persistentVolumeClaim": {"claimName": claim}} not in vols.volumes:
        ctx.claim("PersistentVolumeClaim", claim, f"volume {src!r}")
        vols.volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": claim}})
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": _meta(claim, ctx, name, {"sophia.migrate/volume": vname}),
                     "spec": spec})


def _bind_volume(name: str, e: dict[str, t.Any], vname: str, ctx: _Ctx) -> dict[str, t.Any]:
    """A bind mount as a hostPath (single-node K3s) or, with option bind_mounts=emptyDir, an emptyDir."""
    src = os.path.normpath(os.path.join(ctx.project["project_dir"], os.path.expanduser(str(e["source"]))))
    bind = e["options"].get("bind") or {}
    if ctx.opts.bind_mounts == "emptyDir":
        ctx.note(name, f"volumes[{e['index']}]", f"bind mount {e['source']} becomes an emptyDir")
        return {"name": vname, "emptyDir": {}}
    host_path = {"path": src}
    if bind.get("create_host_path") is True:
        host_path["type"] = "DirectoryOrCreate"
    elif bind.get("create_host_path") is False:
        ctx.note(name, f"volumes[{e['index']}].bind.create_host_path",
                 "false: the hostPath type is left unset (the kubelet does not check the path exists)")
    ctx.note(name, f"volumes[{e['index']}]",
             f"bind mount {e['source']} becomes hostPath {src} (single-node K3s; copy the data there)")
    return {"name": vname, "hostPath": host_path}


def _tmpfs_volumes(name: str, svc: dict[str, t.Any], vols: PodVolumes, ctx: _Ctx) -> None:
    """``tmpfs`` paths as memory-backed emptyDirs."""
    for index, tmp in enumerate([svc["tmpfs"]] if isinstance(svc.get("tmpfs"), str) else (svc.get("tmpfs") or [])):
        vname = f"tmpfs-{index}"
        path, tmp_opts = _compose_extras.tmpfs_options(str(tmp))
        empty = {"medium": "Memory"}
        if tmp_opts.get("size"):
            empty["sizeLimit"] = memory_quantity(tmp_opts["size"], f"service {name}: tmpfs[{index}] size")
        for key in sorted(set(tmp_opts) - {"size"}):
            ctx.note(name, f"tmpfs[{index}].{key}", f"tmpfs option {key} has no emptyDir equivalent; not carried")
        vols.volumes.append({"name": vname, "emptyDir": empty})
        vols.mounts.append({"name": vname, "mountPath": path})


def _file_volumes(name: str, svc: dict[str, t.Any], vols: PodVolumes, docs: list[dict[str, t.Any]],
                  ctx: _Ctx) -> None:
    """Compose ``secrets`` and ``configs`` of a service: a Secret or ConfigMap each (once per project object), mounted
    as a file."""
    for kind, field, default_dir in (("Secret", "secrets", "/run/secrets/"), ("ConfigMap", "configs", "/")):
        top = ctx.project.get(field) or {}
        for index, ref in enumerate(svc.get(field) or []):
            here = f"service {name}: {field}[{index}]"
            src = ref if isinstance(ref, str) else (ref or {}).get("source")
            if not src or src not in top:
                raise ComposeError(f"{here}: {src!r} is not declared in the top-level '{field}'")
            target = (ref.get("target") if isinstance(ref, dict) else None) or src
            path = target if str(target).startswith("/") else default_dir + str(target)
            obj_name = dns_name(f"{ctx.project['name']}-{src}")
            content = _top_content(field, src, top[src] or {}, ctx, here)
            if content is None:
                continue
            base = os.path.basename(str(path))
            key = base if re.match(r"^[-._a-zA-Z0-9]+$", base) else (dns_name(base) or "value")
            vname = dns_name(f"{field[:-1]}-{src}")
            ctx.claim(kind, obj_name, f"{field[:-1]} {src!r}")
            if not any(d["kind"] == kind and d["metadata"]["name"] == obj_name for d in docs):
                docs.append(_file_object(name, kind, obj_name, key, content, ctx))
            source = {"secretName": obj_name} if kind == "Secret" else {"name": obj_name}
            vols.volumes.append({"name": vname, ("secret" if kind == "Secret" else "configMap"): source})
            vols.mounts.append({"name": vname, "mountPath": path, "subPath": key, "readOnly": True})


def _file_object(name: str, kind: str, obj_name: str, key: str, content: str | bytes, ctx: _Ctx) -> dict[str, t.Any]:
    """The Secret (its value remembered as secret) or ConfigMap that holds a Compose secret's or config's content."""
    body: dict[str, t.Any] = {"apiVersion": "v1", "kind": kind, "metadata": _meta(obj_name, ctx, name)}
    if kind == "Secret":
        ctx.secret_values.add(content if isinstance(content, str) else _b64(content))
        body["type"] = "Opaque"
        body["data"] = {key: _b64(content)}
    else:
        body["data"] = {key: content}
    return body
