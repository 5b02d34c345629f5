"""The proof of equality of sophia.migrate.qdrant_compare: two collections, on two Qdrant servers, compared.

qdrant-client (``_qdrant_client``) reads both sides: config diff, exact count, an order-independent content digest
over ids + vectors + payload (scrolling both sides in id order in batches, merge-joined, so differing point ids are
named), and search parity on sampled vectors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import queue
import random
import threading
import time
import typing as t
import uuid

from ansible_collections.sophia.migrate.plugins.module_utils._qdrant import Endpoint
from ansible_collections.sophia.migrate.plugins.module_utils._qdrant_client import (
    import_qdrant_client,
    make_client,
    qc_call,
)

DEFAULT_CONFIG_KEYS = (
    "params.vectors",
    "params.sparse_vectors",
    "params.shard_number",
    "params.sharding_method",
    "quantization_config",
)


def _plain(obj: t.Any) -> t.Any:
    if hasattr(obj, "model_dump"):
        return _plain(obj.model_dump(mode="json", exclude_none=True))
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _canon(obj: t.Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode()


def id_key(pid: t.Any) -> tuple[int, t.Any]:
    """Qdrant orders numeric ids before UUIDs; UUIDs by their 128-bit value (= canonical hex order)."""
    if isinstance(pid, int):
        return (0, pid)
    try:
        return (1, uuid.UUID(str(pid)).int)
    except ValueError:
        return (2, str(pid))


def _get(d: dict[str, t.Any], dotted: str) -> t.Any:
    cur: t.Any = d
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def config_diff(src: dict[str, t.Any], tgt: dict[str, t.Any], keys: t.Sequence[str]) -> list[dict[str, t.Any]]:
    out = []
    for key in keys:
        a, b = _get(src, key), _get(tgt, key)
        if key.endswith("shard_number"):
            a, b = a or 1, b or 1
        if (a or None) != (b or None):
            out.append({"key": key, "source": a, "target": b})
    return out


class _Side:
    """Scroll one collection in id order, in batches, computing the order-independent digest.

    The pages are fetched by a background thread, at most ``depth`` pages ahead, so the two sides of a
    comparison are read at the same time and hashing overlaps the network (the compare runs inside the
    write freeze; memory stays bounded by ``depth`` pages per side)."""

    def __init__(self, ep: Endpoint, client: t.Any, collection: str, batch: int, depth: int = 2) -> None:
        self.ep, self.client, self.collection, self.batch = ep, client, collection, batch
        self.depth = depth
        self.digest = 0
        self.count = 0
        self.ordered = True
        self._last: tuple[int, t.Any] | None = None

    def _fetch(self, pages: queue.Queue[t.Any], halt: threading.Event) -> None:
        offset = None
        try:
            while not halt.is_set():
                records, offset = qc_call(
                    self.ep,
                    f"scrolling collection {self.collection!r}",
                    self.client.scroll,
                    collection_name=self.collection,
                    limit=self.batch,
                    offset=offset,
                    with_payload=True,
                    with_vectors=True,
                )
                _put(pages, ("page", records), halt)
                if offset is None:
                    break
            _put(pages, ("end", None), halt)
        except Exception as exc:  # handed to the reading thread, which raises it
            _put(pages, ("error", exc), halt)

    def pages(self) -> t.Iterator[t.Any]:
        pages: queue.Queue[t.Any] = queue.Queue(maxsize=self.depth)
        halt = threading.Event()
        worker = threading.Thread(target=self._fetch, args=(pages, halt), name=f"scroll-{self.ep.name}", daemon=True)
        worker.start()
        try:
            while True:
                kind, value = pages.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            halt.set()

    def points(self) -> t.Iterator[tuple[t.Any, bytes, t.Any, t.Any]]:
        for records in self.pages():
            for rec in records:
                vector, payload = _plain(rec.vector), _plain(rec.payload) or {}
                digest = hashlib.sha256(_canon([rec.id, vector, payload])).digest()
                self.digest = (self.digest + int.from_bytes(digest, "big")) % (1 << 256)
                self.count += 1
                key = id_key(rec.id)
                if self._last is not None and key <= self._last:
                    self.ordered = False
                self._last = key
                yield rec.id, digest, vector, payload


def _put(pages: queue.Queue[t.Any], item: tuple[str, t.Any], halt: threading.Event) -> None:
    """Put ``item``, giving up when the reader has stopped reading (``halt``)."""
    while not halt.is_set():
        try:
            pages.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


def _describe(a: tuple[t.Any, ...], b: tuple[t.Any, ...]) -> dict[str, t.Any]:
    problems = []
    if a[2] != b[2]:
        problems.append("vector differs")
    if a[3] != b[3]:
        keys = sorted(k for k in set(a[3]) | set(b[3]) if a[3].get(k) != b[3].get(k))
        problems.append(f"payload differs in {keys[:10]}")
    return {"id": a[0], "problem": "; ".join(problems) or "content differs"}


def _first_vector(vector: t.Any, name: str | None) -> tuple[str | None, t.Any]:
    if isinstance(vector, list):
        return None, vector
    if isinstance(vector, dict):
        names = [name] if name else sorted(k for k, v in vector.items() if isinstance(v, list))
        for n in names:
            if isinstance(vector.get(n), list):
                return n, vector[n]
    return None, None


def _search_groups(points: list[t.Any]) -> list[tuple[float, frozenset[t.Any]]]:
    groups: list[tuple[float, set[t.Any]]] = []
    for p in points:
        score = round(float(p.score), 5)
        if groups and groups[-1][0] == score:
            groups[-1][1].add(p.id)
        else:
            groups.append((score, {p.id}))
    return [(s, frozenset(ids)) for s, ids in groups]


def search_equal(a: list[t.Any], b: list[t.Any]) -> bool:
    """Same ranking, allowing ties (equal scores) in any order; the last tie group may be cut by the limit."""
    if [p.id for p in a] == [p.id for p in b]:
        return True
    ga, gb = _search_groups(a), _search_groups(b)
    if len(ga) != len(gb) or [s for s, _u1 in ga] != [s for s, _u2 in gb] or len(a) != len(b):
        return False
    return all(x == y for (_u1, x), (_u2, y) in zip(ga[:-1], gb[:-1], strict=True))


@dataclasses.dataclass
class CompareOptions:
    collection: str
    target_collection: str | None = None
    batch_size: int = 256
    max_differences: int = 20
    search_samples: int = 10
    search_limit: int = 10
    search_exact: bool = True
    vector_name: str | None = None
    seed: int = 0
    config_keys: t.Sequence[str] = DEFAULT_CONFIG_KEYS


@dataclasses.dataclass
class _Tally:
    """What the merge-join of the two sides found, and the query vectors sampled from the source (a reservoir)."""

    opts: CompareOptions
    rng: random.Random
    differing: int = 0
    missing: int = 0
    extra: int = 0
    seen: int = 0
    differences: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    samples: list[tuple[t.Any, str | None, t.Any]] = dataclasses.field(default_factory=list)

    def room(self) -> bool:
        """Whether one more difference is listed (at most ``max_differences``; the rest are only counted)."""
        return len(self.differences) < self.opts.max_differences

    def sample(self, point: tuple[t.Any, ...]) -> None:
        """Keep ``point``'s vector as a search query, each source point with the same chance."""
        name, vec = _first_vector(point[2], self.opts.vector_name)
        if vec is not None and self.opts.search_samples > 0:
            self.seen += 1
            if len(self.samples) < self.opts.search_samples:
                self.samples.append((point[0], name, vec))
            else:
                j = self.rng.randrange(self.seen)
                if j < self.opts.search_samples:
                    self.samples[j] = (point[0], name, vec)


