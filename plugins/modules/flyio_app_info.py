#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: flyio_app_info
short_description: Read Fly.io apps - status, machines, volumes, certificates, IPs, secret names
version_added: 0.1.0
description:
  - For every app of O(org) and every app named in O(apps), reads the app (C(GET /apps/{app})), its machines
    (state, region, image, last update), its volumes (size, attached machine), its certificates, its IP assignments
    and the B(names) of its secrets. Secret values are never requested.
  - An app the API answers 404 for is returned with RV(apps[].exists=false). An app the token may not read
    (HTTP 403) is returned with RV(apps[].exists=null) and RV(apps[].forbidden=true); an invalid token (401) fails.
  - Rate limits are respected - HTTP 429 (and 5xx) answers are retried with exponential backoff, honouring
    C(Retry-After).
  - Certificates come from C(GET /apps/{app}/certificates) (Fly.io certificates resource docs; not in the 2024-01
    OpenAPI document). When that endpoint answers 404 the certificates are reported as unknown (V(null)) and the
    reason is listed in RV(apps[].incomplete).
  - The Machines API has no endpoint for IP assignments or secrets; they are read from the Fly.io GraphQL API
    (O(graphql_url)), as C(flyctl ips list) and C(flyctl secrets list) do. If that fails, RV(apps[].ips) and
    RV(apps[].secret_names) are V(null) and the reason is in RV(apps[].incomplete).
  - An app counts as missing only when C(GET /apps/{app}) answers 404 with the Fly API's error object (JSON with an
    C(error) text); a 404 with another body fails (the answer may not come from the Fly API).
  - The volumes of an existing app are read positively or reported unknown (RV(apps[].volumes) null, the reason in
    RV(apps[].incomplete)); only an invalid token (401) makes that fail the module.
  - Only reads; never changes anything.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
requirements:
  - requests
options:
  api_token:
    description:
      - Fly.io API token. A plain token is sent in the C(Authorization) header with the C(Bearer) scheme; a macaroon
        token given as C(FlyV1 fm2_...) (or starting with C(fm1_)/C(fm2_)) is sent with the C(FlyV1) scheme.
      - Never logged. Defaults to the environment variables E(FLY_API_TOKEN) or E(FLY_ACCESS_TOKEN).
    type: str
    required: true
  api_url:
    description: Base URL of the Machines API (tests point it at a stand-in server).
    type: str
    default: https://api.machines.dev/v1
  graphql_url:
    description: URL of the Fly.io GraphQL API, used for IP assignments and secret names only.
    type: str
    default: https://api.fly.io/graphql
  org:
    description:
      - Organization slug whose apps are all listed (C(GET /apps?org_slug=)). One of O(org) or O(apps) is required.
    type: str
  apps:
    description: App names to read, in addition to those of O(org) (for example the legacy apps named in a report).
    type: list
    elements: str
    default: []
  include:
    description: What to read for each existing app besides the app itself.
    type: list
    elements: str
    choices: [machines, volumes, certificates, ips, secrets]
    default: [machines, volumes, certificates, ips, secrets]
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: float
    default: 30
  retries:
    description: Retries of a call answered 429 or 5xx (or not answered), with exponential backoff.
    type: int
    default: 5
  backoff:
    description: First backoff delay in seconds (doubled on each retry) when the API sends no C(Retry-After).
    type: float
    default: 1.0
seealso:
  - module: sophia.migrate.flyio_app
  - name: Fly Machines API
    description: Working with the Machines API.
    link: https://fly.io/docs/machines/api/working-with-machines-api/
"""

EXAMPLES = r"""
- name: Everything the org holds, plus the legacy apps named in the Phase 1 report
  sophia.migrate.flyio_app_info:
    api_token: "{{ vault_fly_api_token }}"
    org: sophia-ai
    apps: [sophiaai-dashboard-v2, sophiaai-jobs-v2]
  register: fly

- name: Only the volumes of one app, against a stand-in server
  sophia.migrate.flyio_app_info:
    api_token: "{{ fly_token }}"
    api_url: http://127.0.0.1:18470/v1
    graphql_url: http://127.0.0.1:18470/graphql
    apps: [sophiaai-jobs-v2]
    include: [volumes]
