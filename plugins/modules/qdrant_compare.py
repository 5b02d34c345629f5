#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: qdrant_compare
short_description: Prove that two Qdrant collections hold the same data (config, count, content digest, search)
version_added: 0.1.0
description:
  - Compares a source and a target Qdrant collection, read-only, and proves content equality rather than counting.
  - B(Config) - the keys in O(config_keys) of both collection configs (vectors, sparse vectors, shard count, ...).
  - B(Count) - exact point counts (C(exact=true)).
  - B(Content) - an order-independent sha256 digest over every point (id + vectors + payload, canonical JSON),
    computed by scrolling both collections in batches of O(batch_size). Both scrolls run in id order side by side
    (merge join), so each differing, missing or extra point is named by id (the first O(max_differences)),
    with memory independent of the collection size.
  - B(Search) - for O(search_samples) vectors sampled from the source (reservoir, seeded by O(seed)), the top
    O(search_limit) point ids on both sides must match (ties in score may come in any order).
  - Fails when anything differs unless O(fail_on_difference=false); the result carries all figures either way.
author:
  - Sophia Platform Team (@sophia-ai)
requirements:
  - qdrant-client >= 1.12
extends_documentation_fragment:
  - sophia.migrate.attributes
  - sophia.migrate.attributes.INFO_MODULE
