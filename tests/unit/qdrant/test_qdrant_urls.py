"""qdrant_snapshot and URLs: malformed ones fail cleanly; a location's token never shows (result, diff, invocation).

The recovery runs against the in-process Qdrant stand-in (test code, validated against Qdrant's OpenAPI document).
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import requests

from ansible_collections.sophia.migrate.plugins.modules import qdrant_snapshot
from support.modules import run_module
from support.servers import free_port

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "standins"))

from qdrant_server import QdrantStandin

TOKEN = "S3cr3t-Sig-q1"
FAST = {"retries": 0, "backoff": 0.05, "timeout": 10}


@pytest.mark.parametrize(
    ("args", "text"),
    [
        ({"url": f"http://u:{TOKEN}@[::1:6333", "state": "listed"}, "option 'url' is not a valid URL (Invalid IPv6"),
        ({"url": "http://127.0.0.1:99999", "state": "listed"}, "option 'url' is not a valid URL (Port out of range"),
        (
            {"state": "recovered", "collection": "c", "location": f"http://[::1/snap?sig={TOKEN}"},
            "option 'location' is not a valid URL (Invalid IPv6 URL): 'http://[::1/snap'",
        ),
        (
            {"state": "uploaded", "collection": "c", "src": "/nonexistent", "source": {"url": "https://[fe80::1"}},
            "option 'source' is not a valid URL",
        ),
    ],
)
def test_malformed_urls_fail_cleanly(capsys, args, text):
    res = run_module(qdrant_snapshot, {"url": "http://127.0.0.1:1", **FAST, **args}, capsys)
    assert res["failed"] and text in res["msg"], res["msg"]
    assert TOKEN not in json.dumps(res)


@pytest.fixture
def standins(tmp_path):
    src = QdrantStandin(str(tmp_path / "src")).start()
    tgt = QdrantStandin(str(tmp_path / "tgt")).start()
    yield src, tgt
    violations = src.violations + tgt.violations
    src.stop()
    tgt.stop()
    assert violations == [], violations


def test_a_location_token_is_never_shown(standins, capsys):
    src, tgt = standins
    assert requests.put(f"{src.url}/collections/docs", json={"vectors": {"size": 2, "distance": "Dot"}},
                        timeout=10).status_code == 200
    points = [{"id": i, "vector": [float(i), 1.0], "payload": {}} for i in range(1, 6)]
    assert requests.put(f"{src.url}/collections/docs/points", params={"wait": "true"}, json={"points": points},
                        timeout=10).status_code == 200
    made = run_module(qdrant_snapshot, {"url": src.url, **FAST, "collection": "docs"}, capsys)
    name = made["snapshot"]["name"]
    # a presigned-style URL: a signature in the query
    location = f"http://127.0.0.1:{src.port}/collections/docs/snapshots/{name}?X-Sig={TOKEN}"
    args = {"url": tgt.url, **FAST, "collection": "docs", "state": "recovered", "location": location,
            "source_version": "1.19.0"}
    planned = run_module(qdrant_snapshot, args, capsys, check_mode=True)
    assert planned["changed"] is True and planned["diff"]["after"]["recovered_from"] == name, planned
    done = run_module(qdrant_snapshot, args, capsys)
    assert done["changed"] is True and done["points_count"] == 5, done
    assert done["diff"]["after"]["recovered_from"] == name
    shown = f"http://127.0.0.1:{src.port}/collections/docs/snapshots/{name}"
    assert done["location"] == shown and done["invocation"]["module_args"]["location"] == shown
    # a location the target cannot fetch: Qdrant's error quotes it, the message shows it only redacted
    gone = dict(args, location=f"http://reader:{TOKEN}@127.0.0.1:{free_port()}/x.snapshot?X-Sig={TOKEN}",
                force=True, check_compatibility=False)
    failed = run_module(qdrant_snapshot, gone, capsys)
    assert failed["failed"] and "cannot download snapshot from http://127.0.0.1:" in failed["msg"], failed["msg"]
    for res in (planned, done, failed):
        assert TOKEN not in json.dumps(res), res
