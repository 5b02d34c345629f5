"""Benchmark of the Qdrant proof of equality (sophia.migrate.qdrant_compare's ``_qdrant_compare.compare``).

The compare runs inside the write freeze of a Qdrant cutover (roles/data_migration), so its wall time is
write-unavailability time. Two Qdrant stand-ins (tests/standins/qdrant_server.py, each its own process, as
in the lab; a stand-in because no Qdrant server can be obtained here) hold the same points (64 dimensions,
small payloads), in two collections of two sizes (``--points``, default 10000 and 30000 per side).
Measured with benchmarks/_harness.py (alternating rounds, p90 of ``--rounds``, same run):

* baseline: the straightforward way with the same client and page size, scroll the source to the end, then
  the target, hashing every point (what the compare did before it read both sides at once);
* subject: the compare itself (both sides scrolled by background threads, a page or two ahead, merge-joined
  and hashed as pages arrive, plus the config diff, the exact counts and the sampled searches).

Goal: ratio compare / baseline <= 1 (the compare, which does more, is no slower than the sequential read).
Rates are points per side per second. Run:
``.venv/bin/python benchmarks/bench_qdrant_compare.py [--points 10000,30000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path[:0] = [
    HERE,
    os.path.join(ROOT, ".ansible", "collections"),
    os.path.join(ROOT, "tests"),
    os.path.join(ROOT, "tests", "integration", "qdrant"),
]

from _harness import Goal, compare, growth  # noqa: E402
from qdrant_support import StandinProcess, fill  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils import _qdrant, _qdrant_client, _qdrant_compare  # noqa: E402


def sequential(urls: list[str], collection: str, batch: int) -> int:
    """Scroll each side to its end, one after the other, hashing like the compare does; returns points read."""
    total = 0
    canon, plain = _qdrant_compare._canon, _qdrant_compare._plain
    for url in urls:
        ep = _qdrant.Endpoint(label="url", url=url)
        client = _qdrant_client.make_client(ep)
        offset = None
        while True:
            records, offset = client.scroll(
                collection_name=collection, limit=batch, offset=offset, with_payload=True, with_vectors=True
            )
            for rec in records:
                hashlib.sha256(canon([rec.id, plain(rec.vector), plain(rec.payload)]))
                total += 1
            if offset is None:
                break
        client.close()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="10000,30000", help="points per side, one size or two, comma-separated")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    sizes = [int(x) for x in opts.points.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        sides = [StandinProcess(os.path.join(work, name)).start() for name in ("source", "target")]
        try:
            for n in sizes:
                collection = f"bench{n}"
                for side in sides:
                    fill(side.url, collection, n, dim=opts.dim)
                src = _qdrant.Endpoint(label="source", url=sides[0].url)
                tgt = _qdrant.Endpoint(label="target", url=sides[1].url)

                def baseline(collection=collection, n=n) -> None:
                    read = sequential([s.url for s in sides], collection, opts.batch)
                    if read != 2 * n:
                        raise SystemExit(f"sequential read {read} points, expected {2 * n}")

                def subject(collection=collection, src=src, tgt=tgt) -> None:
                    options = _qdrant_compare.CompareOptions(collection=collection, batch_size=opts.batch)
                    result = _qdrant_compare.compare(src, tgt, options)
                    if not result["equal"]:
                        raise SystemExit(f"compare found a difference: {result['msg']}")

                rows.append(compare("qdrant_compare", n, baseline, subject, rounds=opts.rounds, rate="points/s",
                                    goal=Goal("<=", 1.0, on="ratio")))
        finally:
            for side in sides:
                side.stop()
    if len(rows) > 1:
        growth(rows[0], rows[-1])


if __name__ == "__main__":
    main()
