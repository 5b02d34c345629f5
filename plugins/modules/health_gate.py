#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_gate
short_description: Decide from real probes whether a migration step may proceed
version_added: 0.1.0
description:
  - Runs rounds of probes (HTTP(S), TCP connect, Redis C(PING), a Prometheus instant query compared with
    thresholds, a command on the target, the certificate a TLS endpoint serves) and decides like an Argo Rollouts
    AnalysisRun, between a Docker Compose host and K3s alike.
  - A probe sample fails on a transport error or timeout, when C(probes[].failure_condition) is met, or when
    C(probes[].success_condition) (or the probe's own expectation, such as the HTTP status) is not met. A
    Prometheus query that returns no data follows the probe's explicit C(probes[].on_no_data) policy.
  - A round runs its probes concurrently, each bounded by its own C(timeout) (a probe with no answer at its
    timeout fails then). Rounds start on a fixed schedule, round k at k x O(interval) after the start (after
    O(initial_delay)); a round still running when the next is due does not delay it (the next starts anyway, with
    fresh probes). So an endpoint failing from the start fails the gate within
    (O(failure_limit) - 1) x O(interval) + timeout, and one that starts failing later within
    O(failure_limit) x O(interval) + timeout of that moment.
  - A round fails when any probe failed. The gate fails as soon as O(failure_limit) rounds failed, passes
    as soon as O(consecutive_successes) rounds in a row succeeded, and is inconclusive when O(inconclusive_limit)
    rounds were inconclusive. When O(count) rounds or O(duration) seconds run out first, it fails, so a
    flapping target never passes.
  - With O(min_duration), a pass is a hold - the successful rounds in a row must also span O(min_duration)
    seconds, every round in that window passing; the gate still fails as soon as O(failure_limit) rounds failed.
  - With O(baseline), a baseline endpoint is probed in the same rounds and the candidate must stay within
    O(baseline.latency_tolerance) of its p95 latency and O(baseline.error_ratio_tolerance) of its error ratio.
  - A failed or inconclusive gate fails the task with a reason a person can act on, unless O(fail_on_failure=false).
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
    details:
      - Probes only read, so the gate runs and reports in check mode too.
  diff_mode:
    support: N/A
requirements:
  - requests (HTTP and Prometheus probes)
  - redis (Redis probes)
  - cryptography (TLS probes)
options:
  probes:
    description:
      - The probes, at least one. Common keys are C(name), C(type), C(timeout), C(success_condition),
        C(failure_condition) and C(on_no_data); each type takes its own keys (listed below with the type that takes
        them). A key that the probe's type does not take is refused.
      - C(http) takes C(url), C(method), C(expected_status), C(body_regex), C(json_path) with optional C(json_value),
        C(headers), C(body), C(validate_certs), C(ca_path), C(client_cert), C(client_key).
      - C(tcp) takes C(host) and C(port).
      - C(redis) takes C(url) (V(redis://...), V(rediss://...) or V(unix://...)) or C(host), C(port), C(db),
        C(username), C(password), C(tls).
      - C(prometheus) takes C(url) (the base URL of Prometheus), C(query) (must return one value), C(headers),
        C(validate_certs) and thresholds in C(success_condition)/C(failure_condition) (C(min_value), C(max_value)).
      - C(command) takes C(argv) (list) or C(cmd) (string), C(expected_rc), C(stdout_regex); it runs on the host the
        module runs on.
      - C(tls) takes C(host), C(port), C(server_name), C(ca_path), C(min_days), C(expected_sha256),
        C(expected_issuer). It connects to C(host) with SNI C(server_name) and judges the served certificate by the
        rules of M(sophia.migrate.tls_check) - the chain verifies against C(ca_path) (default the system trust
        store), the certificate is valid for C(server_name), valid now with at least C(min_days) days left, and is the
        expected one when C(expected_sha256) or C(expected_issuer) is given. The sample's C(message) names every
        failure (C(connection refused), C(TLS handshake timed out), C(untrusted), C(host name mismatch),
        C(expired), C(expires soon), C(unexpected certificate), C(unexpected issuer)); its C(certificate) holds the
        served certificate's C(sha256), C(issuer), C(not_after) and C(days_left).
      - Secrets never show in the output, also at C(-vvv) - C(password) and C(headers) are not logged, and every URL
        shown (in the invocation, results and messages) is cut to scheme, host, port and path - C(user:password@),
        the query string and the fragment are removed.
    type: list
    elements: dict
    required: true
    suboptions: &probe
      name:
        description: Name of the probe in samples and messages (default V(<type>-<index>)).
        type: str
      type:
        description: V(http), V(tcp), V(redis), V(prometheus), V(command) or V(tls).
        type: str
        required: true
      timeout:
        description:
          - Seconds a sample may take (default 5).
          - V(tls) - the connection and the TLS handshake together; an endpoint that accepts the connection and never
            answers the handshake fails at this bound.
        type: float
      success_condition:
        description: A dict with any of C(status) (list), C(max_latency_ms), C(min_value), C(max_value) that must hold.
        type: dict
      failure_condition:
        description: A dict with the same keys as O(probes[].success_condition); the sample fails when it holds.
        type: dict
      on_no_data:
        description:
          - V(fail) (default), V(pass) or V(inconclusive) when a Prometheus query returns no data.
        type: str
      url:
        description:
          - V(http) - the URL to request (V(http://) or V(https://)); V(prometheus) - the base URL of Prometheus;
            V(redis) - V(redis://[[user]:password@]host[:port][/db]), V(rediss://...) or V(unix://...).
          - Credentials in the URL must be percent-encoded; they never show in the output.
        type: str
      method:
        description: V(http) - the HTTP method (default V(GET)).
        type: str
      expected_status:
        description: V(http) - the statuses that count as success (default V([200])).
        type: list
        elements: int
      body_regex:
        description: V(http) - a regular expression the body must match.
        type: str
      json_path:
        description: V(http) - a dotted path (V(status), V(checks[0].ok)) that must exist in the JSON answer.
        type: str
      json_value:
        description: V(http) - the value expected at O(probes[].json_path).
        type: raw
      headers:
        description: V(http), V(prometheus) - request headers (for example C(Authorization)). Not logged.
        type: dict
      body:
        description: V(http) - the request body.
        type: raw
      validate_certs:
        description: V(http), V(prometheus) - verify the TLS certificate (default true).
        type: bool
      ca_path:
        description:
          - V(http) - CA bundle that signed the server certificate.
          - V(tls) - PEM file of the CAs to trust (default the system trust store); it must exist and hold a CA
            certificate.
        type: path
      client_cert:
        description: V(http) - client certificate (mutual TLS).
        type: path
      client_key:
        description: V(http) - key of O(probes[].client_cert).
        type: path
      host:
        description: V(tcp), V(redis), V(tls) (required) - the host name or address to connect to.
        type: str
      port:
        description: V(tcp) - the port (required); V(redis) - the port (default 6379); V(tls) - the port (default 443).
        type: int
      server_name:
        description:
          - V(tls) - the name sent as SNI and checked against the certificate (default O(probes[].host)); give it
            when O(probes[].host) is an address.
        type: str
        version_added: 0.3.0
      min_days:
        description: V(tls) - fewer days left before the certificate expires than this fail the sample (default 14).
        type: int
        version_added: 0.3.0
      expected_sha256:
        description: V(tls) - the SHA-256 fingerprint the served certificate must have (hex, colons allowed).
        type: str
        version_added: 0.3.0
      expected_issuer:
        description: V(tls) - the served certificate's issuer (its CN, O or RFC 4514 name), for example C(R11).
        type: str
        version_added: 0.3.0
      db:
        description: V(redis) - the database number (default 0).
        type: int
      username:
        description: V(redis) - the ACL user.
        type: str
      password:
        description: V(redis) - the password. Not logged.
        type: str
      tls:
        description: V(redis) - connect with TLS.
        type: bool
      query:
        description: V(prometheus) - the PromQL query; it must return one value.
        type: str
      cmd:
        description: V(command) - a shell command line.
        type: str
      argv:
        description: V(command) - the command as a list (no shell).
        type: list
        elements: str
      expected_rc:
        description: V(command) - the exit codes that count as success (default V([0])).
        type: list
        elements: int
      stdout_regex:
        description: V(command) - a regular expression the output must match.
        type: str
  interval:
    description:
      - Seconds between the starts of two rounds (round k starts k x O(interval) after the first); V(0) runs
        the rounds back to back.
    type: float
    default: 5
  count:
    description: Maximum number of rounds. One of O(count) and O(duration) is required.
    type: int
  duration:
    description:
      - Maximum seconds of measuring - no round starts later than O(duration) after the first (counted after
        O(initial_delay)).
    type: float
  min_duration:
    description:
      - Seconds the gate holds before it may pass - the successful rounds in a row must span at least
        O(min_duration) from the start of the first of them, every round in that window passing (rounds still
        running at that moment must pass too). At O(min_duration) the gate starts no new round and passes.
      - A failed round restarts the hold (and counts towards O(failure_limit)); when the rounds left by O(count) or
        O(duration) can no longer hold O(min_duration), the gate fails at once. It must not exceed O(duration),
        nor O(count) x O(interval).
      - V(0) (default) - the gate passes at O(consecutive_successes) rounds in a row.
    type: float
    default: 0
    version_added: 0.2.0
  initial_delay:
    description: Seconds to wait before the first round.
    type: float
    default: 0
  failure_limit:
    description: Failed rounds that fail the gate.
    type: int
    default: 1
  consecutive_successes:
    description: Successful rounds in a row that pass the gate.
    type: int
    default: 1
  inconclusive_limit:
    description: Inconclusive rounds that make the gate inconclusive.
    type: int
    default: 3
  baseline:
    description: Compare a candidate probe with a baseline endpoint measured in the same rounds.
    type: dict
    suboptions:
      candidate:
        description: Name of the probe that is the candidate (for example the K3s side).
        type: str
        required: true
      probe:
        description: The baseline probe (same keys as a probe; usually the Compose side). It does not gate by itself.
        type: dict
        required: true
        suboptions: *probe
      latency_tolerance:
        description: Allowed relative increase of the candidate's p95 latency over the baseline's.
        type: float
        default: 0.2
      error_ratio_tolerance:
        description: Allowed absolute increase of the candidate's error ratio over the baseline's.
        type: float
        default: 0.0
  fail_on_failure:
    description: Fail the task when the verdict is not V(passed).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The K3s side of the API answers, Redis is up and the error ratio stays low
  sophia.migrate.health_gate:
    probes:
      - name: k3s-api
        type: http
        url: https://www.sophia-intel.ai:30443/api/research/health
        expected_status: [200]
        json_path: status
        json_value: ok
        timeout: 2
        success_condition: {max_latency_ms: 500}
      - {name: redis, type: redis, url: "redis://10.43.0.10:6379/0", timeout: 1}
      - name: error-ratio
        type: prometheus
        url: http://127.0.0.1:9090
        query: sum(rate(sophia_request_errors_total[1m])) / sum(rate(sophia_requests_total[1m]))
        success_condition: {max_value: 0.01}
        on_no_data: inconclusive
    interval: 5
    count: 24
    failure_limit: 2
    consecutive_successes: 6
  register: gate

# Gate a traffic weight change: measure K3s against Compose in the same window.
- name: Is K3s as fast as Compose at 25%?
  sophia.migrate.health_gate:
    probes:
      - {name: k3s, type: http, url: "http://127.0.0.1:30080/api/research/health", timeout: 2}
    baseline:
      candidate: k3s
      probe: {name: compose, type: http, url: "http://127.0.0.1:8080/api/research/health", timeout: 2}
      latency_tolerance: 0.2
    interval: 1
    count: 30
    consecutive_successes: 10
    fail_on_failure: false
  register: gate

- name: Step back when the gate did not pass
  ansible.builtin.debug:
    msg: "stepping back: {{ gate.reason }}"
  when: not gate.passed

# Each step of the traffic walk holds HTTPS too: the public address serves the imported certificate.
- name: HTTPS and the API hold at this step
  sophia.migrate.health_gate:
    probes:
      - name: www-tls
        type: tls
        host: 192.222.51.223
        server_name: www.sophia-intel.ai
        expected_sha256: "{{ ingress_certs_tls.certificates[0].sha256 }}"
        min_days: 14
        timeout: 3
      - {name: k3s, type: http, url: "https://www.sophia-intel.ai/api/research/health", timeout: 2}
    interval: 10
    duration: 300
    min_duration: 300
"""

RETURN = r"""
passed:
  description: True when the verdict is V(passed).
  returned: always
  type: bool
verdict:
  description: V(passed), V(failed) or V(inconclusive).
  returned: always
  type: str
reason:
  description: One sentence saying why, with the last problem seen.
  returned: always
  type: str
  sample: "2 of 3 rounds failed (failure_limit 2); last problem: k3s-api: HTTP 503, expected [200]"
rounds:
  description: Rounds run.
  returned: always
  type: int
round_outcomes:
  description: Outcome of each round (success, failure, inconclusive).
  returned: always
  type: list
  elements: str
samples:
  description:
    - Every sample with C(probe), C(round), C(at) (epoch seconds), C(outcome), C(latency_ms), C(status),
      C(value) and C(message).
    - A C(tls) probe's sample has C(certificate) (C(sha256), C(issuer), C(not_after), C(days_left)) when a
      certificate was served.
  returned: always
  type: list
  elements: dict
summary:
  description: C(samples), C(failures), C(error_ratio), C(p50_ms), C(p95_ms), overall and C(per_probe).
  returned: always
  type: dict
baseline:
  description: Summary figures of candidate and baseline when O(baseline) is used.
  returned: when O(baseline) is given
  type: dict
duration_s:
  description: Seconds the gate took.
  returned: always
  type: float
"""

import subprocess

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _health, _health_criteria, _health_rounds, _tls
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._health_probe_spec import (
    PROBE_OPTIONS,
    normalize_probe,
    redact_probe,
)

try:
    import requests

    HAS_REQUESTS = True
except ImportError:
    HAS_REQUESTS = False


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "probes": {"type": "list", "elements": "dict", "required": True, "options": PROBE_OPTIONS},
            "interval": {"type": "float", "default": 5},
            "count": {"type": "int"},
            "duration": {"type": "float"},
            "min_duration": {"type": "float", "default": 0},
            "initial_delay": {"type": "float", "default": 0},
            "failure_limit": {"type": "int", "default": 1},
            "consecutive_successes": {"type": "int", "default": 1},
            "inconclusive_limit": {"type": "int", "default": 3},
            "baseline": {
                "type": "dict",
                "options": {
                    "candidate": {"type": "str", "required": True},
                    "probe": {"type": "dict", "required": True, "options": PROBE_OPTIONS},
                    "latency_tolerance": {"type": "float", "default": 0.2},
                    "error_ratio_tolerance": {"type": "float", "default": 0.0},
                },
            },
            "fail_on_failure": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = dict(module.params)
    # What Ansible shows as the invocation (also at -vvv) is module.params: there the probe URLs go without
    # user:password@ and query; the probes run with the real ones kept in p.
    module.params["probes"] = [redact_probe(raw) for raw in p["probes"]]
    if p["baseline"]:
        module.params["baseline"] = dict(p["baseline"], probe=redact_probe(p["baseline"]["probe"]))
    policy = _health.Policy(
        interval=p["interval"],
        count=p["count"],
        duration=p["duration"],
        initial_delay=p["initial_delay"],
        failure_limit=p["failure_limit"],
        consecutive_successes=p["consecutive_successes"],
        inconclusive_limit=p["inconclusive_limit"],
        min_duration=p["min_duration"],
    )
    try:
        _health_criteria.validate_policy(policy, p["probes"])
        probes = [normalize_probe(raw, i) for i, raw in enumerate(p["probes"])]
        baseline = None
        if p["baseline"]:
            baseline = dict(p["baseline"], probe=normalize_probe(p["baseline"]["probe"], len(probes)))
            if baseline["candidate"] not in {pr["name"] for pr in probes}:
                raise _health.HealthConfigError(f"baseline.candidate '{baseline['candidate']}' names no probe")
    except _health.HealthConfigError as exc:
        module.fail_json(msg=f"health_gate: {exc}")
    kinds = {pr["type"] for pr in probes + ([baseline["probe"]] if baseline else [])}
    if kinds & {"http", "prometheus"} and not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    if "tls" in kinds and not _tls.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib(_tls.REQUIREMENT))

    session = requests.Session() if HAS_REQUESTS else None
    all_probes = probes + ([baseline["probe"]] if baseline else [])
    result = _health_rounds.run_gate(all_probes, policy, session, _run_with_timeout, baseline=baseline)
    if not result["passed"] and p["fail_on_failure"]:
        module.fail_json(msg=f"health_gate: {result['verdict']}: {result['reason']}", changed=False, **result)
    module.exit_json(changed=False, **result)


def _run_with_timeout(args, timeout):
    try:
        proc = subprocess.run(
            args, shell=isinstance(args, str), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError from exc
    return proc.returncode, proc.stdout, proc.stderr


if __name__ == "__main__":
    main()
