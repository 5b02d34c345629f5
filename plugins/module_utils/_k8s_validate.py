"""Offline validation of rendered Kubernetes manifests.

Three checks, all without a cluster:

1. Core kinds against the Kubernetes OpenAPI schemas shipped by ``kubernetes-validate``
   (strict mode: a misspelled field is an error, not silently ignored).
2. Custom resources (HelmChart, HelmChartConfig, Certificate, ClusterIssuer, ClusterPolicy, ...)
   against the ``openAPIV3Schema`` of their CustomResourceDefinition, loaded from CRD files in
   the schema directories (the collection ships them in ``specs/k8s/``).
3. Helm values set through a K3s ``HelmChart``/``HelmChartConfig`` (``valuesContent``, ``values``,
   ``set``) against the chart's default ``values.yaml`` (``<chart>-values-<version>.yaml`` in the
   schema directories): every key path that is set must exist in the defaults, unless the
   defaults leave that map open (an empty map, a list or null).

Kinds with no schema anywhere are reported as warnings, never silently passed.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import typing as t
import urllib.parse

from ansible_collections.sophia.migrate.plugins.module_utils._files import atomic_write

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the modules
    yaml = None  # type: ignore[assignment]
    HAS_YAML = False

try:
    import kubernetes_validate
    import kubernetes_validate.utils
    from referencing import Registry, Resource

    HAS_KUBERNETES_VALIDATE = True
except ImportError:  # pragma: no cover - reported by callers
    kubernetes_validate = None  # type: ignore[assignment]
    HAS_KUBERNETES_VALIDATE = False

try:
    import jsonschema

    HAS_JSONSCHEMA = True
except ImportError:  # pragma: no cover
    jsonschema = None  # type: ignore[assignment]
    HAS_JSONSCHEMA = False

DEFAULT_K8S_VERSION = "1.31"
_VALUES_FILE = re.compile(r"^(?P<chart>.+)-values-v?(?P<version>[0-9][^/]*)\.ya?ml$")
# HelmChartConfig objects name the chart they configure; K3s' bundled charts have no values file here.
_BUNDLED_CHARTS = {"traefik", "traefik-crd", "coredns", "local-storage", "metrics-server"}


class ManifestError(Exception):
    """A manifest file that cannot be read or parsed."""


# Core-kind validators, built once per process: kubernetes_validate.validate() re-reads and re-parses the kind's
# schema and the 1.3 MB _definitions.json for every object and lists its version directories each time, which
# was 80 % of compose_to_k8s's time. Same schemas, same version choice, same first error as that function.
# A kind validated often in one process is then built with its references to _definitions.json put in place (see
# _inline): a reference lookup per field was a third of the validation time left. Building costs about as much as
# those lookups on INLINE_AFTER objects, so a process validating a few objects (one small project) never pays it.
INLINE_AFTER = 32
_SCHEMA_DIRS: dict[tuple[str, bool], str] = {}
_DEFINITIONS: dict[str, t.Any] = {}
_INLINED: dict[str, dict[str, t.Any]] = {}  # per schema directory: definitions already put in place, by URI
_CORE_VALIDATORS: dict[tuple[str, str, str], t.Any] = {}
_VALIDATED: dict[tuple[str, str, str], int] = {}  # objects per kind so far, until its schema is built in place
_REGISTRIES: dict[tuple[str, str, str], t.Any] = {}  # the kind's registry, until its schema is built in place
_CHECKED_VERSIONS: set[str] = set()
_VERSIONS: dict[str, list[str]] = {}
LOADS: dict[str, int] = {}  # schema files read and parsed per process, by file name (tests, benchmarks)

# Keywords that only annotate (no validator acts on them): dropped from the built schemas.
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
_SUBSCHEMA = ("items", "additionalProperties", "additionalItems", "not", "contains", "propertyNames", "if", "then",
              "else", "unevaluatedItems", "unevaluatedProperties")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")


# A built schema (references in place) is kept on disk, so a new process validates its first object of a kind at
# the built speed instead of parsing the 1.3 MB _definitions.json and resolving references field by field (about
# 28 ms of the 35 a one-file compose_to_k8s run spent). The directory: $SOPHIA_MIGRATE_SCHEMA_CACHE ("off" turns
# it off), else $XDG_CACHE_HOME/sophia-migrate/k8s-schemas, else ~/.cache/sophia-migrate/k8s-schemas, as
# kubernetes.core keeps its discovery cache under ~/.kube/cache. One file per kind, named by a hash of what the
# schema is built from (this format, kubernetes-validate's version, the schema directory, the kind), so a new
# kubernetes-validate or a new build never reads an old file. A file that is not ours (another owner, writable by
# group or others, a link), unreadable or corrupt is ignored and rebuilt; a cache that cannot be written is skipped:
# the cache never changes a result and never fails a run. Only schemas with no reference left are kept (a
# recursive type keeps its references, which need the registry of _definitions.json).
CACHE_ENV = "SOPHIA_MIGRATE_SCHEMA_CACHE"
CACHE_FORMAT = 1


def cache_dir() -> str | None:
    """The schema cache directory, or None when it is turned off."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "false", "no") else configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sophia-migrate", "k8s-schemas")


