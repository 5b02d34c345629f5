#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: qdrant_snapshot
short_description: Create, download (verified), upload and recover Qdrant snapshots
version_added: 0.1.0
description:
  - Manages Qdrant collection snapshots (O(collection) set) and full storage snapshots (O(collection) omitted)
    through Qdrant's REST API.
  - V(present) creates a snapshot (Qdrant names it). V(absent) deletes O(snapshot_name). V(listed) lists snapshots.
  - V(downloaded) streams a snapshot (the newest, or O(snapshot_name)) to O(dest) with constant memory, computing its
    sha256 while downloading and comparing it - and the size - with what Qdrant reports. The file is written under a
    temporary name in the same directory, fsynced, and renamed only when it matches, so nothing partial or corrupted
    is ever left under the final name. A transfer that breaks is resumed with an HTTP C(Range) request (or restarted
    when the server ignores it) up to O(retries) times. An existing O(dest) with the right checksum is not downloaded
    again.
  - V(uploaded) uploads the local file O(src) to the target and recovers O(collection) from it; V(recovered) does the
    same with O(src), or makes the target fetch the snapshot itself from O(location) (a URL).
    Recovery uses O(priority) (default V(snapshot)) and O(wait), and passes the sha256 so the server verifies it too.
  - Before a recovery the target is checked and refused with the reason when it cannot take the snapshot - its Qdrant
    version must be the same as the snapshot's or the next minor version, and when O(collection) already exists on the
    target its vectors (size, distance, named vectors), sparse vectors and shard count must match the snapshot's.
    The snapshot's version and config are read from the snapshot file (C(version.info), C(config.json)) when present,
    else from O(source) (the Qdrant the snapshot came from) or O(source_version).
  - An existing non-empty target collection is not overwritten unless O(force=true); compare it with
    M(sophia.migrate.qdrant_compare).
author:
  - Sophia Platform Team (@sophia-ai)
requirements:
  - requests
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads snapshot lists, versions and collection configs (and runs the compatibility checks) and reports what
        would change; creates, deletes, downloads and uploads nothing.
  diff_mode:
    support: partial
    details:
      - V(absent), V(uploaded) and V(recovered) return what is replaced.
