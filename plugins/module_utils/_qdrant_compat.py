"""Can a Qdrant target take a snapshot? Versions, collection configs and the snapshot file's own metadata.

Qdrant recovers snapshots of the same or the previous minor version only, and a snapshot must not replace an
existing collection whose vectors, sparse vectors or shard count differ. What made the snapshot is read from the
snapshot file (``config.json``, ``version.info``) or asked of its source server; a refusal is a ``QdrantError``
that says why.
"""

from __future__ import annotations

import json
import re
import tarfile
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import Endpoint, QdrantError, SnapshotRequest
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_rest import get_collection, server_version


def parse_version(text: str) -> tuple[int, int, int]:
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        raise QdrantError(f"cannot parse Qdrant version {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def version_compatible(source: str, target: str) -> tuple[bool, str]:
    """Qdrant recovers snapshots of the same or the previous minor version only."""
    s, tv = parse_version(source), parse_version(target)
    if s[0] != tv[0]:
        return False, f"target Qdrant {target} and snapshot Qdrant {source} differ in major version"
    if tv[1] < s[1]:
        return False, f"target Qdrant {target} is older than the snapshot's Qdrant {source} (no downgrades)"
    if tv[1] > s[1] + 1:
        return False, (
            f"target Qdrant {target} is more than one minor version ahead of the snapshot's "
            f"Qdrant {source}; upgrade through {s[0]}.{s[1] + 1} first"
        )
    return True, f"target Qdrant {target} accepts snapshots of {source} (same or next minor)"


def _vector_shape(vectors: t.Any) -> dict[str, tuple[t.Any, t.Any, bool]]:
    """{name: (size, distance, multivector)}; the unnamed vector is named ''."""
    if not vectors:
        return {}
    if isinstance(vectors, dict) and "size" in vectors and "distance" in vectors:
        vectors = {"": vectors}
    return {
        name: (v.get("size"), v.get("distance"), bool(v.get("multivector_config")))
        for name, v in vectors.items()
        if isinstance(v, dict)
    }


def _fmt_shape(shape: dict[str, tuple[t.Any, t.Any, bool]]) -> str:
    parts = [
        f"{name or '<unnamed>'}={size} {dist}{' multi' if multi else ''}"
        for name, (size, dist, multi) in sorted(shape.items())
    ]
    return ", ".join(parts) or "none"


def config_conflicts(snapshot_cfg: dict[str, t.Any], target_cfg: dict[str, t.Any], collection: str) -> list[str]:
    """Reasons why a snapshot with ``snapshot_cfg`` must not replace the existing target collection."""
    sp, tp = snapshot_cfg.get("params") or {}, target_cfg.get("params") or {}
    out = []
    sv, tv = _vector_shape(sp.get("vectors")), _vector_shape(tp.get("vectors"))
    if sv != tv:
        out.append(
            f"collection {collection!r}: target vectors [{_fmt_shape(tv)}] differ from the snapshot's "
            f"[{_fmt_shape(sv)}]"
        )
    ss, ts = sorted((sp.get("sparse_vectors") or {}).keys()), sorted((tp.get("sparse_vectors") or {}).keys())
    if ss != ts:
        out.append(f"collection {collection!r}: target sparse vectors {ts} differ from the snapshot's {ss}")
    sn, tn = sp.get("shard_number") or 1, tp.get("shard_number") or 1
    if sn != tn:
        out.append(f"collection {collection!r}: target has {tn} shard(s), the snapshot {sn}")
    return out


def read_snapshot_meta(path: str) -> dict[str, t.Any]:
    """``config.json`` and ``version.info`` from a collection snapshot tar, when present."""
    meta: dict[str, t.Any] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                base = member.name.lstrip("./")
                if base in ("config.json", "version.info") and member.isfile() and member.size < 1 << 20:
                    handle = tar.extractfile(member)
                    if handle is None:
                        continue
                    data = handle.read()
                    if base == "config.json":
                        meta["config"] = json.loads(data)
                    else:
                        meta["version"] = data.decode().strip()
                if len(meta) == 2:
                    break
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise QdrantError(f"{path}: not a readable Qdrant snapshot (tar): {exc}") from exc
    return meta


def target_compatibility(
    ep: Endpoint, http: HttpClient, req: SnapshotRequest, meta: dict[str, t.Any], target: dict[str, t.Any] | None
) -> dict[str, t.Any]:
    """Refuse (QdrantError) when the target cannot take the snapshot; return what was checked."""
    if not req.collection:
        raise QdrantError("a compatibility check needs the collection name")
    checks: dict[str, t.Any] = {"target_version": server_version(ep, http)}
    src_version, src_config = meta.get("version"), meta.get("config")
    if req.source is not None:
        shttp = req.source.http()
        checks["source_version"] = src_version = server_version(req.source, shttp)
        if src_config is None:
            info = get_collection(req.source, shttp, req.source_collection or req.collection)
            if info is None:
                raise QdrantError(
                    f"{req.source.name}: collection {req.source_collection or req.collection!r} "
                    "does not exist; check option 'source_collection'"
                )
            src_config = info.get("config")
    src_version = src_version or req.source_version
    if not src_version:
        raise QdrantError(
            "cannot tell which Qdrant version made the snapshot: give option 'source' (the Qdrant "
            "it came from) or 'source_version', or set check_compatibility=false"
        )
    checks["source_version"] = src_version
    ok, reason = version_compatible(src_version, checks["target_version"])
    checks["version"] = reason
    if not ok:
        raise QdrantError(f"incompatible target {ep.name}: {reason}", compatibility=checks)
    if target is not None:
        if src_config is None:
            raise QdrantError(
                f"collection {req.collection!r} exists on the target and the snapshot's config is "
                "unknown: give option 'source' so the configs can be compared"
            )
        conflicts = config_conflicts(src_config, target.get("config") or {}, req.collection)
        checks["config"] = conflicts or "target collection config matches the snapshot"
        if conflicts:
            raise QdrantError(f"incompatible target {ep.name}: " + "; ".join(conflicts), compatibility=checks)
    else:
        checks["config"] = "target collection does not exist yet; the snapshot creates it"
    return checks
