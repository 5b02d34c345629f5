"""Shared pytest fixtures for unit and integration tests."""

from __future__ import annotations

import pytest

from support.servers import RedisServer


@pytest.fixture
def redis_server():
    """A real redis-server (Debian's) on a free loopback port."""
    with RedisServer() as server:
        yield server