def _cache_path(schema_dir: str, api_version: str, kind: str) -> str | None:
    directory = cache_dir()
    if not directory:
        return None
    made_from = [CACHE_FORMAT, getattr(kubernetes_validate, "__version__", "?"), schema_dir, api_version, kind]
    name = hashlib.sha256(json.dumps(made_from).encode()).hexdigest()[:40]
    return os.path.join(directory, f"{kind.lower()}-{name}.json")


def _cache_read(path: str) -> dict[str, t.Any] | None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None  # someone else could have written it: not trusted
        try:
            data = json.load(handle)
        except (ValueError, UnicodeDecodeError, RecursionError, OSError):
            return None
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT or not isinstance(data.get("schema"), dict):
        return None
    LOADS["(cache)"] = LOADS.get("(cache)", 0) + 1
    return data["schema"]


def _cache_write(path: str, schema: dict[str, t.Any]) -> None:
    text = json.dumps({"format": CACHE_FORMAT, "schema": schema}, separators=(",", ":"))
    if '"$ref"' in text:
        return
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        atomic_write(path, text, 0o600)
    except OSError:
        pass


def _annotation(keyword: str) -> bool:
    return keyword in ("description", "title", "examples", "$comment") or keyword.startswith("x-kubernetes-")


def clear_cache() -> None:
    """Forget every loaded core schema (tests; a benchmark of a fresh process's cost)."""
    _SCHEMA_DIRS.clear()
    _DEFINITIONS.clear()
    _INLINED.clear()
    _CORE_VALIDATORS.clear()
    _VALIDATED.clear()
    _REGISTRIES.clear()
    _CHECKED_VERSIONS.clear()
    _VERSIONS.clear()
    LOADS.clear()


def _versions() -> list[str]:
    """kubernetes-validate's schema versions, oldest first, listed once per process (each listing walks the
    package's directory; its latest_version() lists it again)."""
    if "all" not in _VERSIONS:
        _VERSIONS["all"] = kubernetes_validate.utils.all_versions()
    return _VERSIONS["all"]


def _schema_contents(filename: str, k8s_version: str) -> t.Any:
    LOADS[os.path.basename(filename)] = LOADS.get(os.path.basename(filename), 0) + 1
    return kubernetes_validate.utils.schema_contents(filename, k8s_version)


_join = functools.lru_cache(maxsize=4096)(urllib.parse.urljoin)  # the same few bases and references over and over


def _inline(node: t.Any, resolver: t.Any, base: str, active: set[str], done: dict[str, t.Any]) -> t.Any:
    """``node`` with each ``$ref`` (that has only annotations beside it) replaced by the schema it names, resolved
    through ``resolver`` (the same registry the validator gets) and annotations dropped. A reference back into a
    schema being inlined (recursive types such as JSONSchemaProps) stays a reference, made absolute, so the
    validator resolves it as before. Validation results and errors do not change: the same keywords apply to the
    same instance locations, in the same order."""
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$id"), str):
        base = _join(base, node["$id"])
    ref = node.get("$ref")
    if isinstance(ref, str) and all(k == "$ref" or _annotation(k) for k in node):
        uri = _join(base, ref)
        if uri in done:
            return done[uri]
        if uri in active:
            return {"$ref": uri}
        resolved = resolver.lookup(uri)
        active.add(uri)
        done[uri] = _inline(resolved.contents, resolved.resolver, uri.split("#", 1)[0], active, done)
        active.discard(uri)
        return done[uri]
    out: dict[str, t.Any] = {}
    for key, value in node.items():
        if _annotation(key):
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = _join(base, value)
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _inline(sub, resolver, base, active, done) for name, sub in value.items()}
        elif key in _SUBSCHEMA:
            out[key] = _inline(value, resolver, base, active, done)
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            out[key] = [_inline(sub, resolver, base, active, done) for sub in value]
        else:
            out[key] = value
    return out


