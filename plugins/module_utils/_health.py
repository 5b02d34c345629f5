"""health_gate: decide from real probes whether a migration step may proceed.

The model follows Argo Rollouts' AnalysisRun and Flagger's canary analysis, but the probes reach
anything the controller can reach (the Compose host and the K3s cluster alike):

- A *round* runs every probe once, concurrently (one thread per probe), each bounded by its own
  ``timeout``: a probe with no sample at its timeout is a failure then. A probe sample is ``success``,
  ``failure`` or ``inconclusive`` (``failure_condition`` is checked first, then ``success_condition``; a
  query that returns no data follows the probe's explicit ``on_no_data`` policy; a timeout or connection
  error is a failure).
- Rounds start on a fixed schedule: round k (from 0) at ``t0 + k x interval`` (t0 = after
  ``initial_delay``). A slow round does not push the next one later: when a round is due while earlier
  ones still run, it starts anyway with fresh probes (rounds overlap). With ``interval`` 0 rounds run
  back to back. Rounds are counted in order (round k is decided once rounds 0..k are complete).
  So an endpoint failing from t0 fails the gate by ``(failure_limit - 1) x interval + timeout``,
  and one that starts failing at any moment t by ``t + failure_limit x interval + timeout``.
- A round fails if any probe failed; it is inconclusive if none failed but one was inconclusive.
- The gate **fails** as soon as ``failure_limit`` rounds failed, **passes** as soon as
  ``consecutive_successes`` rounds in a row succeeded, and is **inconclusive** once
  ``inconclusive_limit`` rounds were inconclusive. When ``count`` rounds or ``duration`` seconds are
  used up without a decision, it fails (the required run of successes never came); a flapping target
  therefore never passes.
- ``min_duration`` makes the pass a hold: the run of successful rounds must also span ``min_duration``
  seconds (from the start of its first round); at that moment the gate starts no new round, waits for
  the rounds still running and passes when they passed too. A failed round restarts the hold (it still
  counts towards ``failure_limit``); when the rounds left (``count``/``duration``) can no longer hold
  ``min_duration``, the gate fails right away.
- Baseline mode compares the candidate with a baseline endpoint measured in the same rounds:
  p95 latency within ``latency_tolerance`` and error ratio within ``error_ratio_tolerance``.

Everything here is plain Python: probes are functions returning a ``Sample``; the clock and sleep are
injectable so the policy engine is tested without a network.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import threading
import time
import typing as t
import urllib.parse
from dataclasses import asdict, dataclass, field

from ansible_collections.sophia.migrate.plugins.module_utils._http import redact_url

PROBE_TYPES = ("http", "tcp", "redis", "prometheus", "command")
NO_DATA = ("fail", "pass", "inconclusive")
SUCCESS, FAILURE, INCONCLUSIVE = "success", "failure", "inconclusive"


class HealthConfigError(Exception):
    """Bad options; the message names the probe and the option."""


@dataclass
class Sample:
    probe: str
    outcome: str
    at: float = 0.0
    latency_ms: float | None = None
    status: t.Any = None
    value: float | None = None
    message: str = ""
    round: int = 0
    final: bool = False  # decided already (no-data policy); conditions do not apply


@dataclass
class Policy:
    interval: float = 5.0
    count: int | None = None
    duration: float | None = None
    initial_delay: float = 0.0
    failure_limit: int = 1
    consecutive_successes: int = 1
    inconclusive_limit: int = 3
    min_duration: float = 0.0


@dataclass
class Decision:
    verdict: str
    reason: str
    rounds: int


@dataclass
class State:
    rounds: list[str] = field(default_factory=list)  # outcome per round

    @property
    def failures(self) -> int:
        return self.rounds.count(FAILURE)

    @property
    def inconclusives(self) -> int:
        return self.rounds.count(INCONCLUSIVE)

    @property
    def streak(self) -> int:
        n = 0
        for outcome in reversed(self.rounds):
            if outcome != SUCCESS:
                break
            n += 1
        return n


def round_outcome(samples: list[Sample]) -> str:
    outcomes = {s.outcome for s in samples}
    if FAILURE in outcomes:
        return FAILURE
    if INCONCLUSIVE in outcomes:
        return INCONCLUSIVE
    return SUCCESS


def decide(
    state: State, policy: Policy, exhausted: bool, held: bool = True, span: float = 0.0, why_exhausted: str = ""
) -> Decision | None:
    """The gate's decision after the rounds so far, or None to keep measuring.

    ``held``: with ``min_duration``, the current run of successful rounds spans it (and no round of the run is
    still running); ``span`` is that run's span in seconds so far; ``why_exhausted`` says why no round is left.
    """
    n = len(state.rounds)
    if state.failures >= policy.failure_limit:
        return Decision("failed", f"{state.failures} of {n} rounds failed (failure_limit {policy.failure_limit})", n)
    if state.streak >= policy.consecutive_successes and (not policy.min_duration or held):
        if policy.min_duration:
            return Decision(
                "passed",
                f"{state.streak} consecutive successful rounds over {span:.1f}s "
                f"(min_duration {policy.min_duration:g}s, required {policy.consecutive_successes} in a row)",
                n,
            )
        return Decision(
            "passed", f"{state.streak} consecutive successful rounds (required {policy.consecutive_successes})", n
        )
    if state.inconclusives >= policy.inconclusive_limit:
        return Decision(
            "inconclusive",
            f"{state.inconclusives} of {n} rounds were inconclusive (inconclusive_limit {policy.inconclusive_limit})",
            n,
        )
    if exhausted:
        if policy.min_duration:
            return Decision(
                "failed",
                f"the successful rounds in a row did not hold min_duration {policy.min_duration:g}s: "
                f"{why_exhausted or f'{n} rounds used up'} ({state.streak} successful in a row over {span:.1f}s; "
                f"{state.failures} failed, {state.inconclusives} inconclusive)",
                n,
            )
        return Decision(
            "failed",
            f"only {state.streak} consecutive successful rounds at the end of {n} rounds "
            f"(required {policy.consecutive_successes}; {state.failures} failed, "
            f"{state.inconclusives} inconclusive)",
            n,
        )
    return None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return round(ordered[rank], 3)


def summarize(samples: list[Sample]) -> dict[str, t.Any]:
    def figures(group: list[Sample]) -> dict[str, t.Any]:
        lat = [s.latency_ms for s in group if s.latency_ms is not None]
        return {
            "samples": len(group),
            "failures": sum(1 for s in group if s.outcome == FAILURE),
            "inconclusive": sum(1 for s in group if s.outcome == INCONCLUSIVE),
            "error_ratio": round(sum(1 for s in group if s.outcome == FAILURE) / len(group), 4) if group else None,
            "p50_ms": percentile(lat, 50),
            "p95_ms": percentile(lat, 95),
        }

    out = figures(samples)
    out["per_probe"] = {
        name: figures([s for s in samples if s.probe == name]) for name in sorted({s.probe for s in samples})
    }
    return out


# ---------------------------------------------------------------------------------------------- conditions


def _check_condition(cond: dict[str, t.Any], sample: Sample) -> list[str]:
    """Reasons why ``sample`` does NOT satisfy ``cond`` (empty list = satisfied)."""
    why = []
    if "status" in cond and sample.status not in cond["status"]:
        why.append(f"status {sample.status} not in {cond['status']}")
    if "max_latency_ms" in cond and (sample.latency_ms is None or sample.latency_ms > cond["max_latency_ms"]):
        why.append(f"latency {sample.latency_ms} ms > {cond['max_latency_ms']} ms")
    if "min_value" in cond and (sample.value is None or sample.value < cond["min_value"]):
        why.append(f"value {sample.value} < {cond['min_value']}")
    if "max_value" in cond and (sample.value is None or sample.value > cond["max_value"]):
        why.append(f"value {sample.value} > {cond['max_value']}")
    return why


def judge(sample: Sample, success: dict[str, t.Any], failure: dict[str, t.Any]) -> Sample:
    """Apply failure_condition, then success_condition, to a measured sample."""
    if sample.outcome != SUCCESS or sample.final:  # transport errors, no-data policy already decided
        return sample
    if failure and not _check_condition(failure, sample):
        sample.outcome = FAILURE
        sample.message = f"failure_condition met ({', '.join(f'{k}={v}' for k, v in failure.items())})"
        return sample
    reasons = _check_condition(success, sample) if success else []
    if reasons:
        sample.outcome = FAILURE
        sample.message = "; ".join(reasons)
    return sample


# ---------------------------------------------------------------------------------------------- probes

CONDITION_KEYS = {"status", "max_latency_ms", "min_value", "max_value"}
COMMON_KEYS = {"name", "type", "timeout", "success_condition", "failure_condition", "on_no_data"}
TYPE_KEYS = {
    "http": {
        "url",
        "method",
        "expected_status",
        "body_regex",
        "json_path",
        "json_value",
        "headers",
        "body",
        "validate_certs",
        "ca_path",
        "client_cert",
        "client_key",
    },
    "tcp": {"host", "port"},
    "redis": {"url", "host", "port", "password", "username", "db", "tls"},
    "prometheus": {"url", "query", "validate_certs", "headers"},
    "command": {"cmd", "argv", "expected_rc", "stdout_regex"},
}


# The sub-options of a probe (the module's argument spec): the secrets are no_log, so Ansible masks them in the
# invocation and in every result; which keys a type takes is checked by normalize_probe (TYPE_KEYS).
PROBE_OPTIONS: dict[str, dict[str, t.Any]] = {
    "name": {"type": "str"},
    "type": {"type": "str", "required": True},
    "timeout": {"type": "float"},
    "success_condition": {"type": "dict"},
    "failure_condition": {"type": "dict"},
    "on_no_data": {"type": "str"},
    "url": {"type": "str"},
    "method": {"type": "str"},
    "expected_status": {"type": "list", "elements": "int"},
    "body_regex": {"type": "str"},
    "json_path": {"type": "str"},
    "json_value": {"type": "raw"},
    "headers": {"type": "dict", "no_log": True},
    "body": {"type": "raw"},
    "validate_certs": {"type": "bool"},
    "ca_path": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path", "no_log": False},
    "host": {"type": "str"},
    "port": {"type": "int"},
    "db": {"type": "int"},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "tls": {"type": "bool"},
    "query": {"type": "str"},
    "cmd": {"type": "str"},
    "argv": {"type": "list", "elements": "str"},
    "expected_rc": {"type": "list", "elements": "int"},
    "stdout_regex": {"type": "str"},
}
URL_SCHEMES = {"http": ("http", "https"), "prometheus": ("http", "https"), "redis": ("redis", "rediss", "unix")}


def check_url(where: str, kind: str, url: t.Any) -> None:
    """A probe URL the probe can use; the error names the probe and shows the URL without credentials."""
    schemes = URL_SCHEMES[kind]
    try:
        parts = urllib.parse.urlsplit(str(url))
        parts.port  # noqa: B018 - parsing the port raises ValueError on a bad one
    except ValueError as exc:
        raise HealthConfigError(f"{where}: url {redact_url(url)!r} is not a valid URL ({exc})") from exc
    if parts.scheme not in schemes:
        raise HealthConfigError(
            f"{where}: url must start with {' or '.join(f'{s}://' for s in schemes)} (got {redact_url(url)!r})"
        )
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise HealthConfigError(f"{where}: url {redact_url(url)!r} names no host")


def redact_probe(probe: t.Any) -> t.Any:
    """The probe as it may be shown: its URL without credentials, query or fragment (password and headers are
    no_log options, masked by Ansible)."""
    if isinstance(probe, dict) and probe.get("url") is not None:
        return dict(probe, url=redact_url(probe["url"]))
    return probe


def normalize_probe(raw: t.Any, index: int) -> dict[str, t.Any]:
    """Validate one probe's options; return a copy with defaults. Raises HealthConfigError."""
    if not isinstance(raw, dict):
        raise HealthConfigError(f"probes[{index}] must be a dict, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind not in PROBE_TYPES:
        raise HealthConfigError(f"probes[{index}]: unknown type {kind!r} (one of {', '.join(PROBE_TYPES)})")
    # Options not given are None in the module's sub-options: they are left out, so the defaults below apply.
    probe = {k: v for k, v in raw.items() if v is not None}
    probe.setdefault("name", f"{kind}-{index}")
    where = f"probe '{probe['name']}'"
    unknown = set(probe) - COMMON_KEYS - TYPE_KEYS[kind]
    if unknown:
        raise HealthConfigError(f"{where}: unknown option(s) {', '.join(sorted(unknown))} for type {kind}")
    timeout = probe.setdefault("timeout", 5.0)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise HealthConfigError(f"{where}: timeout must be a positive number of seconds")
    if probe.setdefault("on_no_data", "fail") not in NO_DATA:
        raise HealthConfigError(f"{where}: on_no_data must be one of {', '.join(NO_DATA)}")
    for key in ("success_condition", "failure_condition"):
        cond = probe.setdefault(key, {})
        if not isinstance(cond, dict) or set(cond) - CONDITION_KEYS:
            raise HealthConfigError(f"{where}: {key} takes only {', '.join(sorted(CONDITION_KEYS))}")
    if kind == "http":
        check_url(where, kind, probe.get("url", ""))
        method = probe.setdefault("method", "GET")
        if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]{1,20}", method):
            raise HealthConfigError(f"{where}: method must be an HTTP method name like GET or POST, got {method!r:.80}")
        if "body" in probe and not isinstance(probe["body"], (str, dict)):
            raise HealthConfigError(f"{where}: body must be text or a mapping of form fields, "
                                    f"got {type(probe['body']).__name__}")
        if probe.get("client_key") and not probe.get("client_cert"):
            raise HealthConfigError(f"{where}: client_key needs client_cert")
        for key in ("client_cert", "client_key"):
            if probe.get(key) and not os.path.isfile(probe[key]):
                raise HealthConfigError(f"{where}: {key} {probe[key]!r:.200} is not a file")
        probe.setdefault("expected_status", [200])
        probe.setdefault("validate_certs", True)
        if probe.get("body_regex"):
            try:
                probe["_body_re"] = re.compile(probe["body_regex"])
            except re.error as exc:
                raise HealthConfigError(f"{where}: body_regex is not a valid regular expression: {exc}") from exc
    elif kind == "tcp":
        if not probe.get("host") or not isinstance(probe.get("port"), int):
            raise HealthConfigError(f"{where}: tcp needs host and an integer port")
    elif kind == "redis":
        if not probe.get("url") and not probe.get("host"):
            raise HealthConfigError(f"{where}: redis needs url or host")
        if probe.get("url"):
            check_url(where, kind, probe["url"])
    elif kind == "prometheus":
        if not probe.get("url") or not probe.get("query"):
            raise HealthConfigError(f"{where}: prometheus needs url (base URL of Prometheus) and query")
        check_url(where, kind, probe["url"])
        probe.setdefault("validate_certs", True)
    elif kind == "command":
        if not probe.get("cmd") and not probe.get("argv"):
            raise HealthConfigError(f"{where}: command needs cmd or argv")
        probe.setdefault("expected_rc", [0])
        if probe.get("stdout_regex"):
            try:
                probe["_stdout_re"] = re.compile(probe["stdout_regex"])
            except re.error as exc:
                raise HealthConfigError(f"{where}: stdout_regex is not a valid regular expression: {exc}") from exc
    return probe