def _merge(it_s: t.Iterator[t.Any], it_t: t.Iterator[t.Any], tally: _Tally) -> None:
    """Walk both sides in id order at once: a point only on one side, or with other content, is a difference."""
    a, b = next(it_s, None), next(it_t, None)
    while a is not None or b is not None:
        ka = id_key(a[0]) if a is not None else None
        kb = id_key(b[0]) if b is not None else None
        if a is not None and (kb is None or ka < kb):
            tally.missing += 1
            if tally.room():
                tally.differences.append({"id": a[0], "problem": "missing on target"})
        elif b is not None and (ka is None or kb < ka):
            tally.extra += 1
            if tally.room():
                tally.differences.append({"id": b[0], "problem": "only on target"})
        elif a is not None and b is not None and a[1] != b[1]:
            tally.differing += 1
            if tally.room():
                tally.differences.append(_describe(a, b))
        a_next = a is not None and (kb is None or ka <= kb)
        if a_next:
            tally.sample(a)
        b_next = b is not None and (ka is None or kb <= ka)
        if a_next:
            a = next(it_s, None)
        if b_next:
            b = next(it_t, None)


def _search(ep: Endpoint, client: t.Any, collection: str, query: t.Any, opts: CompareOptions, params: t.Any) -> t.Any:
    """The points a search for the vector ``query`` (name, vector) ranks first on one side."""
    name, vec = query
    return qc_call(
        ep,
        "searching",
        client.query_points,
        collection,
        query=vec,
        using=name,
        limit=opts.search_limit,
        with_payload=False,
        search_params=params,
    ).points