options:
  state:
    description: What to do; see the description.
    type: str
    choices: [present, absent, downloaded, uploaded, recovered, listed]
    default: present
  url:
    description: Base URL of the Qdrant REST API (for example V(https://qdrant.example.internal:6333)).
    type: str
    required: true
  api_key:
    description: Qdrant API key (sent as the C(api-key) header). Never logged.
    type: str
  validate_certs:
    description: Verify the TLS certificate of O(url). Turn off only for a lab.
    type: bool
    default: true
  ca_path:
    description: CA bundle that signed the server certificate.
    type: path
  client_cert:
    description: Client certificate (mutual TLS).
    type: path
  client_key:
    description: Key of O(client_cert).
    type: path
  timeout:
    description: Seconds to wait for a connection or for any read of an answer (not the whole transfer).
    type: float
    default: 60
  retries:
    description:
      - Retries after a connection error, a 5xx/429 answer, or a transfer that broke (with exponential backoff).
    type: int
    default: 3
  backoff:
    description: First backoff delay in seconds (doubled at each retry, at most 30).
    type: float
    default: 1.0
  collection:
    description:
      - Collection name. Omit for full storage snapshots (V(present), V(absent), V(downloaded), V(listed) only).
      - Required for V(uploaded) and V(recovered).
    type: str
  snapshot_name:
    description:
      - Snapshot to delete (V(absent), required) or to download (V(downloaded); default the newest).
      - With V(present), the snapshot must exist (nothing is created).
    type: str
  reuse_max_age:
    description:
      - With V(present), reuse the newest existing snapshot when it is at most this many seconds old instead of
        creating another one (V(0) always creates one).
    type: float
    default: 0
  dest:
    description:
      - With V(downloaded), the file to write (mode 0600) or an existing directory (the snapshot name is appended).
    type: path
  src:
    description: With V(uploaded) or V(recovered), the local snapshot file to upload.
    type: path
  location:
    description:
      - With V(recovered), a URL the target Qdrant fetches the snapshot from (V(http://), V(https://), V(file://)).
      - It may carry a token (a presigned URL's query string, C(user:password@)); it is sent to Qdrant as given, but
        shown everywhere (invocation, result, diff, messages) without credentials, query string and fragment. It is
        not O(location_api_key)-like C(no_log), so the host and path stay visible.
    type: str
  location_api_key:
    description: API key the target uses to fetch O(location) (Qdrant's C(api_key) field). Never logged.
    type: str
  checksum:
    description:
      - Expected sha256 (64 hex digits). With V(downloaded) it must agree with the checksum Qdrant reports; with
        V(uploaded)/V(recovered) O(src) must have it, or it is sent with O(location) for the server to verify.
    type: str
  priority:
    description: Source of truth during recovery (Qdrant's C(priority)).
    type: str
    choices: [snapshot, replica, no_sync]
    default: snapshot
  wait:
    description: Wait until the recovery is complete (Qdrant's C(wait)).
    type: bool
    default: true
  force:
    description:
      - V(downloaded) downloads again even when O(dest) already holds the snapshot.
      - V(uploaded)/V(recovered) replace a target collection that already holds points.
    type: bool
    default: false
  check_compatibility:
    description: Run the version and config checks before a recovery. Turn off only when you know better.
    type: bool
    default: true
  source:
    description: The Qdrant the snapshot came from, used by the compatibility checks (version, collection config).
    type: dict
    suboptions:
      url:
        description: Base URL of its REST API.
        type: str
        required: true
      api_key:
        description: Its API key. Never logged.
        type: str
      validate_certs:
        description: Verify its TLS certificate.
        type: bool
        default: true
      ca_path:
        description: CA bundle for its certificate.
        type: path
  source_collection:
    description: Name of the collection on O(source) when it differs from O(collection).
    type: str
  source_version:
    description: Qdrant version that made the snapshot, when neither the file nor O(source) tells it.
    type: str
  chunk_size:
    description: Bytes per read while streaming (1 to 8 MiB is best; memory use is about 3 times this).
    type: int
    default: 4194304
  flush_size:
    description:
      - With O(state=downloaded), flush the file to disk (C(fdatasync), in a background thread) every this many
        bytes while it streams, so the final C(fsync) before the rename has only the tail to write and the page
        cache never holds more than about two of these windows of unwritten data.
      - V(0) flushes only at the end (the whole file at once). Otherwise at least O(chunk_size).
    type: int
    default: 67108864
notes:
  - Qdrant recovers full storage snapshots only from its command line (C(--snapshot)); this module downloads them.
  - The download's memory use is flat (a ring of three O(chunk_size) buffers), whatever the snapshot size.
seealso:
  - module: sophia.migrate.qdrant_compare
  - name: Qdrant snapshots
    description: Qdrant's documentation of snapshots.
    link: https://qdrant.tech/documentation/concepts/snapshots/
"""

EXAMPLES = r"""
- name: Snapshot the Compose Qdrant collection before anything changes
  sophia.migrate.qdrant_snapshot:
    url: http://127.0.0.1:6333
    api_key: "{{ qdrant_api_key }}"
    collection: sophia_embeddings
    state: present
  register: snap

- name: Download it, verified against the checksum Qdrant reports
  sophia.migrate.qdrant_snapshot:
    url: http://127.0.0.1:6333
    api_key: "{{ qdrant_api_key }}"
    collection: sophia_embeddings
    snapshot_name: "{{ snap.snapshot.name }}"
    state: downloaded
    dest: /var/backups/sophia/qdrant/
  register: backup

- name: Recover it into the K3s Qdrant (refused if the target is incompatible)
  sophia.migrate.qdrant_snapshot:
    url: https://qdrant.k3s.internal:6333
    api_key: "{{ qdrant_k3s_api_key }}"
    ca_path: /etc/sophia/ca.pem
    collection: sophia_embeddings
    state: uploaded
    src: "{{ backup.path }}"
    source:
      url: http://127.0.0.1:6333
      api_key: "{{ qdrant_api_key }}"

- name: Or let the target fetch the snapshot itself from the source
  sophia.migrate.qdrant_snapshot:
    url: https://qdrant.k3s.internal:6333
    api_key: "{{ qdrant_k3s_api_key }}"
    collection: sophia_embeddings
    state: recovered
    location: "http://10.42.0.1:6333/collections/sophia_embeddings/snapshots/{{ snap.snapshot.name }}"
    location_api_key: "{{ qdrant_api_key }}"
    checksum: "{{ snap.snapshot.checksum }}"
    source_version: "1.19.0"

- name: Delete the snapshot on the source once the target is verified
  sophia.migrate.qdrant_snapshot:
    url: http://127.0.0.1:6333
    api_key: "{{ qdrant_api_key }}"
    collection: sophia_embeddings
    snapshot_name: "{{ snap.snapshot.name }}"
    state: absent
"""

RETURN = r"""
state:
  description: The state that ran.
  returned: always
  type: str
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
snapshot:
  description: The snapshot concerned, as Qdrant describes it (C(name), C(size), C(checksum), C(creation_time)).
  returned: state=present, absent, downloaded
  type: dict
  sample:
    name: docs-1-2026-01-05-10-00-00.snapshot
    size: 1048576
    checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    creation_time: "2026-01-05T10:00:00"
snapshots:
  description: All snapshots, oldest first.
  returned: state=listed
  type: list
  elements: dict
path:
  description: The local snapshot file (downloaded or uploaded).
  returned: state=downloaded, uploaded, or recovered with src
  type: str
sha256:
  description: sha256 of the file, computed while streaming.
  returned: state=downloaded (not in check mode), uploaded, or recovered with src
  type: str
size_bytes:
  description: Size of the file.
  returned: when sha256 is returned
  type: int
checksum_verified:
  description: Whether the download was compared with a checksum reported by Qdrant or given in O(checksum).
  returned: state=downloaded (not in check mode)
  type: bool
resumed:
  description: How many times a broken download was resumed with a C(Range) request.
  returned: when a download ran
  type: int
restarted:
  description: How many times a broken download started again from byte 0 (server ignored C(Range)).
  returned: when a download ran
  type: int
throughput_mib_s:
  description: Download throughput.
  returned: when a download ran
  type: float
flushes:
  description: How many times the file was flushed to disk while it streamed (O(flush_size)), before the final fsync.
  returned: when a download ran
  type: int
compatibility:
  description: What the compatibility checks compared (C(source_version), C(target_version), C(version), C(config)).
  returned: state=uploaded or recovered with check_compatibility=true
  type: dict
recovered:
  description: Whether Qdrant answered that the recovery is complete.
  returned: when a recovery ran
  type: bool
location:
  description: O(location) without credentials, query string and fragment.
  returned: when a recovery from O(location) ran
  type: str
points_count:
  description: Points in the recovered collection afterwards.
  returned: when a recovery ran with wait=true
  type: int
attempts:
  description: HTTP requests made (including retries).
  returned: always
  type: int
duration_seconds:
  description: Wall time of the run.
  returned: always
  type: float
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _qdrant, _qdrant_snapshot
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule
from ansible_collections.sophia.migrate.plugins.module_utils._http import HAS_REQUESTS, redact_url

_SOURCE = {k: _qdrant.CONNECTION_SPEC[k] for k in ("url", "api_key", "validate_certs", "ca_path")}
ARGUMENT_SPEC = {
    "state": {"type": "str", "choices": list(_qdrant.STATES), "default": "present"},
    **_qdrant.CONNECTION_SPEC,
    "collection": {"type": "str"},
    "snapshot_name": {"type": "str"},
    "reuse_max_age": {"type": "float", "default": 0},
    "dest": {"type": "path"},
    "src": {"type": "path"},
    "location": {"type": "str"},
    "location_api_key": {"type": "str", "no_log": True},
    "checksum": {"type": "str"},
    "priority": {"type": "str", "choices": list(_qdrant.PRIORITIES), "default": "snapshot"},
    "wait": {"type": "bool", "default": True},
    "force": {"type": "bool", "default": False},
    "check_compatibility": {"type": "bool", "default": True},
    "source": {"type": "dict", "options": _SOURCE},
    "source_collection": {"type": "str"},
    "source_version": {"type": "str"},
    "chunk_size": {"type": "int", "default": _qdrant.DEFAULT_CHUNK},
    "flush_size": {"type": "int", "default": _qdrant.DEFAULT_FLUSH},
}


def run(module: AnsibleModule, p: dict) -> dict:
    ep = _qdrant.Endpoint.from_params("url", p)
    req = _qdrant.SnapshotRequest(
        state=p["state"],
        collection=p["collection"],
        snapshot_name=p["snapshot_name"],
        dest=p["dest"],
        src=p["src"],
        location=p["location"],
        location_api_key=p["location_api_key"],
        checksum=p["checksum"],
        priority=p["priority"],
        wait=p["wait"],
        force=p["force"],
        reuse_max_age=p["reuse_max_age"],
        source=_qdrant.Endpoint.from_params("source", p["source"]) if p["source"] else None,
        source_collection=p["source_collection"],
        source_version=p["source_version"],
        check_compatibility=p["check_compatibility"],
        chunk_size=p["chunk_size"],
        flush_size=p["flush_size"],
    )
    return _qdrant_snapshot.snapshot(ep, req, module.check_mode)


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
    params = dict(module.params)
    # Ansible prints module.params as the invocation (also at -vvv): the URLs go there without credentials, query
    # or fragment (a presigned location's signature); the module works with the real ones.
    for key in ("url", "location"):
        if params[key]:
            module.params[key] = redact_url(params[key])
    if params["source"] and params["source"].get("url"):
        module.params["source"] = dict(params["source"], url=redact_url(params["source"]["url"]))
    try:
        result = run(module, params)
    except _qdrant.QdrantError as exc:
        module.fail_json(msg=f"qdrant_snapshot: {exc}", **exc.facts)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