def _schema_dir(k8s_version: str, strict: bool) -> str:
    """kubernetes-validate's schema directory for ``k8s_version``: the newest version not newer than it."""
    key = (k8s_version, strict)
    if key not in _SCHEMA_DIRS:
        utils = kubernetes_validate.utils
        desired = utils.major_minor(k8s_version[1:] if k8s_version.startswith("v") else k8s_version)
        versions = _versions()
        older = [v for v in versions if utils.major_minor(v) <= desired]  # kubernetes-validate compares this way
        if desired > versions[-1] or not older:
            raise ManifestError(f"k8s_version {k8s_version}: kubernetes-validate has schemas for Kubernetes "
                                f"{utils.major_minor(versions[0])} to {utils.major_minor(versions[-1])} only")
        _SCHEMA_DIRS[key] = f"v{older[-1]}-local" + ("-strict" if strict else "")
    return _SCHEMA_DIRS[key]


def _core_validator(api_version: str, kind: str, k8s_version: str, strict: bool) -> t.Any:
    """A Draft 2020-12 validator of ``kind`` (cached), or None when kubernetes-validate has no schema for it.
    Each call counts one object; at the INLINE_AFTER-th the kind's validator is rebuilt with references in place."""
    schema_dir = _schema_dir(k8s_version, strict)
    key = (schema_dir, api_version, kind)
    cache = None
    if key not in _CORE_VALIDATORS:
        cache = _cache_path(schema_dir, api_version, kind)
        built = _cache_read(cache) if cache else None
        if built is not None:
            _CORE_VALIDATORS[key] = jsonschema.validators.Draft202012Validator(built)
            return _CORE_VALIDATORS[key]
        group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)  # rbac.authorization.k8s.io/v1 -> rbac-v1
        try:
            schema = _schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group}.json", k8s_version)
        except FileNotFoundError:
            _CORE_VALIDATORS[key] = None
            return None
        if schema_dir not in _DEFINITIONS:
            _DEFINITIONS[schema_dir] = Resource.from_contents(
                _schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", k8s_version))
        registry = _DEFINITIONS[schema_dir] @ (Resource.from_contents(schema) @ Registry())
        _CORE_VALIDATORS[key] = jsonschema.validators.Draft202012Validator(schema, registry=registry)
        _VALIDATED[key], _REGISTRIES[key] = 0, registry
    if key in _VALIDATED:
        _VALIDATED[key] += 1
        if _VALIDATED[key] >= INLINE_AFTER or cache:  # with a disk cache, built once per machine
            del _VALIDATED[key]
            registry, schema = _REGISTRIES.pop(key), _CORE_VALIDATORS[key].schema
            base = schema.get("$id", "") if isinstance(schema, dict) else ""
            # the definitions put in place are shared by the kinds of a version (a PodSpec is built once)
            built = _inline(schema, registry.resolver(base_uri=base), base, set(), _INLINED.setdefault(schema_dir, {}))
            _CORE_VALIDATORS[key] = jsonschema.validators.Draft202012Validator(built, registry=registry)
            if cache:
                _cache_write(cache, built)
    return _CORE_VALIDATORS[key]


class Schemas:
    """CRD schemas and chart default values found in a list of directories."""

    def __init__(self, dirs: t.Iterable[str] = ()):
        self.crds: dict[tuple[str, str], dict[str, t.Any]] = {}
        self.values: dict[str, dict[str, dict[str, t.Any]]] = {}
        self.values_files: dict[tuple[str, str], str] = {}
        self._crd_validators: dict[tuple[str, str], t.Any] = {}
        for directory in dirs:
            if not directory or not os.path.isdir(directory):
                continue
            for path in sorted(glob.glob(os.path.join(directory, "*.y*ml"))):
                name = os.path.basename(path)
                match = _VALUES_FILE.match(name)
                if match:
                    self.values_files[(match["chart"], match["version"])] = path
                    continue
                for doc in _load_yaml_docs(path):
                    if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                        self._add_crd(doc)

    def _add_crd(self, crd: dict[str, t.Any]) -> None:
        spec = crd.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        for version in spec.get("versions") or []:
            schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
            if group and kind and schema:
                self.crds[(f"{group}/{version['name']}", kind)] = schema

    def crd_validator(self, key: tuple[str, str]) -> t.Any:
        """The Draft 7 validator of a custom resource's schema, built once per ``Schemas``."""
        if key not in self._crd_validators:
            self._crd_validators[key] = jsonschema.Draft7Validator(self.crds[key])
        return self._crd_validators[key]

    def chart_values(self, chart: str, version: str | None = None) -> tuple[dict[str, t.Any] | None, str]:
        """Default values of ``chart`` (exact version when given and known, else none)."""
        candidates = {v: p for (c, v), p in self.values_files.items() if c == chart}
        if not candidates:
            return None, ""
        key = (version or "").lstrip("v")
        path = candidates.get(key) or candidates.get(version or "")
        if path is None:
            if version:
                known = ", ".join(sorted(candidates))
                return None, f"no default values for chart {chart} version {version} (have {known})"
            path = candidates[sorted(candidates)[-1]]
        if path not in self.values:
            docs = _load_yaml_docs(path)
            self.values[path] = docs[0] if docs and isinstance(docs[0], dict) else {}
        return self.values[path], ""


def _load_yaml_docs(path: str) -> list[t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [d for d in yaml.safe_load_all(handle) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot parse YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path}: cannot parse YAML: not UTF-8 text") from exc
    except RecursionError as exc:
        raise ManifestError(f"{path}: cannot parse YAML: nested too deeply") from exc


def load_manifest_files(paths: t.Iterable[str]) -> list[tuple[str, dict[str, t.Any]]]:
    """(file, document) pairs from files and directories (``*.yaml``/``*.yml``, sorted)."""
    out: list[tuple[str, dict[str, t.Any]]] = []
    for path in paths:
        files = sorted(glob.glob(os.path.join(path, "**", "*.y*ml"), recursive=True)) if os.path.isdir(path) else [path]
        if os.path.isdir(path) is False and not os.path.exists(path):
            raise ManifestError(f"{path}: no such file or directory")
        for name in files:
            for doc in _load_yaml_docs(name):
                if not isinstance(doc, dict):
                    raise ManifestError(f"{name}: a manifest must be a mapping, got {type(doc).__name__}")
                if doc.get("kind") == "List":
                    out.extend((name, item) for item in doc.get("items") or [])
                else:
                    out.append((name, doc))
    return out


def _where(doc: dict[str, t.Any]) -> str:
    meta = doc.get("metadata") or {}
    ns = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{doc.get('kind', '?')} {ns}{meta.get('name', '?')}"


def _path(parts: t.Iterable[t.Any]) -> str:
    return ".".join(str(p) for p in parts) or "(root)"


def unknown_value_keys(values: t.Any, defaults: t.Any, prefix: str = "") -> list[str]:
    """Key paths in ``values`` that the chart's defaults do not have."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    problems = []
    for key, value in values.items():
        here = f"{prefix}.{key}" if prefix else str(key)
        if key not in defaults:
            problems.append(here)
        else:
            problems.extend(unknown_value_keys(value, defaults[key], here))
    return problems


def _set_to_tree(flat: dict[str, t.Any]) -> dict[str, t.Any]:
    tree: dict[str, t.Any] = {}
    for dotted, value in flat.items():
        node = tree
        parts = re.split(r"(?<!\\)\.", dotted)
        for raw in parts[:-1]:
            part = re.sub(r"\[\d+\]$", "", raw)
            node = node.setdefault(part.replace("\\.", "."), {})
            if not isinstance(node, dict):
                break
        else:
            node[re.sub(r"\[\d+\]$", "", parts[-1]).replace("\\.", ".")] = value
    return tree


def helm_values(doc: dict[str, t.Any]) -> tuple[dict[str, t.Any], list[str]]:
    """The values a HelmChart/HelmChartConfig sets, merged (valuesContent < values < set)."""
    spec = doc.get("spec") or {}
    errors: list[str] = []
    merged: dict[str, t.Any] = {}
    content = spec.get("valuesContent")
    if content:
        try:
            parsed = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            errors.append(f"{_where(doc)}: spec.valuesContent is not valid YAML: {exc}")
            parsed = None
        if parsed is not None and not isinstance(parsed, dict):
            errors.append(f"{_where(doc)}: spec.valuesContent must be a mapping")
        elif parsed:
            merged.update(parsed)
    for source in (spec.get("values") or {}, _set_to_tree(spec.get("set") or {})):
        _deep_merge(merged, source)
    return merged, errors


def _deep_merge(into: dict[str, t.Any], other: dict[str, t.Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


def validate_document(doc: dict[str, t.Any], schemas: Schemas, k8s_version: str = DEFAULT_K8S_VERSION,
                      strict: bool = True) -> tuple[list[str], list[str]]:
    """Validate one manifest. Returns (errors, warnings)."""
    errors: list[str] = []
    warnings: list[str] = []
    where = _where(doc)
    if not doc.get("apiVersion") or not doc.get("kind"):
        return [f"{where}: apiVersion and kind are required"], []
    if not (doc.get("metadata") or {}).get("name"):
        errors.append(f"{where}: metadata.name is required")
    key = (doc["apiVersion"], doc["kind"])
    if key in schemas.crds:
        if not HAS_JSONSCHEMA:
            raise ManifestError("the Python library 'jsonschema' is required to validate custom resources")
        validator = schemas.crd_validator(key)
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
            errors.append(f"{where}: {_path(err.absolute_path)}: {err.message}")
    else:
        if not HAS_KUBERNETES_VALIDATE:
            raise ManifestError("the Python library 'kubernetes-validate' is required")
        try:
            validator = _core_validator(str(doc["apiVersion"]), str(doc["kind"]), k8s_version, strict)
            if validator is None:
                warnings.append(f"{where}: no schema for {doc['apiVersion']}/{doc['kind']} (not validated)")
            else:
                validator.validate(doc)  # raises the first error, as kubernetes_validate.validate does
        except jsonschema.ValidationError as exc:
            # path and message only: str(exc) would pretty-print the whole (built) schema and the instance
            errors.append(f"{where}: {_path(exc.absolute_path)}: {exc.message}")
        except kubernetes_validate.InvalidSchemaError as exc:  # pragma: no cover - library data problem
            warnings.append(f"{where}: schema problem in kubernetes-validate: {exc}")
    if doc["kind"] in ("HelmChart", "HelmChartConfig") and doc["apiVersion"].startswith("helm.cattle.io/"):
        values, problems = helm_values(doc)
        errors.extend(problems)
        spec = doc.get("spec") or {}
        chart = spec.get("chart") if doc["kind"] == "HelmChart" else (doc.get("metadata") or {}).get("name")
        chart = os.path.basename(str(chart or "")).removesuffix(".tgz")
        defaults, note = schemas.chart_values(chart, spec.get("version") if doc["kind"] == "HelmChart" else None)
        if defaults is None:
            if values and chart not in _BUNDLED_CHARTS:
                warnings.append(f"{where}: {note or f'no default values for chart {chart}'}; values keys not checked")
        else:
            for key_path in unknown_value_keys(values, defaults):
                errors.append(f"{where}: chart {chart} has no value '{key_path}' (not in its default values.yaml)")
    return errors, warnings


def check_version(k8s_version: t.Any) -> None:
    """Raise ManifestError unless kubernetes-validate has schemas for ``k8s_version`` (it raises IndexError or
    its own VersionNotSupportedError otherwise)."""
    if not isinstance(k8s_version, str) or not re.fullmatch(r"v?\d{1,3}\.\d{1,3}(\.\d{1,3})?", k8s_version):
        raise ManifestError(f"k8s_version {str(k8s_version)[:80]!r} is not a Kubernetes version like 1.31")
    if not HAS_KUBERNETES_VALIDATE or k8s_version in _CHECKED_VERSIONS:
        return  # checked once per process: all_versions() lists the package's directories each time
    utils = kubernetes_validate.utils
    wanted, versions = utils.major_minor(k8s_version.lstrip("v")), _versions()
    if wanted > versions[-1] or not [v for v in versions if utils.major_minor(v) <= wanted]:
        raise ManifestError(f"k8s_version {k8s_version!r}: kubernetes-validate has schemas for "
                            f"{versions[0]} to {versions[-1]}")
    _CHECKED_VERSIONS.add(k8s_version)


def validate_documents(docs: t.Iterable[tuple[str, dict[str, t.Any]]], schemas: Schemas,
                       k8s_version: str = DEFAULT_K8S_VERSION, strict: bool = True) -> dict[str, t.Any]:
    """Validate (file, doc) pairs. Returns a summary with errors/warnings prefixed by file."""
    check_version(k8s_version)
    errors: list[str] = []
    warnings: list[str] = []
    count = 0
    kinds: dict[str, int] = {}
    for name, doc in docs:
        count += 1
        kinds[str(doc.get("kind"))] = kinds.get(str(doc.get("kind")), 0) + 1
        errs, warns = validate_document(doc, schemas, k8s_version, strict)
        errors.extend(f"{name}: {e}" for e in errs)
        warnings.extend(f"{name}: {w}" for w in warns)
    return {"documents": count, "kinds": dict(sorted(kinds.items())), "errors": errors, "warnings": warnings,
            "valid": not errors}