def _summary(
    conf_diff: list[dict[str, t.Any]],
    counts: tuple[int, int],
    digest_equal: bool,
    ordered: bool,
    tally: _Tally,
    search: list[dict[str, t.Any]],
) -> list[str]:
    """What differs, one phrase each, for the message of unequal collections."""
    count_s, count_t = counts
    summary = []
    if conf_diff:
        summary.append(f"config differs in {[d['key'] for d in conf_diff]}")
    if count_s != count_t:
        summary.append(f"point count {count_s} vs {count_t}")
    if not digest_equal:
        summary.append(
            f"content digest differs ({tally.differing} differing, {tally.missing} missing on target, "
            f"{tally.extra} only on target)"
            if ordered
            else "content digest differs"
        )
    if search:
        summary.append(f"{len(search)} of {len(tally.samples)} sampled searches rank differently")
    return summary


def _result(
    opts: CompareOptions,
    conf_diff: list[dict[str, t.Any]],
    counts: tuple[int, int],
    sides: tuple[_Side, _Side],
    tally: _Tally,
    search: list[dict[str, t.Any]],
    seconds: float,
) -> dict[str, t.Any]:
    """The module result: the verdict ``equal``, its message and every figure behind it."""
    (count_s, count_t), (side_s, side_t) = counts, sides
    ordered = side_s.ordered and side_t.ordered
    digest_equal = side_s.digest == side_t.digest and side_s.count == side_t.count
    search_ok = not search
    differing, missing, extra = tally.differing, tally.missing, tally.extra
    equal = (
        (not conf_diff)
        and count_s == count_t
        and digest_equal
        and search_ok
        and (not ordered or not (missing or extra or differing))
    )
    return {
        "changed": False,
        "equal": equal,
        "msg": (
            "collections are equal: config, exact count, content digest over "
            f"{count_s} points and {len(tally.samples)} sampled searches match"
            if equal
            else "; ".join(_summary(conf_diff, counts, digest_equal, ordered, tally, search))
        ),
        "config_differences": conf_diff,
        "count": {"source": count_s, "target": count_t},
        "digest": {
            "source": f"{side_s.digest:064x}",
            "target": f"{side_t.digest:064x}",
            "points_source": side_s.count,
            "points_target": side_t.count,
        },
        "differing_points": differing,
        "missing_on_target": missing,
        "only_on_target": extra,
        "differences": tally.differences if ordered else [],
        "ordered_scroll": ordered,
        "search": {
            "samples": len(tally.samples),
            "limit": opts.search_limit,
            "exact": opts.search_exact,
            "mismatches": search[: opts.max_differences],
        },
        "duration_seconds": round(seconds, 3),
        "points_per_second": round((side_s.count + side_t.count) / seconds, 1) if seconds > 0 else None,
    }


def compare(src: Endpoint, tgt: Endpoint, opts: CompareOptions) -> dict[str, t.Any]:
    """Compare two collections; returns the figures and ``equal``."""
    start = time.monotonic()
    qc = import_qdrant_client()
    models = qc.models
    tcol = opts.target_collection or opts.collection
    csrc, ctgt = make_client(src), make_client(tgt)
    scrolls: list[t.Iterator[t.Any]] = []
    try:
        info_s = qc_call(src, f"reading collection {opts.collection!r}", csrc.get_collection, opts.collection)
        info_t = qc_call(tgt, f"reading collection {tcol!r}", ctgt.get_collection, tcol)
        conf_diff = config_diff(_plain(info_s.config), _plain(info_t.config), opts.config_keys)
        count_s = qc_call(src, "counting points", csrc.count, opts.collection, exact=True).count
        count_t = qc_call(tgt, "counting points", ctgt.count, tcol, exact=True).count
        side_s = _Side(src, csrc, opts.collection, opts.batch_size)
        side_t = _Side(tgt, ctgt, tcol, opts.batch_size)
        tally = _Tally(opts, random.Random(opts.seed))  # noqa: S311 - sampling, not security
        it_s, it_t = side_s.points(), side_t.points()
        scrolls += [it_s, it_t]
        _merge(it_s, it_t, tally)
        search: list[dict[str, t.Any]] = []
        params = models.SearchParams(exact=opts.search_exact)
        for pid, name, vec in tally.samples:
            ra = _search(src, csrc, opts.collection, (name, vec), opts, params)
            rb = _search(tgt, ctgt, tcol, (name, vec), opts, params)
            if not search_equal(ra, rb):
                search.append(
                    {"query_point_id": pid, "source_ids": [p.id for p in ra], "target_ids": [p.id for p in rb]}
                )
    finally:
        for scroll in scrolls:  # a failure on one side stops the other side's reading thread too
            scroll.close()
        for c in (csrc, ctgt):
            with contextlib.suppress(Exception):
                c.close()
    return _result(opts, conf_diff, (count_s, count_t), (side_s, side_t), tally, search, time.monotonic() - start)