def _json_path(document: t.Any, path: str) -> t.Any:
    node = document
    for part in [p for p in re.split(r"\.|\[(\d+)\]", path.lstrip("$.")) if p]:
        if isinstance(node, list) and part.isdigit():
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def probe_http(probe: dict[str, t.Any], session: t.Any) -> Sample:
    import requests  # noqa: PLC0415 - imported where it is needed, reported missing by the module

    start = time.monotonic()
    verify: t.Any = probe["validate_certs"]
    if verify and probe.get("ca_path"):
        verify = probe["ca_path"]
    cert = (probe["client_cert"], probe["client_key"]) if probe.get("client_key") else probe.get("client_cert")
    try:
        resp = session.request(
            probe["method"],
            probe["url"],
            headers=probe.get("headers") or {},
            data=probe.get("body"),
            timeout=probe["timeout"],
            verify=verify,
            cert=cert,
            allow_redirects=False,
        )
        body = resp.text
    except requests.exceptions.Timeout:
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=round((time.monotonic() - start) * 1000, 2),
            message=f"no answer within {probe['timeout']}s",
        )
    except requests.exceptions.SSLError as exc:
        return Sample(probe["name"], FAILURE, message=f"TLS verification failed: {exc.__class__.__name__}")
    except requests.exceptions.RequestException as exc:
        return Sample(probe["name"], FAILURE, message=f"{exc.__class__.__name__}: connection failed")
    latency = round((time.monotonic() - start) * 1000, 2)
    sample = Sample(probe["name"], SUCCESS, latency_ms=latency, status=resp.status_code)
    if resp.status_code not in probe["expected_status"]:
        sample.outcome, sample.message = FAILURE, f"HTTP {resp.status_code}, expected {probe['expected_status']}"
    elif probe.get("_body_re") and not probe["_body_re"].search(body):
        sample.outcome, sample.message = FAILURE, f"body does not match /{probe['body_regex']}/"
    elif probe.get("json_path"):
        try:
            found = _json_path(json.loads(body), probe["json_path"])
        except (ValueError, KeyError, IndexError, TypeError):
            sample.outcome, sample.message = FAILURE, f"no value at {probe['json_path']} in the JSON answer"
        else:
            if "json_value" in probe and found != probe["json_value"]:
                sample.outcome = FAILURE
                sample.message = f"{probe['json_path']} is {found!r}, expected {probe['json_value']!r}"
    return sample


