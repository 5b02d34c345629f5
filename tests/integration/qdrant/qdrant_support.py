"""Helpers for the Qdrant integration tests: fill a collection, run the stand-in as a process."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import typing as t

import requests

from support.servers import free_port, wait_port

STANDIN = os.path.join(os.path.dirname(__file__), "..", "..", "standins", "qdrant_server.py")


def points(n: int, dim: int = 8, seed: int = 1, start: int = 0) -> list[dict[str, t.Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "vector": [round(rng.uniform(-1, 1), 6) for _u1 in range(dim)],
            "payload": {"doc": f"doc-{i}", "n": i, "tags": ["a", "b"][: i % 3], "meta": {"len": i % 97}},
        }
        for i in range(start, start + n)
    ]


def fill(
    url: str,
    collection: str,
    n: int,
    dim: int = 8,
    distance: str = "Cosine",
    seed: int = 1,
    headers: dict[str, str] | None = None,
    **create: t.Any,
) -> None:
    s = requests.Session()
    s.headers.update(headers or {})
    r = s.put(
        f"{url}/collections/{collection}", json={"vectors": {"size": dim, "distance": distance}, **create}, timeout=30
    )
    assert r.status_code == 200, r.text
    data = points(n, dim, seed)
    for i in range(0, n, 2000):
        r = s.put(
            f"{url}/collections/{collection}/points",
            params={"wait": "true"},
            json={"points": data[i : i + 2000]},
            timeout=120,
        )
        assert r.status_code == 200, r.text


def upsert(url: str, collection: str, pts: list[dict[str, t.Any]]) -> None:
    r = requests.put(
        f"{url}/collections/{collection}/points", params={"wait": "true"}, json={"points": pts}, timeout=30
    )
    assert r.status_code == 200, r.text


class StandinProcess:
    """The stand-in started through its CLI, as the lab would run it."""

    def __init__(self, storage: str, *extra: str) -> None:
        self.storage = storage
        self.extra = list(extra)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandinProcess:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                STANDIN,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage",
                self.storage,
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_port(self.port, timeout=30)
        return self

    def kill(self) -> str:
        assert self.proc is not None
        self.proc.kill()
        out, _u1 = self.proc.communicate(timeout=10)
        return out

    def stop(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            return ""
        self.proc.terminate()
        out, _u1 = self.proc.communicate(timeout=15)
        return out
