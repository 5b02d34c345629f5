#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: success_criteria
short_description: Measure the migration's technical success criteria and judge each one
version_added: 0.1.0
description:
  - Measures, from Prometheus and the migration ledger, the four technical success criteria of the
    Sophia migration plan and judges each as passed, failed or not measurable (never passed without data).
  - All services healthy, with C(min_over_time(up[window])) per target; GPU utilisation below the target
    on average (C(DCGM_FI_DEV_GPU_UTIL)); response times maintained, with the p95 of a latency histogram per service
    against a baseline with a tolerance; zero data loss, from the ledger's data steps being done and verified.
  - Read-only.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - requests
options:
  prometheus_url:
    description: Base URL of Prometheus.
    type: str
    required: true
  validate_certs:
    description: Verify Prometheus' TLS certificate.
    type: bool
    default: true
  window:
    description: Window of the measurements (Prometheus duration).
    type: str
    default: 1h
  up_selector:
    description: Label selector of the targets that must be up, for example C({namespace="sophia"}).
    type: str
    default: "{}"
  gpu_target:
    description: Average GPU utilisation (percent) that must not be reached.
    type: float
    default: 80
  latency_histogram:
    description: Name of the latency histogram (without C(_bucket)).
    type: str
    default: sophia_request_duration_seconds
  latency_selectors:
    description:
      - Label selector of the histogram per service.
      - For example V(mcp-research) mapped to C({service="mcp-research"}).
    type: dict
    default: {}
  latency_baseline:
    description: p95 latency in seconds per service measured before the move (on Compose).
    type: dict
    default: {}
  latency_tolerance:
    description: Allowed relative increase over the baseline (0.1 = 10%).
    type: float
    default: 0.1
  ledger_path:
    description: Migration ledger with the data steps, a file on the host the module runs on.
    type: path
  ledger:
    description:
      - The ledger's content, as M(sophia.migrate.ledger) with C(operation=read) returns it in C(ledger), for a run on
        another host than the ledger's (Phase 2C measures on the K3s server, the ledger is on the controller).
      - Mutually exclusive with O(ledger_path).
    type: dict
  data_step_prefixes:
    description: Ledger steps that count as data steps.
    type: list
    elements: str
    default: [data/, redis/, qdrant/, volume/]
"""

EXAMPLES = r"""
- name: Judge the success criteria after phase 2B
  sophia.migrate.success_criteria:
    prometheus_url: http://127.0.0.1:9090
    up_selector: '{namespace="sophia"}'
    latency_selectors:
      mcp-research: '{service="mcp-research"}'
    latency_baseline:
      mcp-research: 0.120
    ledger_path: "{{ sophia_ledger_path }}"
  register: criteria
"""

RETURN = r"""
criteria:
  description:
    - One entry per criterion with C(name), C(target), C(measured), C(passed) and C(evidence).
    - C(passed) is true, false, or null when the criterion could not be measured.
  returned: always
  type: list
  elements: dict
all_passed:
  description:
    - True when every criterion passed, false when one failed.
    - Null when none failed but one was not measurable.
  returned: always
  type: bool
"""

import math

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _criteria, _http, _ledger, _usage
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._prometheus import Prometheus, PrometheusError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prometheus_url": {"type": "str", "required": True},
            "validate_certs": {"type": "bool", "default": True},
            "window": {"type": "str", "default": "1h"},
            "up_selector": {"type": "str", "default": "{}"},
            "gpu_target": {"type": "float", "default": 80},
            "latency_histogram": {"type": "str", "default": "sophia_request_duration_seconds"},
            "latency_selectors": {"type": "dict", "default": {}},
            "latency_baseline": {"type": "dict", "default": {}},
            "latency_tolerance": {"type": "float", "default": 0.1},
            "ledger_path": {"type": "path"},
            "ledger": {"type": "dict"},
            "data_step_prefixes": {
                "type": "list",
                "elements": "str",
                "default": ["data/", "redis/", "qdrant/", "volume/"],
            },
        },
        mutually_exclusive=[("ledger_path", "ledger")],
        supports_check_mode=True,
    )
    if not _http.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    p = module.params
    ledger = p["ledger"]
    if ledger is not None and not (isinstance(ledger.get("entries"), list)
                                   and all(isinstance(e, dict) for e in ledger["entries"])):
        module.fail_json(msg="success_criteria: option 'ledger' is not a ledger (it needs an 'entries' list of "
                             "steps, as the ledger module's read returns it)")
    baseline = {}
    for service, seconds in p["latency_baseline"].items():
        try:
            baseline[service] = float(seconds)
        except (TypeError, ValueError):
            baseline[service] = math.nan
        if not math.isfinite(baseline[service]) or baseline[service] < 0:
            module.fail_json(msg=f"success_criteria: option 'latency_baseline' must map services to seconds "
                                 f"({service!r:.80}: {seconds!r:.80})")
    try:
        _usage.check_duration(p["window"], "window")
        prom = Prometheus(p["prometheus_url"], validate_certs=p["validate_certs"])
        criteria = [
            _criteria.uptime(prom, p["up_selector"], p["window"]),
            _criteria.gpu_utilisation(prom, p["window"], p["gpu_target"]),
            _criteria.latency(
                prom, p["latency_histogram"], p["latency_selectors"], baseline, p["latency_tolerance"], p["window"]
            ),
            _criteria.data_loss(
                ledger if ledger is not None
                else _ledger.load(p["ledger_path"]) if p["ledger_path"] else {"entries": []},
                p["data_step_prefixes"],
            ),
        ]
    except ValueError as exc:  # a URL urllib cannot parse (an unclosed IPv6 bracket)
        module.fail_json(msg=f"success_criteria: option 'prometheus_url' is not a valid URL ({exc})")
    except (_usage.UsageError, PrometheusError, _http.HttpError, _ledger.LedgerError) as exc:
        module.fail_json(msg=f"success_criteria: {exc}")
    verdicts = [c["passed"] for c in criteria]
    all_passed = False if False in verdicts else (None if None in verdicts else True)
    module.exit_json(changed=False, criteria=criteria, all_passed=all_passed)


if __name__ == "__main__":
    main()
