"""The seed's technical success criteria, each measured and judged (passed, failed, or not measurable).

1. All services healthy in Kubernetes (100% uptime): ``min_over_time(up{<selector>}[window])`` is 1 for
   every target; any 0 in the window fails.
2. GPU utilisation optimised (< 80% average): average of ``DCGM_FI_DEV_GPU_UTIL`` over the window.
3. Response times maintained or improved: p95 latency per service from a Prometheus histogram, compared
   with a baseline (measured on the Compose side before the move) within a tolerance.
4. Zero data loss during migration: every data step in the ledger is ``done``; every step that recorded a
   verification (``verified``, equal digests or copies, zero lost writes, a backup's checksum) passed it; and every
   data store (Redis, Qdrant, each volume) has at least one verified step.
A criterion without data is reported as not measurable, never as passed.
"""

from __future__ import annotations

import math
import typing as t

from ansible_collections.sophia.migrate.plugins.module_utils._prometheus import Prometheus


def _criterion(name: str, target: str, measured: t.Any, passed: bool | None, evidence: str) -> dict[str, t.Any]:
    return {"name": name, "target": target, "measured": measured, "passed": passed, "evidence": evidence}


def uptime(prom: Prometheus, selector: str, window: str) -> dict[str, t.Any]:
    rows = prom.query(f"min_over_time(up{selector}[{window}])")
    if not rows:
        return _criterion("all services healthy", "up == 1 for every target", None, None,
                          f"no 'up' series match {selector} in {window}")
    down = sorted(r["labels"].get("instance", "?") for r in rows if r["value"] < 1)
    measured = f"{len(rows) - len(down)}/{len(rows)} targets up for the whole window"
    return _criterion("all services healthy", "up == 1 for every target", measured, not down,
                      f"down at some point: {', '.join(down)}" if down else f"{len(rows)} targets, window {window}")


def gpu_utilisation(prom: Prometheus, window: str, target: float) -> dict[str, t.Any]:
    rows = prom.query(f"avg(avg_over_time(DCGM_FI_DEV_GPU_UTIL[{window}]))")
    if not rows or math.isnan(rows[0]["value"]):
        return _criterion("GPU utilisation optimised", f"average < {target:g}%", None, None,
                          "no DCGM_FI_DEV_GPU_UTIL series (no GPU or no DCGM exporter)")
    value = round(rows[0]["value"], 2)
    return _criterion("GPU utilisation optimised", f"average < {target:g}%", f"{value}%", value < target,
                      f"average over all GPUs, window {window}")


def latency(prom: Prometheus, histogram: str, selector_by_service: dict[str, str], baseline: dict[str, float],
            tolerance: float, window: str) -> dict[str, t.Any]:
    name = "response times maintained or improved"
    target = f"p95 <= baseline x {1 + tolerance:g}"
    if not baseline:
        return _criterion(name, target, None, None, "no baseline given (measure the Compose side first)")
    measured, worse, missing = {}, [], []
    for service, base in sorted(baseline.items()):
        sel = selector_by_service.get(service, "")
        rows = prom.query(f"histogram_quantile(0.95, sum by (le) (rate({histogram}_bucket{sel}[{window}])))")
        if not rows or math.isnan(rows[0]["value"]):
            missing.append(service)
            continue
        p95 = rows[0]["value"]
        measured[service] = round(p95, 4)
        if p95 > base * (1 + tolerance):
            worse.append(f"{service} {p95:.4f}s > {base:g}s")
    if missing and not measured:
        return _criterion(name, target, None, None, f"no latency samples for {', '.join(missing)}")
    evidence = "; ".join(worse) if worse else "every measured service within tolerance"
    if missing:
        evidence += f"; not measured: {', '.join(missing)}"
    return _criterion(name, target, measured, not worse and not missing, evidence)


# What a step records when it checked its own result: a data-moving step's verification (the cutover's, the
# restore's, the verify's), a copy's comparison, a backup's checksum. A step with none of these (a replication that
# caught up, a promotion) only has to be done; each store must still end in at least one verified step.
_VERDICTS = ("verified", "lost_writes", "digest_equal", "equal", "checksum_verified")


def _verdict(data: dict[str, t.Any]) -> bool | None:
    """True or False when the step recorded a verification, None when it records none."""
    found = [key for key in _VERDICTS if key in data]
    if not found:
        return None
    return all((data[key] == 0) if key == "lost_writes" else (data[key] is True) for key in found)


def _store(step: str) -> str:
    """The data store a step belongs to: ``redis``, ``qdrant``, ``volume/<name>``, ``data/<name>``."""
    parts = step.split("/")
    return "/".join(parts[:2]) if parts[0] in ("volume", "data") and len(parts) > 2 else parts[0]


def data_loss(ledger: dict[str, t.Any], prefixes: t.Iterable[str]) -> dict[str, t.Any]:
    """Every data step (latest entry per step) is done; every step that recorded a verification passed it; every
    store has at least one verified step (its move ended verified)."""
    name, target = "zero data loss", "every data step done, every store's move verified"
    prefixes = tuple(prefixes)
    latest: dict[str, dict[str, t.Any]] = {}
    for entry in ledger.get("entries", []):
        if str(entry.get("step", "")).startswith(prefixes):
            latest[entry["step"]] = entry
    if not latest:
        return _criterion(name, target, None, None, "no data steps in the ledger yet")
    bad, verified_stores = [], set()
    for step, entry in sorted(latest.items()):
        verdict = _verdict(entry.get("data") or {})
        if entry.get("status") != "done" or verdict is False:
            bad.append(f"{step} ({entry.get('status')}, verified={verdict})")
        elif verdict:
            verified_stores.add(_store(step))
    stores = sorted({_store(step) for step in latest})
    bad += [f"{store}: no verified step" for store in stores if store not in verified_stores]
    measured = f"{len(verified_stores)}/{len(stores)} stores verified, {len(latest)} steps"
    return _criterion(name, target, measured, not bad, "; ".join(bad) if bad else ", ".join(sorted(latest)))
