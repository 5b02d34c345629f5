"""Fixtures for the redis_migrate integration tests (helpers in redis_migrate_support.py)."""

from __future__ import annotations

import typing as t

import pytest
from redis_migrate_support import MigrateRedis, TcpProxy, Writer


@pytest.fixture
def servers() -> t.Iterator[t.Callable[..., MigrateRedis]]:
    started: list[MigrateRedis] = []

    def make(**kwargs: t.Any) -> MigrateRedis:
        srv = MigrateRedis(**kwargs).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.cleanup()


@pytest.fixture
def proxy() -> t.Iterator[t.Callable[[int], TcpProxy]]:
    made: list[TcpProxy] = []

    def make(upstream_port: int) -> TcpProxy:
        p = TcpProxy(upstream_port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def writer() -> t.Iterator[t.Callable[..., Writer]]:
    made: list[Writer] = []

    def make(endpoints: list[tuple[int, str | None]], rate: float = 300.0) -> Writer:
        w = Writer(endpoints, rate)
        made.append(w)
        w.start()
        return w

    yield make
    for w in made:
        w.stopping.set()
        w.join(10)
