# Copyright (c) sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a Compose project: v2/v3 and the Compose Specification (YAML anchors and merge keys, ``x-`` extensions,
``${VAR}`` interpolation with ``.env``, ``extends``, ``include``, ``env_file``, ``profiles``) merged into one
normalised project dict (``load_project()``), which ``_compose_translate.translate()`` turns into Kubernetes objects.
"""

from __future__ import annotations

import os
import re
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils import _compose_extras
from ansible_collections.sophia.migrate.plugins.module_utils._compose_values import (
    ComposeError,
    _not_utf8,
    _scalar,
    dns_name,
)

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the module
    yaml = None  # type: ignore[assignment]
    HAS_YAML = False


_VAR = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: t.Any, env: dict[str, str], where: str = "") -> t.Any:
    """Compose variable interpolation (``$VAR``, ``${VAR}``, ``:-``, ``-``, ``:?``, ``?``, ``:+``, ``$$``)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expr = match.group("braced") if match.group("braced") is not None else match.group("named")
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", expr, re.S)
        if not m:
            raise ComposeError(f"{where or 'compose file'}: invalid interpolation '{match.group(0)}'")
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        val = env.get(name)
        if op is None:
            if val is None and isinstance(env, _Env):
                env.missing.add(name)
            return val if val is not None else ""
        unset_or_empty = val is None or (op.startswith(":") and val == "")
        if op.endswith("-"):
            return interpolate(arg, env, where) if unset_or_empty else t.cast(str, val)
        if op.endswith("?"):
            if unset_or_empty:
                raise ComposeError(f"{where or 'compose file'}: required variable {name} is missing: {arg}")
            return t.cast(str, val)
        return interpolate(arg, env, where) if not unset_or_empty else ""

    return _VAR.sub(sub, value)


