"""Repository scan for the Fly.io audit: every reference to a Fly app left in the given trees.

``scan_paths`` walks the trees and reports each reference (``*.fly.dev`` and ``.internal``/``.flycast`` host
names, ``registry.fly.io`` images, ``FLY_*`` variables, flyctl in workflows, fly.toml ``app =`` lines) with
file, line, kind, value and the app it names; the Fly configurations that deploy steps name with
``--config`` are read as well. What cannot be read is listed, never a failure; texts taken from the files
are redacted (``_flyio_redact``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing as t

try:
    import tomllib
except ImportError:  # Python < 3.11 on the managed host: a top-level `app =` line is looked for instead
    tomllib = None  # type: ignore[assignment]

from ansible_collections.sophia.migrate.plugins.module_utils._flyio_redact import redact_secrets, shown_text

SCAN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fly_dev_hostname", re.compile(r"\b((?:[a-z0-9-]+\.)*[a-z0-9-]+\.fly\.dev)\b", re.I)),
    ("internal_hostname", re.compile(r"\b((?:[a-z0-9-]+\.)*[a-z0-9-]+\.(?:internal|flycast))\b", re.I)),
    (
        "registry_image",
        re.compile(r"\b(registry\.fly\.io/[A-Za-z0-9._/-]+(?::[A-Za-z0-9._-]+)?(?:@sha256:[0-9a-f]+)?)"),
    ),
    ("fly_variable", re.compile(r"(?<![A-Za-z0-9_])(FLY_[A-Z0-9_]+)")),
    (
        "flyctl",
        re.compile(
            r"(superfly/flyctl-actions[^\s'\"]*|\bflyctl\b[^\n]*|\bfly (?:deploy|apps|secrets|scale|"
            r"ips|certs|volumes|machine)\b[^\n]*)"
        ),
    ),
)
_FLYCTL_APP = re.compile(r"(?:\s-a|\s--app)[\s=]+([a-z0-9][a-z0-9-]*)")
# `flyctl deploy --config fly-danger.toml`, `fly deploy -c deploy/fly.toml`, `--config=...` (also in the args of
# superfly/flyctl-actions); the fly command comes first on the (continuation-joined) line.
_FLYCTL_CONFIG = re.compile(
    r"""(?:\bfly(?:ctl)?\b|\bargs\s*:)[^\n]*?(?<=\s)(?:--config|-c)(?:=|\s+)(["']?)([^\s"';|&)]+)\1""")
_FLY_TOML_APP = re.compile(r"""^\s*app\s*=\s*["']([^"']+)["']""")
NOT_FLY_INTERNAL = ("docker.internal", "containers.internal", "compute.internal", "ec2.internal")
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".tox"})


def _is_binary(path: str, sample: int = 8192) -> bool:
    """A NUL byte in the first ``sample`` bytes makes a file binary; text that is not UTF-8 is still read.

    Raises OSError when the file cannot be read.
    """
    with open(path, "rb") as handle:
        chunk = handle.read(sample)
    return b"\0" in chunk


def _reference_app(kind: str, value: str) -> str | None:
    """The Fly app a reference points at, when it names one."""
    low = value.lower()
    if kind == "fly_dev_hostname":
        return low[: -len(".fly.dev")].rsplit(".", 1)[-1]
    if kind == "internal_hostname":
        parts = low.split(".")
        return parts[-2] if len(parts) >= 2 else None
    if kind == "registry_image":
        rest = value.split("/", 1)[1]
        return rest.split("/", 1)[0].split(":", 1)[0].split("@", 1)[0].lower()
    if kind == "fly_toml_app":
        return low
    if kind == "flyctl":
        m = _FLYCTL_APP.search(value)
        return m.group(1).lower() if m else None
    return None


def _reason(exc: OSError) -> str:
    return f"unreadable: {exc.strerror or exc.__class__.__name__}"


