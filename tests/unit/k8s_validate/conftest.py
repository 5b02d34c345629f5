"""The schema tests of this directory hold the in-process builds; the disk cache has its own tests, which turn it on."""

from __future__ import annotations

import pytest

from ansible_collections.sophia.migrate.plugins.module_utils import _k8s_validate as kv


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    monkeypatch.setenv(kv.CACHE_ENV, "off")
