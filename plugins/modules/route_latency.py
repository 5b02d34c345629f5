#!/usr/bin/python
# Copyright: (c) 2026, Sophia Platform Team
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: route_latency
short_description: Measure a route's latency and error rate with synthetic requests, and compare them with a baseline
version_added: 0.3.0
description:
  - Sends O(warmup) requests that are not counted, then O(count) measured ones, O(concurrency) at a time, to every
    combination of O(urls) and O(paths) in turn, and returns the p50, p95 and p99 latency (milliseconds, answered
    requests only, to the whole answer) and the error rate, overall and per URL.
  - An error is no answer within O(timeout), a refused connection, a TLS failure, or a status outside
    O(expected_status) (default every status below 500 - a 404 is an answer, a 502 is not).
  - The role P(sophia.migrate.traffic_shift#role) uses it before a route's share leaves 0%, to warm the K3s upstreams
    and compare them with the route's Compose side measured in the same run through the splitter (O(compare_urls);
    that side's figures become the route's baseline in the ledger), and at 100% through the splitter again (against
    the baseline). Phase 2C measures once more and reports the table.
  - With O(baseline) (a recorded one) or O(compare_urls) (a side measured in the same run), the measured figures are
    compared with a baseline. The p95 must stay within
    C(baseline.p95_ms x (1 + latency_tolerance) + latency_floor_ms) and the error rate within
    C(baseline.error_rate + error_rate_tolerance). RV(regressions) lists what is beyond that. With
    O(fail_on_regression) a regression fails the task, after the figures are measured and returned.
  - Never changes anything (C(changed) is always false). It sends requests in check mode too, with O(method)
    (default C(GET)). Point it at paths that are safe to request many times.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  urls:
    description:
      - Base URLs (C(http://host:port) or C(https://host:port), no path), for example a splitter frontend or a K3s
        upstream. The requests go to every base URL in turn.
    type: list
    elements: str
    required: true
  paths:
    description: Paths requested on every base URL, in turn (each starts with C(/); a query string is allowed).
    type: list
    elements: str
    default: [/health]
  headers:
    description: Headers of every request, for example C(Host) for an ingress that routes by host name.
    type: dict
    default: {}
  method:
    description: The HTTP method of every request.
    type: str
    choices: [GET, HEAD]
    default: GET
  count:
    description: Measured requests in all (1 to 100000).
    type: int
    default: 50
  warmup:
    description: Requests sent first and not counted (0 to 100000); they warm connections, caches and lazy loading.
    type: int
    default: 0
  concurrency:
    description: Requests in flight at once (1 to 64), each worker on one keep-alive connection.
    type: int
    default: 4
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 10
  expected_status:
    description: Statuses that count as answered; any other status is an error.
    type: list
    elements: int
  validate_certs:
    description: Verify the TLS certificate of an C(https://) URL.
    type: bool
    default: true
  ca_path:
    description: CA bundle for O(validate_certs) (default the system's).
    type: path
  baseline:
    description:
      - The figures to compare with, as a previous run returned them (at least C(p95_ms) and C(error_rate); the
        rest is ignored). Omit to measure only.
      - Mutually exclusive with O(compare_urls).
    type: dict
  compare_urls:
    description:
      - Base URLs of the side to compare with, measured in the same run. O(count) requests go to them too, one to
        each side in turn, so both sides meet the same moment's load; their figures are RV(baseline_latency) and the
        comparison is made against them. The warm-up requests go to O(urls) only.
    type: list
    elements: str
  compare_paths:
    description:
      - The paths on O(compare_urls) (default O(paths)), for a side that sees other paths (a prefix the edge strips).
    type: list
    elements: str
  compare_headers:
    description: Headers of the requests to O(compare_urls) (default O(headers)).
    type: dict
  latency_tolerance:
    description: Allowed relative increase of the p95 over the baseline's (C(1.0) = up to twice the baseline's).
    type: float
    default: 1.0
  latency_floor_ms:
    description: Milliseconds always allowed on top, so that a baseline of a few milliseconds does not fail on noise.
    type: float
    default: 50
  error_rate_tolerance:
    description: Allowed absolute increase of the error rate over the baseline's (C(0.01) = one point in a hundred).
    type: float
    default: 0.01
  fail_on_regression:
    description: Fail the task when RV(regressions) is not empty (the figures are still returned).
    type: bool
    default: false
notes:
  - Requires C(requests) on the host that runs it.
seealso:
  - module: sophia.migrate.health_gate
  - module: sophia.migrate.splitter_weight
"""

EXAMPLES = r"""
- name: Pre-warm a route's K3s side and compare it with its Compose side (through the splitter at 0%)
  sophia.migrate.route_latency:
    urls: ["http://10.213.255.20:30080"]
    paths: [/api/context/health, "/api/context/search?q=ping"]
    headers: {Host: www.sophia-intel.ai}
    compare_urls: ["http://127.0.0.1:9101"]
    compare_paths: [/health, "/search?q=ping"]
    warmup: 20
    count: 100
    concurrency: 4
    fail_on_regression: true
  register: prewarm

- name: Later, the route through the splitter against the baseline recorded then
  sophia.migrate.route_latency:
    urls: ["http://127.0.0.1:9101"]
    paths: [/health, "/search?q=ping"]
    headers: {Host: www.sophia-intel.ai}
    baseline: "{{ prewarm.baseline_latency }}"
"""

RETURN = r"""
latency:
  description: The measured figures.
  returned: always
  type: dict
  contains:
    count: {description: Measured requests., type: int}
    errors: {description: Measured requests that failed., type: int}
    error_rate: {description: errors / count., type: float}
    p50_ms: {description: Median latency of the answered requests (null when none was answered)., type: float}
    p95_ms: {description: 95th percentile., type: float}
    p99_ms: {description: 99th percentile., type: float}
    max_ms: {description: Slowest answer., type: float}
    statuses: {description: How many answers had each status (C(none) - no answer)., type: dict}
    first_errors: {description: Up to five distinct error messages., type: list}
    per_url: {description: The same figures per requested URL., type: dict}
    seconds: {description: How long the measured requests took., type: float}
    warmup: {description: Warm-up requests sent first., type: int}
    warmup_seconds: {description: How long they took., type: float}
  sample:
    count: 100
    errors: 0
    error_rate: 0.0
    p50_ms: 2.1
    p95_ms: 4.8
    p99_ms: 7.0
    max_ms: 7.3
    statuses: {"200": 100}
    first_errors: []
baseline_latency:
  description: The figures of O(compare_urls), as RV(latency) has them (without the warm-up keys).
  returned: when O(compare_urls) is given
  type: dict
regressions:
  description: What is beyond the baseline's tolerances (empty when within them, or without a baseline).
  returned: always
  type: list
  elements: str
  sample: ["p95 480.0 ms > 109.6 ms (baseline p95 29.8 ms x 2 + 50 ms)"]
within_baseline:
  description: True when there was a baseline to compare with and nothing is beyond it; null without one.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _http, _latency
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "urls": {"type": "list", "elements": "str", "required": True},
            "paths": {"type": "list", "elements": "str", "default": ["/health"]},
            "headers": {"type": "dict", "default": {}},
            "method": {"type": "str", "choices": ["GET", "HEAD"], "default": "GET"},
            "count": {"type": "int", "default": 50},
            "warmup": {"type": "int", "default": 0},
            "concurrency": {"type": "int", "default": 4},
            "timeout": {"type": "float", "default": 10},
            "expected_status": {"type": "list", "elements": "int"},
            "validate_certs": {"type": "bool", "default": True},
            "ca_path": {"type": "path"},
            "baseline": {"type": "dict"},
            "compare_urls": {"type": "list", "elements": "str"},
            "compare_paths": {"type": "list", "elements": "str"},
            "compare_headers": {"type": "dict"},
            "latency_tolerance": {"type": "float", "default": 1.0},
            "latency_floor_ms": {"type": "float", "default": 50},
            "error_rate_tolerance": {"type": "float", "default": 0.01},
            "fail_on_regression": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    if not _http.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    p = dict(module.params)
    if p["expected_status"] is None:
        p["expected_status"] = list(range(100, 500))
    p["headers"] = {str(k): str(v) for k, v in p["headers"].items()}
    if p["compare_headers"] is not None:
        p["compare_headers"] = {str(k): str(v) for k, v in p["compare_headers"].items()}
    try:
        _latency.check_options(p)
    except _latency.LatencyConfigError as exc:
        module.fail_json(msg=f"route_latency: {exc}; no request was sent")
    import requests  # noqa: PLC0415 - present (checked above)

    measured = _latency.measure(p, requests.Session)
    baseline = p["baseline"] or measured.get("baseline_latency")
    regressions = _latency.compare(measured["latency"], baseline, p) if baseline else []
    result = {"changed": False, **measured, "regressions": regressions,
              "within_baseline": (not regressions) if baseline else None}
    if regressions and p["fail_on_regression"]:
        module.fail_json(msg="route_latency: beyond the baseline: " + "; ".join(regressions), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