def probe_tcp(probe: dict[str, t.Any]) -> Sample:
    start = time.monotonic()
    try:
        with socket.create_connection((probe["host"], probe["port"]), timeout=probe["timeout"]):
            pass
    except OSError as exc:
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=round((time.monotonic() - start) * 1000, 2),
            message=f"connect to {probe['host']}:{probe['port']} failed: {exc.strerror or exc}",
        )
    return Sample(probe["name"], SUCCESS, latency_ms=round((time.monotonic() - start) * 1000, 2))


def probe_redis(probe: dict[str, t.Any]) -> Sample:
    import redis  # noqa: PLC0415 - optional dependency, reported by the module

    start = time.monotonic()
    try:
        if probe.get("url"):
            client = redis.Redis.from_url(
                probe["url"], socket_timeout=probe["timeout"], socket_connect_timeout=probe["timeout"]
            )
        else:
            client = redis.Redis(
                host=probe["host"],
                port=probe.get("port", 6379),
                db=probe.get("db", 0),
                username=probe.get("username"),
                password=probe.get("password"),
                ssl=probe.get("tls", False),
                socket_timeout=probe["timeout"],
                socket_connect_timeout=probe["timeout"],
            )
        ok = client.ping()
        client.close()
    except redis.exceptions.AuthenticationError:
        return Sample(probe["name"], FAILURE, message="Redis refused the credentials")
    except ValueError as exc:  # redis-py's own URL parsing; normalize_probe already refuses what it can see
        shown = redact_url(probe.get("url"))
        return Sample(probe["name"], FAILURE, message=f"Redis URL {shown!r} rejected ({exc.__class__.__name__})")
    except redis.exceptions.RedisError as exc:
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=round((time.monotonic() - start) * 1000, 2),
            message=f"Redis PING failed: {exc.__class__.__name__}",
        )
    latency = round((time.monotonic() - start) * 1000, 2)
    return Sample(probe["name"], SUCCESS if ok else FAILURE, latency_ms=latency, status="PONG" if ok else None)


