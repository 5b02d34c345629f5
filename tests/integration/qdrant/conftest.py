"""Fixtures for the Qdrant integration tests: stand-in servers (test code) validated against the OpenAPI document."""

from __future__ import annotations

import os
import sys
import typing as t

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "standins"))

from qdrant_server import QdrantStandin


@pytest.fixture
def qdrant(tmp_path) -> t.Iterator[t.Callable[..., QdrantStandin]]:
    """Factory of in-process stand-ins; at teardown every request and answer must have matched the spec."""
    started: list[QdrantStandin] = []

    def make(name: str = "q", **kwargs: t.Any) -> QdrantStandin:
        server = QdrantStandin(str(tmp_path / f"storage-{name}-{len(started)}"), **kwargs).start()
        started.append(server)
        return server

    yield make
    violations = [v for s in started for v in s.violations]
    for server in started:
        server.stop()
    assert violations == [], violations
