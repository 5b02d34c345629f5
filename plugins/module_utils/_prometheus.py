"""A small client for the Prometheus HTTP API (instant and range queries), over _http.HttpClient."""

from __future__ import annotations

import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._http import HttpClient, HttpError


class PrometheusError(Exception):
    pass


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0, validate_certs: bool = True,
                 headers: dict[str, str] | None = None, retries: int = 2):
        self.http = HttpClient(url, headers=headers, timeout=timeout, validate_certs=validate_certs, retries=retries)

    def _data(self, path: str, params: dict[str, t.Any]) -> t.Any:
        try:
            body = self.http.json("GET", path, params=params)
        except HttpError as exc:
            raise PrometheusError(f"Prometheus query failed: {exc}") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"Prometheus answered an error for {params.get('query')!r}: {error}")
        data = body.get("data") or {}
        if data.get("resultType") not in ("vector", "matrix", "scalar", "string"):
            raise PrometheusError(f"Prometheus answered an unexpected result type {data.get('resultType')!r}")
        return data

    def query(self, expr: str, at: float | None = None) -> list[dict[str, t.Any]]:
        """Instant query: list of {labels, value} (value as float; NaN kept as float('nan'))."""
        params: dict[str, t.Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        data = self._data("/api/v1/query", params)
        if data["resultType"] == "scalar":
            return [{"labels": {}, "value": float(data["result"][1])}]
        return [{"labels": r.get("metric", {}), "value": float(r["value"][1])} for r in data.get("result", [])]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, t.Any]]:
        data = self._data("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return [{"labels": r.get("metric", {}), "values": [float(v[1]) for v in r.get("values", [])]}
                for r in data.get("result", [])]