def probe_prometheus(probe: dict[str, t.Any], session: t.Any) -> Sample:
    import requests  # noqa: PLC0415

    start = time.monotonic()
    try:
        resp = session.get(
            probe["url"].rstrip("/") + "/api/v1/query",
            params={"query": probe["query"]},
            headers=probe.get("headers") or {},
            timeout=probe["timeout"],
            verify=probe["validate_certs"],
        )
        body = resp.json()
    except requests.exceptions.RequestException as exc:
        return Sample(probe["name"], FAILURE, message=f"Prometheus unreachable: {exc.__class__.__name__}")
    except ValueError:
        return Sample(probe["name"], FAILURE, message="Prometheus answered something that is not JSON")
    latency = round((time.monotonic() - start) * 1000, 2)
    if resp.status_code != 200 or body.get("status") != "success":
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=latency,
            status=resp.status_code,
            message=f"Prometheus error: {body.get('error', resp.status_code)}",
        )
    result = (body.get("data") or {}).get("result") or []
    rtype = (body.get("data") or {}).get("resultType")
    values = []
    if rtype == "scalar" and result:
        values = [float(result[1])]
    elif rtype == "vector":
        values = [float(r["value"][1]) for r in result]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        policy = probe["on_no_data"]
        outcome = {"fail": FAILURE, "pass": SUCCESS, "inconclusive": INCONCLUSIVE}[policy]
        return Sample(
            probe["name"],
            outcome,
            latency_ms=latency,
            message=f"query returned no data (on_no_data={policy})",
            final=True,
        )
    if len(values) > 1:
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=latency,
            message=f"query returned {len(values)} series; aggregate it to one value",
        )
    sample = Sample(probe["name"], SUCCESS, latency_ms=latency, value=values[0])
    if not probe["success_condition"] and not probe["failure_condition"]:
        sample.outcome, sample.message = FAILURE, "a prometheus probe needs success_condition or failure_condition"
    return sample