"""

RETURN = r"""
apps:
  description: One entry per app (the org's apps first, then O(apps)).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: App name.
      type: str
    exists:
      description: True when the app exists, false when the API answered 404, null when forbidden (403).
      type: bool
    forbidden:
      description: The token may not read this app.
      type: bool
    status:
      description: App status as the API reports it.
      type: str
    hostname:
      description: The app's C(.fly.dev) host name.
      type: str
    machines:
      description: Machines with C(id), C(name), C(state), C(region), C(image), C(updated_at), C(created_at).
      type: list
      elements: dict
    volumes:
      description:
        - Volumes with C(id), C(name), C(size_gb), C(state), C(region), C(attached_machine_id), C(attached).
        - Null when they are unknown - not requested (O(include)), or not listed positively (the API did not answer
          200 with a list of volumes valid against the OpenAPI C(Volume) schema, each with an C(id); a 404 counts as
          unknown, never as "no volume"). The reason is then in RV(apps[].incomplete).
      type: list
      elements: dict
    certificates:
      description: Certificates with C(hostname), C(status), C(configured); null when unknown.
      type: list
      elements: dict
    ips:
      description: IP assignments with C(address), C(type), C(region); null when unknown.
      type: list
      elements: dict
    secret_names:
      description: Names of the app's secrets (never values); null when unknown.
      type: list
      elements: str
    incomplete:
      description: What could not be read, with the reason.
      type: list
      elements: str
  sample:
    - name: sophiaai-jobs-v2
      exists: true
      forbidden: false
      status: deployed
      organization: sophia-ai
      hostname: sophiaai-jobs-v2.fly.dev
      machines: [{id: 148ed193b95089, state: stopped, region: iad, image: "registry.fly.io/sophiaai-jobs-v2:v12",
                  updated_at: "2024-05-01T10:00:00Z"}]
      volumes: [{id: vol_1, name: jobs_data, size_gb: 10, attached: true, attached_machine_id: 148ed193b95089}]
      certificates: []
      ips: [{address: 2a09:8280:1::1, type: v6, region: global}]
      secret_names: [REDIS_URL]
      incomplete: []
org_apps:
  description: Names of the apps listed for O(org).
  returned: always
  type: list
  elements: str
missing:
  description: Names the API answered 404 for.
  returned: always
  type: list
  elements: str
forbidden:
  description: Names the token may not read (403).
  returned: always
  type: list
  elements: str
api_url:
  description: The Machines API base URL that was asked (credentials it may carry redacted).
  returned: always
  type: str
"""

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _flyio_api, _flyio_redact, _http
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

ARGUMENT_SPEC = {
    "api_token": {
        "type": "str",
        "required": True,
        "no_log": True,
        "fallback": (env_fallback, ["FLY_API_TOKEN", "FLY_ACCESS_TOKEN"]),
    },
    "api_url": {"type": "str", "default": _flyio_api.DEFAULT_API_URL},
    "graphql_url": {"type": "str", "default": _flyio_api.DEFAULT_GRAPHQL_URL},
    "org": {"type": "str"},
    "apps": {"type": "list", "elements": "str", "default": []},
    "include": {
        "type": "list", "elements": "str", "choices": list(_flyio_api.INCLUDE), "default": list(_flyio_api.INCLUDE)
    },
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 30},
    "retries": {"type": "int", "default": 5},
    "backoff": {"type": "float", "default": 1.0},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_one_of=[("org", "apps")], supports_check_mode=True)
    if not _http.HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    p = module.params
    # credentials in a URL are masked wherever the module's result would show them (invocation included)
    module.no_log_values.update(_flyio_redact.url_secrets(p["api_url"]) | _flyio_redact.url_secrets(p["graphql_url"]))
    shown_url = _flyio_redact.redact_secrets(p["api_url"])
    bad = [a for a in p["apps"] if not _flyio_api.valid_app_name(a)]
    if bad:
        module.fail_json(msg=f"flyio_app_info: option 'apps': not a Fly app name: {', '.join(bad)}")
    try:
        client = _flyio_api.FlyClient(
            p["api_token"],
            p["api_url"],
            p["graphql_url"],
            p["timeout"],
            p["validate_certs"],
            p["retries"],
            p["backoff"],
        )
        result = _flyio_api.gather(client, p["apps"], p["org"], p["include"])
    except _flyio_api.FlyError as exc:
        module.fail_json(msg=f"flyio_app_info: {exc}", api_url=shown_url)
    module.exit_json(changed=False, api_url=shown_url, **result)


if __name__ == "__main__":
    main()