@dataclasses.dataclass
class _Scan:
    """What a scan found so far (``scan_paths`` returns it), and the limits it reads files with."""

    max_file_size: int
    max_line: int
    refs: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    fly_tomls: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    files: int = 0
    notes: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    # (scanned root, workflow, line, config as written)
    named: list[tuple[str, str, int, str]] = dataclasses.field(default_factory=list)
    seen_tomls: set[str] = dataclasses.field(default_factory=set)
    scanned: set[str] = dataclasses.field(default_factory=set)  # files read in the walk

    def walk_error(self, exc: OSError) -> None:
        self.skipped.append({"file": shown_text(str(exc.filename)), "reason": _reason(exc)})

    def walk(self, root_path: str) -> None:
        """Read every file under ``root_path`` (or that file), in name order, skipping SKIP_DIRS."""
        walker = (
            [(os.path.dirname(root_path), [], [os.path.basename(root_path)])]
            if not os.path.isdir(root_path)
            else os.walk(root_path, onerror=self.walk_error)
        )
        for dirpath, dirnames, filenames in walker:
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for fname in sorted(filenames):
                self.read_walked(root_path, os.path.join(dirpath, fname), fname)

    def read_walked(self, root_path: str, path: str, fname: str) -> None:
        """One file found in the walk: its references, its fly.toml, the configurations its deploy steps name."""
        if os.path.islink(path) or not os.path.isfile(path):
            if path == root_path:
                kind = "a symbolic link" if os.path.islink(path) else "not a regular file"
                self.skipped.append({"file": shown_text(path), "reason": f"{kind}, not read"})
            return
        try:
            if os.path.getsize(path) > self.max_file_size:
                self.skipped.append({"file": shown_text(path), "reason": f"larger than {self.max_file_size} bytes"})
                return
            if _is_binary(path):
                self.skipped.append({"file": shown_text(path), "reason": "binary"})
                return
            before = len(self.fly_tomls)
            found = _scan_file(path, fname, self.fly_tomls, self.max_line, notes=self.notes)
            if len(self.fly_tomls) > before:
                self.seen_tomls.add(os.path.realpath(path))
            self.scanned.add(os.path.realpath(path))
            if _is_workflow(path):
                self.named.extend((root_path, path, line, cfg) for line, cfg in _workflow_configs(path))
        except OSError as exc:
            self.skipped.append({"file": shown_text(path), "reason": _reason(exc)})
            return
        self.files += 1
        self.refs.extend(found)

    def read_named(self, root_path: str, workflow: str, line: int, config: str) -> None:
        """The Fly configuration a deploy step of ``workflow`` names (``--config``), read as a fly.toml."""
        where = f"{shown_text(workflow)}:{line}"
        if "$" in config or "{{" in config:
            self.notes.append({"file": shown_text(workflow), "line": line, "reason": (
                f"the Fly configuration of a deploy step is named by a variable ({redact_secrets(config)}); "
                "not resolved, scan that file by its path")})
            return
        target = _config_path(root_path, workflow, config)
        if target is None:
            self.notes.append({"file": shown_text(workflow), "line": line, "reason": (
                f"the Fly configuration {redact_secrets(config)} named in the deploy step lies outside the scanned "
                "tree; not read")})
            return
        if os.path.realpath(target) in self.seen_tomls:
            return
        if not os.path.isfile(target) or os.path.islink(target):
            self.notes.append({"file": shown_text(workflow), "line": line, "reason": (
                f"the Fly configuration {redact_secrets(config)} named in the deploy step ({where}) was not found "
                f"in the tree ({shown_text(target)})")})
            return
        self.seen_tomls.add(os.path.realpath(target))
        try:
            if os.path.getsize(target) > self.max_file_size or _is_binary(target):
                self.skipped.append({"file": shown_text(target),
                                     "reason": f"larger than {self.max_file_size} bytes or binary"})
                return
            found = _scan_file(target, os.path.basename(target), self.fly_tomls, self.max_line, notes=self.notes,
                               named_in=where)
        except OSError as exc:
            self.skipped.append({"file": shown_text(target), "reason": _reason(exc)})
            return
        if os.path.realpath(target) in self.scanned:  # read as text in the walk: only its app = line is new
            found = [r for r in found if r["kind"] in ("fly_toml_app", "fly_toml")]
        else:
            self.files += 1
        self.refs.extend(found)


def scan_paths(paths: list[str], max_file_size: int = 2_000_000, max_line: int = 300) -> dict[str, t.Any]:
    """Fly references in the given trees: each with file, line, kind, value and the app it names.

    Nothing raises for what is found in a tree: a file or directory that cannot be read is listed in ``skipped``
    with the reason ``unreadable: ...`` (the scan is then incomplete), binary files and files larger than
    ``max_file_size`` with theirs. Texts taken from the files are redacted (redact_secrets).
    """
    scan = _Scan(max_file_size, max_line)
    missing = [shown_text(p) for p in paths if not os.path.lexists(p)]
    for root_path in paths:
        if not os.path.lexists(root_path):
            continue
        scan.walk(root_path)
    for root_path, workflow, line, config in scan.named:
        scan.read_named(root_path, workflow, line, config)
    return {
        "references": scan.refs,
        "fly_tomls": scan.fly_tomls,
        "files_scanned": scan.files,
        "skipped": scan.skipped,
        "missing_paths": missing,
        "apps_referenced": sorted({r["app"] for r in scan.refs if r.get("app")}),
        "notes": scan.notes,
    }


def _is_workflow(path: str) -> bool:
    return f"{os.sep}.github{os.sep}workflows{os.sep}" in path