def probe_command(probe: dict[str, t.Any], run_command: t.Callable[..., tuple[int, str, str]]) -> Sample:
    start = time.monotonic()
    args = probe.get("argv") or probe["cmd"]
    try:
        rc, out, err = run_command(args, timeout=probe["timeout"])
    except TimeoutError:
        return Sample(
            probe["name"],
            FAILURE,
            latency_ms=round((time.monotonic() - start) * 1000, 2),
            message=f"command did not finish within {probe['timeout']}s",
        )
    latency = round((time.monotonic() - start) * 1000, 2)
    sample = Sample(probe["name"], SUCCESS, latency_ms=latency, status=rc)
    if rc not in probe["expected_rc"]:
        sample.outcome = FAILURE
        sample.message = f"exit code {rc}, expected {probe['expected_rc']}: {(err or out).strip()[:200]}"
    elif probe.get("_stdout_re") and not probe["_stdout_re"].search(out):
        sample.outcome, sample.message = FAILURE, f"output does not match /{probe['stdout_regex']}/"
    return sample


def run_probe(probe: dict[str, t.Any], session: t.Any, run_command: t.Callable[..., tuple[int, str, str]]) -> Sample:
    kind = probe["type"]
    if kind == "http":
        sample = probe_http(probe, session)
    elif kind == "tcp":
        sample = probe_tcp(probe)
    elif kind == "redis":
        sample = probe_redis(probe)
    elif kind == "prometheus":
        sample = probe_prometheus(probe, session)
    else:
        sample = probe_command(probe, run_command)
    return judge(sample, probe["success_condition"], probe["failure_condition"])


