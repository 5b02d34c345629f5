"""Benchmark of the Qdrant proof of equality (sophia.migrate.qdrant_compare's ``_qdrant.compare``).

The compare runs inside the write freeze of a Qdrant cutover (roles/data_migration), so its wall time is
write-unavailability time. Two Qdrant stand-ins (tests/standins/qdrant_server.py, each its own process, as
in the lab; a stand-in because no Qdrant server can be obtained here) hold the same N points. Measured in
the same run, best of ``--repeat``:

* baseline: the straightforward way with the same client and page size, scroll the source to the end, then
  the target, hashing every point (what the compare did before it read both sides at once);
* the compare itself (both sides scrolled by background threads, a page or two ahead, merge-joined and
  hashed as pages arrive, plus the config diff, the exact counts and the sampled searches).

Printed: both times and the ratio baseline / compare (> 1 means the compare is faster although it does
more). Run: ``.venv/bin/python benchmarks/bench_qdrant_compare.py [--points 30000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path[:0] = [
    os.path.join(ROOT, ".ansible", "collections"),
    os.path.join(ROOT, "tests"),
    os.path.join(ROOT, "tests", "integration", "qdrant"),
]

from qdrant_support import StandinProcess, fill  # noqa: E402

from ansible_collections.sophia.migrate.plugins.module_utils import _qdrant  # noqa: E402


def sequential(urls: list[str], collection: str, batch: int) -> int:
    """Scroll each side to its end, one after the other, hashing like the compare does; returns points read."""
    total = 0
    for url in urls:
        ep = _qdrant.Endpoint(label="url", url=url)
        client = _qdrant.make_client(ep)
        offset = None
        while True:
            records, offset = client.scroll(
                collection_name=collection, limit=batch, offset=offset, with_payload=True, with_vectors=True
            )
            for rec in records:
                hashlib.sha256(_qdrant._canon([rec.id, _qdrant._plain(rec.vector), _qdrant._plain(rec.payload)]))
                total += 1
            if offset is None:
                break
        client.close()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=30000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        sides = [StandinProcess(os.path.join(work, name)).start() for name in ("source", "target")]
        try:
            t0 = time.monotonic()
            for side in sides:
                fill(side.url, "bench", opts.points, dim=opts.dim)
            print(f"{opts.points} points of {opts.dim} dimensions on each side, filled in {time.monotonic() - t0:.1f}s")
            src = _qdrant.Endpoint(label="source", url=sides[0].url)
            tgt = _qdrant.Endpoint(label="target", url=sides[1].url)
            base, ours = [], []
            for _run in range(opts.repeat):
                t0 = time.monotonic()
                read = sequential([s.url for s in sides], "bench", opts.batch)
                base.append(time.monotonic() - t0)
                assert read == 2 * opts.points, read
                t0 = time.monotonic()
                result = _qdrant.compare(src, tgt, _qdrant.CompareOptions(collection="bench", batch_size=opts.batch))
                ours.append(time.monotonic() - t0)
                assert result["equal"], result["msg"]
        finally:
            for side in sides:
                side.stop()
    print(f"runs: {opts.repeat}; baseline {[round(x, 2) for x in base]}, compare {[round(x, 2) for x in ours]}")
    print(f"baseline, sequential scroll of both sides: {min(base):6.2f}s")
    print(f"compare, both sides at once + checks:      {min(ours):6.2f}s")
    print(f"ratio baseline / compare:                  {min(base) / min(ours):6.2f}x")


if __name__ == "__main__":
    main()