options:
  source:
    description: The Qdrant the data comes from.
    type: dict
    required: true
    suboptions: &conn
      url:
        description: Base URL of the REST API (for example V(http://127.0.0.1:6333)).
        type: str
        required: true
      api_key:
        description: API key. Never logged.
        type: str
      validate_certs:
        description: Verify the TLS certificate. Turn off only for a lab.
        type: bool
        default: true
      ca_path:
        description: CA bundle that signed the server certificate.
        type: path
      client_cert:
        description: Client certificate (mutual TLS).
        type: path
      client_key:
        description: Key of the client certificate.
        type: path
      timeout:
        description: Seconds to wait for each request.
        type: float
        default: 60
      retries:
        description: Retries after connection errors and 5xx/429 answers (exponential backoff).
        type: int
        default: 3
      backoff:
        description: First backoff delay in seconds.
        type: float
        default: 1.0
  target:
    description: The Qdrant the data went to. Same sub-options as O(source).
    type: dict
    required: true
    suboptions: *conn
  collection:
    description: Collection on the source (and on the target unless O(target_collection) is set).
    type: str
    required: true
  target_collection:
    description: Collection name on the target when it differs.
    type: str
  batch_size:
    description: Points per scroll request.
    type: int
    default: 256
  max_differences:
    description: How many differing points (and search mismatches) to list.
    type: int
    default: 20
  search_samples:
    description: Number of query vectors sampled from the source for the search-parity check (V(0) skips it).
    type: int
    default: 10
  search_limit:
    description: Top-k compared per query.
    type: int
    default: 10
  search_exact:
    description:
      - Use exact (brute-force) search on both sides, so the check proves the data and not the HNSW graphs.
        With V(false) approximate search is compared, which may differ legitimately between two index builds.
    type: bool
    default: true
  vector_name:
    description: Named vector used for the search check (default the first dense one).
    type: str
  seed:
    description: Seed of the sampling of query vectors (same seed, same queries).
    type: int
    default: 0
  config_keys:
    description: Dotted keys of the collection config that must be equal.
    type: list
    elements: str
    default: [params.vectors, params.sparse_vectors, params.shard_number, params.sharding_method, quantization_config]
  fail_on_difference:
    description: Fail when the collections differ (the result still carries the figures).
    type: bool
    default: true
seealso:
  - module: sophia.migrate.qdrant_snapshot
"""

EXAMPLES = r"""
- name: Prove the K3s Qdrant holds exactly the Compose Qdrant's embeddings
  sophia.migrate.qdrant_compare:
    source: {url: "http://127.0.0.1:6333", api_key: "{{ qdrant_api_key }}"}
    target: {url: "https://qdrant.k3s.internal:6333", api_key: "{{ qdrant_k3s_api_key }}", ca_path: /etc/sophia/ca.pem}
    collection: sophia_embeddings
    search_samples: 50
  register: qdrant_equal

- name: Report differences without failing (for a dashboard)
  sophia.migrate.qdrant_compare:
    source: {url: "http://127.0.0.1:6333"}
    target: {url: "http://127.0.0.1:30633"}
    collection: sophia_embeddings
    fail_on_difference: false
  register: qdrant_diff
"""

RETURN = r"""
equal:
  description: Whether config, count, content digest and search parity all match.
  returned: always
  type: bool
msg:
  description: Summary of the result.
  returned: always
  type: str
config_differences:
  description: Config keys that differ, each with C(key), C(source), C(target).
  returned: always
  type: list
  elements: dict
count:
  description: Exact point counts C(source) and C(target).
  returned: always
  type: dict
digest:
  description: Content digests (hex) and points scrolled on each side.
  returned: always
  type: dict
differing_points:
  description: Points present on both sides with different vectors or payload.
  returned: always
  type: int
missing_on_target:
  description: Points of the source that the target lacks.
  returned: always
  type: int
only_on_target:
  description: Points only the target has.
  returned: always
  type: int
differences:
  description: The first differing points, each with C(id) and C(problem) (which payload keys differ, or vector).
  returned: always
  type: list
  elements: dict
  sample: [{"id": 4242, "problem": "payload differs in ['title']"}]
ordered_scroll:
  description: Whether both servers scrolled in id order (needed to name differing ids; the digest does not need it).
  returned: always
  type: bool
search:
  description: C(samples), C(limit), C(exact) and the C(mismatches) (query point id, source and target ids).
  returned: always
  type: dict
duration_seconds:
  description: Wall time.
  returned: always
  type: float
points_per_second:
  description: Points scrolled and hashed per second, both sides together.
  returned: always
  type: float
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _qdrant, _qdrant_client, _qdrant_compare
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

_CONN = _qdrant.CONNECTION_SPEC
ARGUMENT_SPEC = {
    "source": {"type": "dict", "required": True, "options": _CONN},
    "target": {"type": "dict", "required": True, "options": _CONN},
    "collection": {"type": "str", "required": True},
    "target_collection": {"type": "str"},
    "batch_size": {"type": "int", "default": 256},
    "max_differences": {"type": "int", "default": 20},
    "search_samples": {"type": "int", "default": 10},
    "search_limit": {"type": "int", "default": 10},
    "search_exact": {"type": "bool", "default": True},
    "vector_name": {"type": "str"},
    "seed": {"type": "int", "default": 0},
    "config_keys": {
        "type": "list", "elements": "str", "default": list(_qdrant_compare.DEFAULT_CONFIG_KEYS), "no_log": False
    },
    "fail_on_difference": {"type": "bool", "default": True},
}


def run(module: AnsibleModule) -> dict:
    p = module.params
    for name in ("batch_size", "search_limit"):
        if p[name] < 1:
            module.fail_json(msg=f"qdrant_compare: option '{name}' must be at least 1")
    opts = _qdrant_compare.CompareOptions(
        collection=p["collection"],
        target_collection=p["target_collection"],
        batch_size=p["batch_size"],
        max_differences=p["max_differences"],
        search_samples=p["search_samples"],
        search_limit=p["search_limit"],
        search_exact=p["search_exact"],
        vector_name=p["vector_name"],
        seed=p["seed"],
        config_keys=p["config_keys"],
    )
    return _qdrant_compare.compare(
        _qdrant.Endpoint.from_params("source", p["source"]), _qdrant.Endpoint.from_params("target", p["target"]), opts
    )


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        _qdrant_client.import_qdrant_client()
    except ImportError as exc:
        module.fail_json(msg=missing_required_lib("qdrant-client"), exception=str(exc))
    try:
        result = run(module)
    except _qdrant.QdrantError as exc:
        module.fail_json(msg=f"qdrant_compare: {exc}", **exc.facts)
    if not result["equal"] and module.params["fail_on_difference"]:
        module.fail_json(**{**result, "msg": f"qdrant_compare: collections differ: {result['msg']}"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