# ---------------------------------------------------------------------------------------------- the gate


def validate_policy(policy: Policy, probes: list[t.Any]) -> None:
    if not probes:
        raise HealthConfigError("probes must list at least one probe")
    if policy.interval < 0:
        raise HealthConfigError("interval must be >= 0 seconds")
    if policy.initial_delay < 0:
        raise HealthConfigError("initial_delay must be >= 0 seconds")
    if policy.count is None and policy.duration is None:
        raise HealthConfigError("one of count or duration is required")
    if policy.count is not None and policy.count < 1:
        raise HealthConfigError("count must be >= 1")
    if policy.duration is not None and policy.duration <= 0:
        raise HealthConfigError("duration must be > 0 seconds")
    if policy.failure_limit < 1 or policy.consecutive_successes < 1 or policy.inconclusive_limit < 1:
        raise HealthConfigError("failure_limit, consecutive_successes and inconclusive_limit must be >= 1")
    if policy.min_duration < 0:
        raise HealthConfigError("min_duration must be >= 0 seconds")
    if policy.min_duration and policy.duration is not None and policy.min_duration > policy.duration:
        raise HealthConfigError(
            f"min_duration ({policy.min_duration:g}s) is longer than duration ({policy.duration:g}s): the gate could "
            "never pass"
        )
    if policy.min_duration and policy.count is not None and 0 < policy.count * policy.interval < policy.min_duration:
        raise HealthConfigError(
            f"count {policy.count} rounds every {policy.interval:g}s cannot hold min_duration "
            f"{policy.min_duration:g}s: the gate could never pass"
        )


def baseline_verdict(
    samples: list[Sample], candidate: str, baseline: str, latency_tolerance: float, error_ratio_tolerance: float
) -> tuple[bool, str, dict[str, t.Any]]:
    cand = summarize([s for s in samples if s.probe == candidate])
    base = summarize([s for s in samples if s.probe == baseline])
    figures = {"candidate": cand, "baseline": base}
    problems = []
    if (
        cand["p95_ms"] is not None
        and base["p95_ms"] is not None
        and cand["p95_ms"] > base["p95_ms"] * (1 + latency_tolerance)
    ):
        problems.append(
            f"candidate p95 {cand['p95_ms']} ms > baseline p95 {base['p95_ms']} ms x {1 + latency_tolerance:g}"
        )
    if (cand["error_ratio"] or 0) > (base["error_ratio"] or 0) + error_ratio_tolerance:
        problems.append(
            f"candidate error ratio {cand['error_ratio']} > baseline {base['error_ratio']} + {error_ratio_tolerance:g}"
        )
    return (not problems, "; ".join(problems), figures)


PROBE_GRACE = 0.05  # seconds past a probe's timeout before the round stops waiting for it (its own timeout
# normally ends it first, with its own message)
EPSILON = 1e-6