def _workflow_configs(path: str) -> list[tuple[int, str]]:
    """(line, config path as written) of each fly deploy step of a workflow that names its configuration."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    found: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        start, text = i, lines[i]
        while text.rstrip().endswith("\\") and i + 1 < len(lines):  # shell line continuations
            i += 1
            text = text.rstrip()[:-1] + " " + lines[i].strip()
        for m in _FLYCTL_CONFIG.finditer(text):
            found.append((start + 1, m.group(2)))
        i += 1
    return found


def _config_path(root_path: str, workflow: str, config: str) -> str | None:
    """The file a workflow's ``--config`` names: relative to the checkout holding .github (the step's default
    working directory); None when it lies outside the scanned tree."""
    checkout = workflow.split(f"{os.sep}.github{os.sep}workflows{os.sep}", 1)[0]
    target = os.path.normpath(os.path.join(checkout, config))
    base = os.path.normpath(root_path if os.path.isdir(root_path) else os.path.dirname(root_path))
    if not os.path.isdir(root_path):
        base = checkout
    if target != base and not target.startswith(base.rstrip(os.sep) + os.sep):
        return None
    return target


def _toml_app(path: str, notes: list[dict[str, t.Any]]) -> bool:
    """Whether a ``*.toml`` file not named fly*.toml is a Fly configuration (a top-level ``app = "..."``).

    A file that is not UTF-8 or not TOML is not one; it is noted, never a failure.
    """
    with open(path, "rb") as handle:
        raw = handle.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        notes.append({"file": shown_text(path), "line": None,
                      "reason": f"not UTF-8 (byte {exc.start}), not read as a Fly configuration"})
        return False
    if tomllib is None:
        for line in text.splitlines():
            if line.lstrip().startswith("["):
                return False
            if _FLY_TOML_APP.match(line):
                return True
        return False
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        notes.append({"file": shown_text(path), "line": None,
                      "reason": f"not valid TOML ({redact_secrets(str(exc))}), not read as a Fly configuration"})
        return False
    return isinstance(data.get("app"), str)


def unreadable(scan: dict[str, t.Any]) -> list[str]:
    """Files and directories of a scan that could not be read."""
    return [
        str(s.get("file"))
        for s in scan.get("skipped") or []
        if isinstance(s, dict) and str(s.get("reason", "")).startswith("unreadable")
    ]


def _scan_file(path: str, fname: str, fly_tomls: list[dict[str, t.Any]], max_line: int,
               notes: list[dict[str, t.Any]] | None = None, named_in: str = "") -> list[dict[str, t.Any]]:
    out: list[dict[str, t.Any]] = []
    tomls: list[dict[str, t.Any]] = []
    is_toml = bool(named_in) or fname == "fly.toml" or (fname.startswith("fly.") and fname.endswith(".toml"))
    if not is_toml and fname.endswith(".toml"):
        is_toml = _toml_app(path, notes if notes is not None else [])
    is_workflow = _is_workflow(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        for lineno, line in enumerate(handle, 1):
            text = line.rstrip("\n")
            seen: set[tuple[str, str]] = set()
            if is_toml:
                m = _FLY_TOML_APP.match(text)
                if m:
                    tomls.append({"file": shown_text(path), "line": lineno, "app": redact_secrets(m.group(1)),
                                  **({"named_in": named_in} if named_in else {})})
                    out.append(_ref(path, lineno, "fly_toml_app", m.group(1), text, max_line))
            for kind, pattern in SCAN_PATTERNS:
                if kind == "flyctl" and not is_workflow:
                    continue
                for m in pattern.finditer(text):
                    value = m.group(1).strip()
                    if (kind, value) in seen or (
                        kind == "internal_hostname" and value.lower().endswith(NOT_FLY_INTERNAL)
                    ):
                        continue
                    seen.add((kind, value))
                    out.append(_ref(path, lineno, kind, value, text, max_line))
    if is_toml and not any(r["kind"] == "fly_toml_app" for r in out):
        tomls.append({"file": shown_text(path), "line": None, "app": None,
                      **({"named_in": named_in} if named_in else {})})
        out.append(_ref(path, 1, "fly_toml", "", "fly.toml without app =", max_line))
    fly_tomls.extend(tomls)  # only once the whole file was read
    return out


def _ref(path: str, line: int, kind: str, value: str, text: str, max_line: int) -> dict[str, t.Any]:
    """One reference; ``value`` and ``text`` are redacted (the app is read from the value before)."""
    shown = shown_text(path)
    return {
        "file": shown,
        "line": line,
        "location": f"{shown}:{line}",
        "kind": kind,
        "value": redact_secrets(value),
        "app": _reference_app(kind, value) if value else None,
        "text": redact_secrets(text.strip())[:max_line],
    }
