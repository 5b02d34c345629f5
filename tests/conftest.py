"""Shared pytest fixtures for unit and integration tests."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from support.servers import RedisServer


@pytest.fixture
def redis_server():
    """A real redis-server (Debian's) on a free loopback port."""
    with RedisServer() as server:
        yield server


_SCHEMA_CACHE: list[str] = []


def pytest_configure():
    """Kubernetes schemas built by the modules (k8s_validate's disk cache) go to a directory of this run, never to
    the user's ~/.cache: every module process a test starts, playbooks included, inherits it."""
    if "SOPHIA_MIGRATE_SCHEMA_CACHE" not in os.environ:
        _SCHEMA_CACHE.append(tempfile.mkdtemp(prefix="sophia-schema-cache-"))
        os.environ["SOPHIA_MIGRATE_SCHEMA_CACHE"] = _SCHEMA_CACHE[0]


def pytest_unconfigure():
    for directory in _SCHEMA_CACHE:
        shutil.rmtree(directory, ignore_errors=True)