@dataclass
class _Round:
    no: int  # 1-based
    offset: float  # start, seconds after t0
    deadlines: list[float]  # per probe, seconds after t0
    samples: list[Sample | None]

    def expire(self, probes: list[dict[str, t.Any]], now: float, wall: t.Callable[[], float]) -> None:
        for i, probe in enumerate(probes):
            if self.samples[i] is None and now >= self.deadlines[i]:
                self.samples[i] = Sample(
                    probe["name"],
                    FAILURE,
                    at=round(wall(), 3),
                    latency_ms=round(probe["timeout"] * 1000, 2),
                    message=f"no answer within {probe['timeout']}s",
                    round=self.no,
                )

    @property
    def done(self) -> bool:
        return all(s is not None for s in self.samples)


def _spawn_daemon(target: t.Callable[[], None]) -> None:
    # daemon: a probe still stuck past its timeout never holds the module's exit
    threading.Thread(target=target, daemon=True).start()


def _last_offset(policy: Policy) -> float | None:
    """Offset of the last round the schedule can start (interval > 0), None when unbounded or unknown."""
    if policy.interval <= 0:
        return None
    limits = []
    if policy.count is not None:
        limits.append((policy.count - 1) * policy.interval)
    if policy.duration is not None:
        limits.append(math.floor(policy.duration / policy.interval + EPSILON) * policy.interval)
    return min(limits) if limits else None


def _limits(policy: Policy) -> str:
    given = [f"count {policy.count}" if policy.count is not None else "", ""]
    if policy.duration is not None:
        given[1] = f"duration {policy.duration:g}s"
    return " and ".join(g for g in given if g)