def parse_env_file(path: str, where: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments, ``export``, quotes) of an env file."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ComposeError(f"{where}: cannot read env file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ComposeError(f"{where}: cannot read env file {_not_utf8(path, exc)}") from exc
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.\-]*$", key):
            raise ComposeError(f"{where}: env file {path} line {number}: invalid variable name {key!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value if sep else ""
    return out


# A Compose file of a real project holds a few thousand values; YAML aliases can make a few lines stand for billions
# ("billion laughs"), which every later walk over the data would expand. Past this many values the file is refused.
MAX_EXPANDED_VALUES = 100_000


def _read_yaml(path: str) -> dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            # libyaml's parser when PyYAML has it (same documents, about 8x faster), the safe constructor either way
            data = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as exc:
        raise ComposeError(f"{path}: cannot read compose file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ComposeError(f"{_not_utf8(path, exc)}: cannot read compose file") from exc
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(exc):  # libyaml's own limit, said as the pure-Python parser's is
            raise ComposeError(f"{path}: invalid YAML: nested too deeply") from exc
        raise ComposeError(f"{path}: invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ComposeError(f"{path}: invalid YAML: nested too deeply") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeError(f"{path}: a compose file must be a mapping, got {type(data).__name__}")
    _bound_expansion(data, path)
    return data


def _bound_expansion(data: t.Any, path: str, limit: int = MAX_EXPANDED_VALUES) -> None:
    """Refuse a document whose values, with every YAML alias expanded, number more than ``limit``, or that refers to
    itself. Aliases are shared objects after loading, so each is counted once and the check stays linear."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(value: t.Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        key = id(value)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ComposeError(f"{path}: a YAML alias refers to a node that contains it (a recursive structure)")
        active.add(key)
        total = 1
        for item in (value.values() if isinstance(value, dict) else value):
            total += size(item)
            if total > limit:
                raise ComposeError(f"{path}: with its YAML aliases expanded the file holds more than {limit} values "
                                   "(an alias bomb?); refusing it")
        active.discard(key)
        sizes[key] = total
        return total

    try:
        size(data)
    except RecursionError as exc:
        raise ComposeError(f"{path}: invalid YAML: nested too deeply") from exc


def _merge(base: t.Any, over: t.Any, key: str = "") -> t.Any:
    """Compose merge rules (simplified): mappings merge, sequences of ports/volumes/etc. append, scalars replace."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v, k) if k in base else v
        return out
    if isinstance(base, list) and isinstance(over, list) and key in (
            "ports", "expose", "volumes", "dns", "cap_add", "cap_drop", "extra_hosts", "secrets", "configs",
            "env_file", "tmpfs", "devices", "external_links", "security_opt"):
        return base + [item for item in over if item not in base]
    if key in ("environment", "labels"):
        return {**_kv(base, key), **_kv(over, key)}
    return over


def _kv(value: t.Any, where: str) -> dict[str, t.Any]:
    """environment/labels as a dict (mapping or ``KEY=VALUE`` list)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): (None if v is None else _scalar(v)) for k, v in value.items()}
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, str):
                raise ComposeError(f"{where}: entries must be KEY=VALUE strings, got {item!r}")
            k, sep, v = item.partition("=")
            out[k] = v if sep else None
        return out
    raise ComposeError(f"{where}: must be a mapping or a list of KEY=VALUE strings")


def _env_files(spec: t.Any, base_dir: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    items = [spec] if isinstance(spec, (str, dict)) else (spec or [])
    for item in items:
        path, required = (item, True) if isinstance(item, str) else (item.get("path"), item.get("required", True))
        if not path:
            raise ComposeError(f"{where}: env_file entries need a path")
        full = path if os.path.isabs(path) else os.path.join(base_dir, path)
        if not os.path.exists(full) and not required:
            continue
        out.update(parse_env_file(full, where))
    return out


class _Env(dict):
    """Interpolation variables that remember the names used without a value (Compose warns and uses a blank)."""

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing: set[str] = set()


_INCLUDED = ("services", "volumes", "networks", "secrets", "configs")


def _load_file(path: str, env: dict[str, str], stack: tuple[str, ...]) -> dict[str, t.Any]:
    """One Compose file, interpolated, with ``extends`` and top-level ``include`` resolved (Compose 2.20+: paths are
    relative to the including file; an included file brings its own resources, and a name both files define is an
    error, as in Compose)."""
    raw = _read_yaml(path)
    data = interpolate({k: v for k, v in raw.items() if not str(k).startswith("x-")}, env)
    if not isinstance(data.get("services") or {}, dict):
        raise ComposeError(f"{path}: 'services' must be a mapping")
    data["services"] = {name: _resolve_extends(name, svc, data, path, env, set())
                        for name, svc in (data.get("services") or {}).items()}
    try:
        includes = _compose_extras.include_entries(data.pop("include", None), path)
    except ValueError as exc:
        raise ComposeError(str(exc)) from None
    for inc in includes:
        here = f"{path}: include[{inc['index']}]"
        inc_env = _Env()
        for env_file in inc["env_file"] or [os.path.join(inc["project_directory"], ".env")]:
            if os.path.isfile(env_file) or inc["env_file"]:
                inc_env.update(parse_env_file(env_file, here))
        inc_env.update(env)
        part: dict[str, t.Any] = {}
        for inc_path in inc["paths"]:
            if os.path.abspath(inc_path) in stack:
                raise ComposeError(f"{here}: {inc_path} includes itself (circular include)")
            if not os.path.isfile(inc_path):
                raise ComposeError(f"{here}: included file {inc_path} not found")
            part = _merge(part, _load_file(inc_path, inc_env, (*stack, os.path.abspath(inc_path))))
        if isinstance(env, _Env):
            env.missing |= inc_env.missing
        part = _compose_extras.absolutize(part, inc["project_directory"])
        for section in _INCLUDED:
            if not part.get(section):
                continue
            if not isinstance(part[section], dict) or not isinstance(data.get(section) or {}, dict):
                raise ComposeError(f"{here}: '{section}' must be a mapping in {path} and in the included file")
            mine = data[section] = dict(data.get(section) or {})
            for name, value in part[section].items():
                if name in mine:
                    raise ComposeError(f"{here}: {section}.{name} is defined both in {path} and in the included "
                                       f"{', '.join(inc['paths'])} (Compose refuses this too)")
                mine[name] = value
    return data


def load_project(files: list[str], project_name: str | None = None, profiles: t.Iterable[str] = (),
                 variables: dict[str, str] | None = None, project_dir: str | None = None) -> dict[str, t.Any]:
    """Read and merge Compose files into a normalised project dict."""
    if not HAS_YAML:  # pragma: no cover
        raise ComposeError("the Python library PyYAML is required")
    if not files:
        raise ComposeError("no compose file given")
    project_dir = project_dir or os.path.dirname(os.path.abspath(files[0]))
    env = _Env()
    dot_env = os.path.join(project_dir, ".env")
    if os.path.isfile(dot_env):
        env.update(parse_env_file(dot_env, ".env"))
    env.update(variables or {})
    merged: dict[str, t.Any] = {}
    for path in files:
        merged = _merge(merged, _load_file(path, env, (os.path.abspath(path),)))
    if "services" not in merged and files:
        raise ComposeError(f"{files[0]}: no 'services' section")
    services = merged.get("services") or {}
    if not isinstance(services, dict):
        raise ComposeError(f"{files[0]}: 'services' must be a mapping")
    active = set(profiles)
    out_services: dict[str, dict[str, t.Any]] = {}
    inactive: dict[str, list[str]] = {}
    for name in sorted(services):
        svc = services[name] or {}
        if not isinstance(svc, dict):
            raise ComposeError(f"service {name}: must be a mapping")
        svc_profiles = svc.get("profiles") or []
        if not isinstance(svc_profiles, list):
            raise ComposeError(f"service {name}: profiles: must be a list")
        if svc_profiles and not (active & {str(p) for p in svc_profiles}) and "*" not in active:
            inactive[name] = sorted(str(p) for p in svc_profiles)
            continue
        svc = dict(svc)
        file_env = _env_files(svc.get("env_file"), project_dir, f"service {name}: env_file")
        svc["environment"] = {**file_env, **_kv(svc.get("environment"), f"service {name}: environment")}
        # entries without a value take it from the variables, or are left out (Compose semantics)
        for key, value in list(svc["environment"].items()):
            if value is None:
                if key in env:
                    svc["environment"][key] = env[key]
                else:
                    del svc["environment"][key]
        svc["labels"] = {k: v or "" for k, v in _kv(svc.get("labels"), f"service {name}: labels").items()}
        out_services[name] = svc
    if services and not out_services:
        found = sorted({p for ps in inactive.values() for p in ps})
        raise ComposeError(f"no service is active: every service belongs to a profile ({', '.join(found)}) and "
                           f"the option profiles ({', '.join(sorted(active)) or 'empty'}) activates none of them; "
                           "set profiles (for example [" + found[0] + "], or '*' for all)")
    name = project_name or merged.get("name") or os.path.basename(project_dir.rstrip("/")) or "default"
    return {
        "name": dns_name(str(name)),
        "project_dir": project_dir,
        "services": out_services,
        "volumes": merged.get("volumes") or {},
        "secrets": merged.get("secrets") or {},
        "configs": merged.get("configs") or {},
        "networks": merged.get("networks") or {},
        "variables": dict(env),
        "unset_variables": sorted(env.missing),
        "inactive": inactive,
    }


def _resolve_extends(name: str, svc: t.Any, data: dict[str, t.Any], path: str, env: dict[str, str],
                     seen: set[tuple[str, str]]) -> dict[str, t.Any]:
    if not isinstance(svc, dict):
        return svc
    ext = svc.get("extends")
    if not ext:
        return svc
    if isinstance(ext, str):
        ext = {"service": ext}
    if not isinstance(ext, dict) or not ext.get("service"):
        raise ComposeError(f"service {name}: extends: needs a 'service'")
    base_path = path
    base_data = data
    if ext.get("file"):
        base_path = os.path.join(os.path.dirname(os.path.abspath(path)), ext["file"])
        base_data = interpolate(_read_yaml(base_path), env)
    key = (os.path.abspath(base_path), ext["service"])
    if key in seen:
        raise ComposeError(f"service {name}: extends: circular reference to {ext['service']}")
    base = (base_data.get("services") or {}).get(ext["service"])
    if base is None:
        raise ComposeError(f"service {name}: extends: service {ext['service']} not found in {base_path}")
    base = _resolve_extends(ext["service"], base, base_data, base_path, env, seen | {key})
    base = {k: v for k, v in base.items() if k not in ("depends_on", "volumes_from", "links")}
    own = {k: v for k, v in svc.items() if k != "extends"}
    return _merge(base, own)
