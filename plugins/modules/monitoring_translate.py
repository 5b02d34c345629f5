#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: monitoring_translate
short_description: Translate the Compose stack's Prometheus scrape configs and Grafana dashboards for Kubernetes
version_added: 0.1.0
description:
  - Reads the Prometheus configuration of the Compose stack and turns C(static_configs) targets that name
    Compose services into C(kubernetes_sd_configs) (role C(endpoints)) that keep exactly that Service and port,
    ready for kube-prometheus-stack's C(prometheus.prometheusSpec.additionalScrapeConfigs).
  - Targets the Kubernetes monitoring stack covers itself (node exporter, cAdvisor) are reported as replaced;
    addresses outside the stack stay static; what cannot be carried over (file, Docker or Consul service
    discovery, relabelling on Docker metadata) is reported with the reason. Nothing is dropped silently.
  - Grafana dashboard JSON files become ConfigMaps for Grafana's dashboard sidecar, with datasource references
    rewritten through O(datasource_map); unknown datasources are reported.
  - Read-only; the results are data for the observability role.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
options:
  prometheus_config:
    description: Path of the Compose stack's C(prometheus.yml) (on the host the module runs on).
    type: path
  dashboards_dir:
    description: Directory of Grafana dashboard JSON files.
    type: path
  namespace:
    description: Namespace the services run in on Kubernetes.
    type: str
    default: sophia
  services:
    description:
      - Compose host name to Kubernetes Service name. Empty means every non-address host is a Service of the same name.
    type: dict
    default: {}
  datasource_map:
    description: Old datasource name or uid to the new one.
    type: dict
    default: {}
  dashboard_label:
    description: Label Grafana's dashboard sidecar watches.
    type: str
    default: grafana_dashboard
"""

EXAMPLES = r"""
- name: Translate the monitoring configuration of the Compose stack
  sophia.migrate.monitoring_translate:
    prometheus_config: /opt/sophia/monitoring/prometheus.yml
    dashboards_dir: /opt/sophia/monitoring/grafana/dashboards
    namespace: sophia
    datasource_map: {Prometheus: prometheus}
  register: monitoring
"""

RETURN = r"""
scrape_configs:
  description: Scrape configs for additionalScrapeConfigs (translated, then the static ones kept).
  returned: when O(prometheus_config) is given
  type: list
  elements: dict
translated:
  description: Number of targets moved to Kubernetes service discovery.
  returned: when O(prometheus_config) is given
  type: int
replaced:
  description: Targets the Kubernetes stack covers itself, with what replaces them.
  returned: when O(prometheus_config) is given
  type: list
  elements: dict
untranslated:
  description: What could not be carried over, with the reason.
  returned: always
  type: list
  elements: dict
configmaps:
  description: Dashboard ConfigMaps.
  returned: when O(dashboards_dir) is given
  type: list
  elements: dict
problems:
  description: Dashboard files that could not be read or reference unknown datasources.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _obs_translate as ot
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prometheus_config": {"type": "path"},
            "dashboards_dir": {"type": "path"},
            "namespace": {"type": "str", "default": "sophia"},
            "services": {"type": "dict", "default": {}},
            "datasource_map": {"type": "dict", "default": {}},
            "dashboard_label": {"type": "str", "default": "grafana_dashboard"},
        },
        required_one_of=[["prometheus_config", "dashboards_dir"]],
        supports_check_mode=True,
    )
    if not ot.HAS_YAML:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    p = module.params
    for name in ("services", "datasource_map"):
        bad = sorted(str(k) for k, v in p[name].items() if not isinstance(v, str) or not v)
        if bad:
            module.fail_json(msg=f"monitoring_translate: option '{name}': each value must be a name, "
                                 f"not for {', '.join(repr(k[:80]) for k in bad[:5])}")
    result = {"changed": False, "untranslated": [], "problems": []}
    try:
        if p["prometheus_config"]:
            result.update(ot.translate_scrape_configs(ot.load_yaml(p["prometheus_config"]), p["namespace"],
                                                      p["services"], p["prometheus_config"]))
        if p["dashboards_dir"]:
            result.update(ot.dashboards_to_configmaps(p["dashboards_dir"], p["namespace"], p["datasource_map"],
                                                      p["dashboard_label"]))
    except ot.TranslateError as exc:
        module.fail_json(msg=f"monitoring_translate: {exc}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