def run_gate(
    probes: list[dict[str, t.Any]],
    policy: Policy,
    session: t.Any,
    run_command: t.Callable[..., tuple[int, str, str]],
    clock: t.Callable[[], float] = time.monotonic,
    sleep: t.Callable[[float], None] = time.sleep,
    wall: t.Callable[[], float] = time.time,
    baseline: dict[str, t.Any] | None = None,
    progress: t.Callable[[str], None] | None = None,
    spawn: t.Callable[[t.Callable[[], None]], None] | None = None,
    wait: t.Callable[[float], t.Any] | None = None,
) -> dict[str, t.Any]:
    """Run rounds until a decision; returns the module result (without 'changed').

    Rounds start at t0 + k x interval, their probes run concurrently (``spawn`` starts one; a daemon thread by
    default) and each is bounded by its timeout; the main loop sleeps in ``wait`` (the condition's wait by
    default: a finished probe wakes it) until the next round is due, a probe's deadline or the end of a hold.
    """
    started = clock()
    if policy.initial_delay:
        sleep(policy.initial_delay)
    cond = threading.Condition()
    spawn = spawn or _spawn_daemon
    wait = wait or cond.wait
    state = State()
    samples: list[Sample] = []
    decision: Decision | None = None
    launched: list[_Round] = []
    decided = 0  # rounds recorded in state, in order
    run_start: float | None = None  # offset of the first round of the current run of successes
    last_offset = _last_offset(policy)
    t0 = clock()

    def probe_task(rnd: _Round, i: int, probe: dict[str, t.Any]) -> t.Callable[[], None]:
        def task() -> None:
            try:
                sample = run_probe(probe, session, run_command)
            except Exception as exc:  # a probe that breaks is a failed probe, never a lost round
                sample = Sample(probe["name"], FAILURE, message=f"probe error: {exc.__class__.__name__}")
            sample.at = round(wall(), 3)
            sample.round = rnd.no
            with cond:
                if rnd.samples[i] is None:  # not already failed at its deadline
                    rnd.samples[i] = sample
                cond.notify_all()

        return task

    with cond:
        while decision is None:
            now = clock() - t0
            for rnd in launched[decided:]:
                rnd.expire(probes, now, wall)
            while decision is None and decided < len(launched) and launched[decided].done:
                rnd = launched[decided]
                decided += 1
                batch = t.cast("list[Sample]", rnd.samples)
                samples.extend(batch)
                gated = [s for s in batch if not (baseline and s.probe == baseline["probe"]["name"])]
                state.rounds.append(round_outcome(gated))
                if state.rounds[-1] != SUCCESS:
                    run_start = None
                elif run_start is None:
                    run_start = rnd.offset
                if progress:
                    progress(
                        f"round {rnd.no}: {state.rounds[-1]} ({', '.join(f'{s.probe}={s.outcome}' for s in batch)})"
                    )
                # a hold (min_duration) passes only below, once it spans min_duration
                decision = decide(state, policy, exhausted=False, held=False)
            if decision is not None:
                break
            in_flight = launched[decided:]
            pending = [r.deadlines[i] for r in in_flight for i, s in enumerate(r.samples) if s is None]
            span = now - run_start if run_start is not None else 0.0
            holding = bool(policy.min_duration) and state.streak >= policy.consecutive_successes
            hold_due = run_start + policy.min_duration if holding and run_start is not None else None
            if hold_due is not None and now >= hold_due - EPSILON:
                if not in_flight:
                    decision = decide(state, policy, exhausted=False, held=True, span=span)
                    break
                # the hold is over: no new round; the rounds still running must pass too
                wait(max(0.0, min(pending) - (clock() - t0)))
                continue
            next_no = len(launched) + 1
            # on the schedule; with interval 0 back to back (the next one once none is running)
            next_offset = (next_no - 1) * policy.interval if policy.interval > 0 else (math.inf if in_flight else now)
            more = (policy.count is None or next_no <= policy.count) and (
                policy.duration is None or next_offset <= policy.duration + EPSILON or next_offset == math.inf
            )
            if policy.min_duration and last_offset is not None:
                # the earliest a hold can start: the current run's start, or else the next round's
                if run_start is not None:
                    earliest = run_start
                elif in_flight:
                    earliest = in_flight[0].offset
                else:
                    earliest = next_offset if more else math.inf
                if earliest + policy.min_duration > last_offset + policy.interval + EPSILON:
                    decision = decide(
                        state,
                        policy,
                        exhausted=True,
                        span=span,
                        why_exhausted=f"after round {len(state.rounds)} the rounds left by {_limits(policy)} "
                        "cannot hold it any more",
                    )
                    break
            last_start = launched[-1].offset if launched else -math.inf
            if not more and not in_flight and (hold_due is None or hold_due > last_start + policy.interval + EPSILON):
                # no round left; a hold that ends within one interval of the last round is still waited for
                decision = decide(state, policy, exhausted=True, span=span)
                break
            if more and now >= next_offset - EPSILON:
                offset = next_offset if policy.interval > 0 else now
                rnd = _Round(
                    next_no,
                    offset,
                    [now + pr["timeout"] + PROBE_GRACE for pr in probes],
                    [None] * len(probes),
                )
                launched.append(rnd)
                for i, probe in enumerate(probes):
                    spawn(probe_task(rnd, i, probe))
                continue
            wake = list(pending)
            if more and next_offset != math.inf:
                wake.append(next_offset)
            if hold_due is not None:
                wake.append(hold_due)
            if not wake:  # not reached: something is always due; never spin
                wake.append(now + 0.05)
            wait(max(0.0, min(wake) - (clock() - t0)))
    verdict, reason = decision.verdict, decision.reason
    result: dict[str, t.Any] = {}
    if baseline and verdict == "passed":
        ok, why, figures = baseline_verdict(
            samples,
            baseline["candidate"],
            baseline["probe"]["name"],
            baseline["latency_tolerance"],
            baseline["error_ratio_tolerance"],
        )
        result["baseline"] = figures
        if not ok:
            verdict, reason = "failed", f"compared with the baseline: {why}"
    elif baseline:
        result["baseline"] = baseline_verdict(
            samples,
            baseline["candidate"],
            baseline["probe"]["name"],
            baseline["latency_tolerance"],
            baseline["error_ratio_tolerance"],
        )[2]
    if verdict != "passed":
        last_bad = next((s for s in reversed(samples) if s.outcome != SUCCESS), None)
        if last_bad is not None:
            reason += f"; last problem: {last_bad.probe}: {last_bad.message or last_bad.outcome}"
    result.update(
        {
            "passed": verdict == "passed",
            "verdict": verdict,
            "reason": reason,
            "rounds": decision.rounds,
            "round_outcomes": state.rounds,
            "samples": [
                {k: v for k, v in asdict(s).items() if v is not None and v != "" and k != "final"} for s in samples
            ],
            "summary": summarize([s for s in samples if not (baseline and s.probe == baseline["probe"]["name"])]),
            "duration_s": round(clock() - started, 3),
        }
    )
    return result
