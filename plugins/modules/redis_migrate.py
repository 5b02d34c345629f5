#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_migrate
short_description: Move live Redis data with zero loss and a way back (replication, dump/restore, RDB, verify)
version_added: 0.1.0
description:
  - V(replicate) (default) makes O(target) a replica of O(source) (C(REPLICAOF), credentials via
    C(masterauth)/C(masteruser)), waits for the initial sync and for the replication offset to catch up,
    and with O(cutover=true) promotes the target.
    The cutover uses C(FAILOVER TO) when the source lists the target among its replicas, or pauses writers on the source
    (C(CLIENT PAUSE WRITE)), waits for offset equality and promotes the target (C(REPLICAOF NO ONE)).
    With O(way_back=true) the old source then replicates from the new primary, so going back is the same module
    with O(source) and O(target) swapped. Every wait has a deadline; on a timeout nothing is promoted.
  - After the cutover a server that no longer replicates keeps no replication credential of the migration -
    C(masterauth)/C(masteruser) set by the migration are put back as they were before (cleared when they were
    empty; a value found in place before is kept). On the new primary, a value equal to the source's credential
    left by an earlier run (replication started by one run, cutover by the next) is cleared.
  - V(dump) copies keys with C(SCAN) + C(DUMP)/C(RESTORE), pipelined, TTLs preserved, for targets that cannot replicate
    (managed Redis). With O(ledger_path) the scan cursor is saved after every batch and a new run resumes from it.
    The checkpoint names the source and the target (address, C(run_id) and C(master_replid) from C(INFO)), the
    databases and the copy's own run id; a checkpoint that does not match the current source, target and databases
    (another server, a server restarted since, a checkpoint written by hand or by an older version) is refused,
    naming the mismatch and the ledger, and nothing is copied. Remove it (M(sophia.migrate.ledger)
    C(operation=set_state) C(value=null)) to start afresh; O(overwrite_target) then applies again.
  - V(rdb) streams an RDB snapshot of O(source) over the replication protocol (as C(redis-cli --rdb) does) into O(dest)
    on the host running the module, with its sha256. Use it as the backup before anything changes.
  - V(verify) compares O(source) and O(target) per database, fully or on a random O(sample) - key count, type,
    TTL within O(ttl_tolerance_ms), value (C(DUMP) payload, then a type-aware read when encodings differ) - and
    lists the first O(max_differences) differing keys. Keys found different are read again once, so writes still
    in flight on a replicating pair are not reported.
  - TLS of the replication link itself (target to source) is server configuration (C(tls-replication)),
    not an option here.
author:
  - Sophia Platform Team (@sophia-ai)
requirements:
  - redis (redis-py) >= 5
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
    details:
      - Connects and reads state (roles, key counts) to report what would happen; changes nothing.
  diff_mode:
    support: partial
    details:
      - O(mode=replicate) returns the roles before and after.
options:
  mode:
    description: What to do; see the description.
    type: str
    choices: [replicate, dump, rdb, verify]
    default: replicate
  source:
    description: The Redis server data comes from (the current primary).
    type: dict
    required: true
    suboptions: &conn
      host:
        description: Host name or address.
        type: str
        default: 127.0.0.1
      port:
        description: TCP port.
        type: int
        default: 6379
      username:
        description: ACL user name (Redis 6+). Omit for the C(default) user.
        type: str
      password:
        description: Password (C(requirepass) or the ACL user's password).
        type: str
      tls:
        description: Connect with TLS.
        type: bool
        default: false
      tls_ca_path:
        description: CA bundle that signed the server certificate.
        type: path
      tls_cert_path:
        description: Client certificate (mutual TLS).
        type: path
      tls_key_path:
        description: Key of O(source.tls_cert_path).
        type: path
      tls_verify:
        description: Verify the server certificate and host name. Turn off only for a lab.
        type: bool
        default: true
      connect_timeout:
        description: Seconds to wait for a TCP connection.
        type: float
        default: 5
  target:
    description:
      - The Redis server data goes to. Required unless O(mode=rdb). Same sub-options as O(source).
    type: dict
    suboptions: *conn
  cutover:
    description: With O(mode=replicate), promote the target once it has caught up.
    type: bool
    default: false
  cutover_method:
    description:
      - V(failover) uses C(FAILOVER TO) (the source must list the target's address among its replicas); it is sent
        once the source lists the target as online (a wait bounded by O(cutover_timeout)).
      - V(pause) pauses writes on the source, waits for offset equality, then C(REPLICAOF NO ONE) on the target.
      - V(auto) uses V(failover) when possible, else V(pause).
    type: str
    choices: [auto, failover, pause]
    default: auto
  way_back:
    description:
      - After the cutover, make the old source a replica of the new primary (the way back).
      - With V(false) the old source becomes a stand-alone primary again once the cutover is over; writes that
        reach it then are not on the new primary.
    type: bool
    default: true
  replicaof:
    description:
      - Address the target uses to reach the source, when it differs from O(source.host)/O(source.port)
        (for example a Kubernetes pod reaching the Compose host).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        default: 6379
  way_back_address:
    description: Address the old source uses to reach the target after the cutover, when it differs from O(target).
    type: dict
    suboptions:
      host:
        description: Host name or address.
        type: str
        required: true
      port:
        description: TCP port.
        type: int
        default: 6379
  sync_timeout:
    description:
      - Seconds to wait for the initial sync and catch-up. On a timeout the module fails and nothing is promoted.
    type: float
    default: 600
  cutover_timeout:
    description:
      - Seconds the cutover may take (offset equality under the write pause, or C(FAILOVER) C(TIMEOUT)).
        On a timeout writers are resumed on the source and nothing is promoted.
    type: float
    default: 30
  overwrite_target:
    description:
      - Allow replacing keys that the target already holds (O(mode=replicate) and O(mode=dump)).
      - A O(mode=dump) run resuming from its own checkpoint does not ask again (the keys are its own copy).
    type: bool
    default: false
  databases:
    description: Database numbers for O(mode=dump) and O(mode=verify). Default all non-empty databases of the source.
    type: list
    elements: int
  batch_size:
    description:
      - Keys per pipelined batch (O(mode=dump), O(mode=verify)). At least V(1).
      - With O(mode=verify) each batch is read on each server by one Lua script (C(DUMP) digest and C(PTTL)
        of every key), which the server runs atomically - it serves no other client meanwhile. The block grows
        with the batch; the result reports the longest one (RV(longest_block_ms)). Lower O(batch_size) to
        bound it on a busy production server, raise it for throughput on an idle one.
    type: int
    default: 1000
  replace:
    description: With O(mode=dump), C(RESTORE ... REPLACE) keys that exist on the target (needed to resume).
    type: bool
    default: true
  ledger_path:
    description: With O(mode=dump), the migration ledger where the scan cursor is checkpointed and the step recorded.
    type: path
  ledger_step:
    description: Ledger step name for O(mode=dump). A step already recorded as done is not copied again.
    type: str
    default: redis/dump
  dest:
    description: File to write with O(mode=rdb) (mode 0600, written atomically). Required for O(mode=rdb).
    type: path
  force:
    description: With O(mode=rdb), take a new snapshot even if O(dest) exists.
    type: bool
    default: false
  sample:
    description: With O(mode=verify), number of random keys to check per database; V(0) checks every key.
    type: int
    default: 0
  ttl_tolerance_ms:
    description: With O(mode=verify), largest accepted difference between the TTLs of a key.
    type: int
    default: 2000
  max_differences:
    description: With O(mode=verify), how many differing keys to list.
    type: int
    default: 20
  fail_on_difference:
    description: With O(mode=verify), fail when anything differs (the result still carries the figures).
    type: bool
    default: true
notes:
  - The O(mode=replicate) cutover is zero-loss for writes that were acknowledged - a write blocked by the pause or
    by C(FAILOVER) is answered with C(READONLY) by the old source; clients must retry it against the new primary.
seealso:
  - module: sophia.migrate.ledger
"""

EXAMPLES = r"""
- name: Back up the Compose Redis before anything changes
  sophia.migrate.redis_migrate:
    mode: rdb
    source: {host: 127.0.0.1, port: 6379, password: "{{ redis_password }}"}
    dest: /var/backups/sophia/redis-before-migration.rdb
  register: redis_backup

- name: Replicate into the K3s Redis and wait until it has caught up
  sophia.migrate.redis_migrate:
    source: {host: 127.0.0.1, port: 6379, password: "{{ redis_password }}"}
    target: {host: 127.0.0.1, port: 30379, password: "{{ redis_password }}"}
    replicaof: {host: 10.42.0.1, port: 6379}  # how the pod reaches the Compose Redis
    sync_timeout: 900

- name: Cut over, keeping the old Redis as a replica of the new primary
  sophia.migrate.redis_migrate:
    source: {host: 127.0.0.1, port: 6379, password: "{{ redis_password }}"}
    target: {host: 127.0.0.1, port: 30379, password: "{{ redis_password }}"}
    cutover: true
  register: redis_cutover

- name: Verify every key
  sophia.migrate.redis_migrate:
    mode: verify
    source: {host: 127.0.0.1, port: 6379, password: "{{ redis_password }}"}
    target: {host: 127.0.0.1, port: 30379, password: "{{ redis_password }}"}

- name: Go back (the old source becomes primary again)
  sophia.migrate.redis_migrate:
    source: {host: 127.0.0.1, port: 30379, password: "{{ redis_password }}"}
    target: {host: 127.0.0.1, port: 6379, password: "{{ redis_password }}"}
    cutover: true

- name: Copy into a managed Redis that cannot replicate, resumable
  sophia.migrate.redis_migrate:
    mode: dump
    source: {host: 127.0.0.1, port: 6379, password: "{{ redis_password }}"}
    target:
      host: redis.example.internal
      port: 6380
      username: migrator
      password: "{{ managed_password }}"
      tls: true
    ledger_path: "{{ sophia_ledger_path }}"
    ledger_step: redis/dump
"""

RETURN = r"""
mode:
  description: The mode that ran.
  returned: always
  type: str
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
state_before:
  description: V(independent), V(replicating) or V(cut_over) before the run (O(mode=replicate)).
  returned: mode=replicate
  type: str
state_after:
  description: The same after the run.
  returned: mode=replicate
  type: str
source:
  description: Role, C(master_repl_offset) and keys per database of the source after the run.
  returned: mode=replicate
  type: dict
  sample: {"host": "127.0.0.1", "port": 6379, "role": "slave", "master_repl_offset": 1234, "keys": {"db0": 100}}
target:
  description: The same for the target.
  returned: mode=replicate
  type: dict
replication:
  description:
    - Figures of the sync - C(initial_sync_seconds), C(caught_up_seconds), offsets, C(looks) (how many times both
      servers were read) and progress samples.
    - The servers are read every few milliseconds at first, then less often the longer the sync runs (a pause
      of about 2% of the time spent so far in the current phase, at most 0.2 s), so the end of the sync is
      seen within a few percent of its length.
  returned: mode=replicate and not in check mode
  type: dict
cutover:
  description:
    - C(method) (failover or pause), C(seconds), C(write_pause_ms) and offsets at promotion, and C(way_back)
      (role and link of the old source).
  returned: when a cutover ran
  type: dict
masterauth:
  description:
    - What the run did with the replication credentials (C(masterauth), C(masteruser)) of each server after the
      cutover - V(cleared), V(restored) (to the value the server had before the migration set it), V(kept)
      (configured before, not the migration's) or V(in use) (the old source replicates on the way back).
      Never the values.
  returned: mode=replicate when a cutover ran, or the run found the pair cut over already
  type: dict
  sample: {"target": {"masterauth": "cleared"}, "source": {"masterauth": "in use"}}
undo:
  description: How to undo the step, for the migration ledger.
  returned: mode=replicate or mode=dump
  type: dict
path:
  description: The RDB file (O(mode=rdb)).
  returned: mode=rdb
  type: str
sha256:
  description: sha256 of the RDB file.
  returned: mode=rdb
  type: str
size_bytes:
  description: Size of the RDB file.
  returned: mode=rdb
  type: int
keys:
  description: Keys per database of the source when the snapshot was taken.
  returned: mode=rdb and not when the file existed already
  type: dict
keys_copied:
  description: Keys restored on the target (O(mode=dump), counting earlier resumed runs).
  returned: mode=dump
  type: int
resumed_from:
  description: The ledger checkpoint a O(mode=dump) run resumed from (V(null) when it started afresh).
  returned: mode=dump
  type: dict
run_id:
  description: Id of the O(mode=dump) copy, kept in its checkpoint and its ledger entry (a resumed copy keeps it).
  returned: mode=dump and not in check mode
  type: str
verified:
  description: Whether source and target matched (O(mode=verify)).
  returned: mode=verify
  type: bool
databases:
  description: Per database - C(keys_source), C(keys_target), C(checked), C(differing).
  returned: mode=verify
  type: list
  elements: dict
differences:
  description: The first differing keys, each with C(db), C(key), C(problem).
  returned: mode=verify
  type: list
  elements: dict
batch_size:
  description: Keys per batch the O(mode=verify) run used.
  returned: mode=verify
  type: int
longest_block_ms:
  description:
    - With O(mode=verify), the longest round trip of one batch's Lua script on either server, in milliseconds -
      an upper bound of the longest time one server was blocked by the verify. V(null) when scripting was not
      available (the keys were then read with plain pipelined commands, which block nobody).
  returned: mode=verify
  type: float
block_ms:
  description: The same per server (C(source), C(target)).
  returned: mode=verify
  type: dict
  sample: {"source": 1.8, "target": 2.1}
duration_seconds:
  description: Wall time of the run.
  returned: success
  type: float
keys_per_second:
  description: Throughput of O(mode=dump) or O(mode=verify).
  returned: mode=dump or mode=verify
  type: float
"""

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import (
    _redis_client,
    _redis_copy,
    _redis_rdb,
    _redis_replicate,
    _redis_verify,
)
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule

_CONN = {
    "host": {"type": "str", "default": "127.0.0.1"},
    "port": {"type": "int", "default": 6379},
    "username": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "tls": {"type": "bool", "default": False},
    "tls_ca_path": {"type": "path"},
    "tls_cert_path": {"type": "path"},
    "tls_key_path": {"type": "path"},
    "tls_verify": {"type": "bool", "default": True},
    "connect_timeout": {"type": "float", "default": 5},
}
_ADDR = {"host": {"type": "str", "required": True}, "port": {"type": "int", "default": 6379}}


def run(module: AnsibleModule) -> dict:
    p = module.params
    src = _redis_client.Endpoint.from_params("source", p["source"])
    tgt = _redis_client.Endpoint.from_params("target", p["target"]) if p["target"] else None
    if p["batch_size"] < 1:
        module.fail_json(msg=f"redis_migrate: option 'batch_size' must be at least 1, got {p['batch_size']}")
    if p["mode"] != "rdb" and tgt is None:
        module.fail_json(msg=f"redis_migrate: option 'target' is required when mode={p['mode']}")
    if p["mode"] == "rdb":
        if not p["dest"]:
            module.fail_json(msg="redis_migrate: option 'dest' is required when mode=rdb")
        return _redis_rdb.rdb_backup(src, p["dest"], p["force"], module.check_mode)
    if p["mode"] == "dump":
        return _redis_copy.dump_copy(src, tgt, p["databases"], p["batch_size"], p["replace"],
                                     p["overwrite_target"], p["ledger_path"], p["ledger_step"], module.check_mode)
    if p["mode"] == "verify":
        return _redis_verify.verify(src, tgt, p["databases"], p["sample"], p["ttl_tolerance_ms"],
                                    p["max_differences"], p["batch_size"])
    opts = _redis_replicate.ReplicateOptions(
        cutover=p["cutover"], cutover_method=p["cutover_method"], way_back=p["way_back"],
        replicaof_host=(p["replicaof"] or {}).get("host"), replicaof_port=(p["replicaof"] or {}).get("port"),
        way_back_host=(p["way_back_address"] or {}).get("host"),
        way_back_port=(p["way_back_address"] or {}).get("port"),
        sync_timeout=p["sync_timeout"], cutover_timeout=p["cutover_timeout"], overwrite_target=p["overwrite_target"])
    return _redis_replicate.replicate(src, tgt, opts, module.check_mode)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "mode": {"type": "str", "choices": list(_redis_client.MODES), "default": "replicate"},
            "source": {"type": "dict", "required": True, "options": _CONN},
            "target": {"type": "dict", "options": _CONN},
            "cutover": {"type": "bool", "default": False},
            "cutover_method": {"type": "str", "choices": list(_redis_replicate.CUTOVER_METHODS), "default": "auto"},
            "way_back": {"type": "bool", "default": True},
            "replicaof": {"type": "dict", "options": _ADDR},
            "way_back_address": {"type": "dict", "options": _ADDR},
            "sync_timeout": {"type": "float", "default": 600},
            "cutover_timeout": {"type": "float", "default": 30},
            "overwrite_target": {"type": "bool", "default": False},
            "databases": {"type": "list", "elements": "int"},
            "batch_size": {"type": "int", "default": 1000},
            "replace": {"type": "bool", "default": True},
            "ledger_path": {"type": "path"},
            "ledger_step": {"type": "str", "default": "redis/dump"},
            "dest": {"type": "path"},
            "force": {"type": "bool", "default": False},
            "sample": {"type": "int", "default": 0},
            "ttl_tolerance_ms": {"type": "int", "default": 2000},
            "max_differences": {"type": "int", "default": 20},
            "fail_on_difference": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    if not _redis_client.HAS_REDIS:
        module.fail_json(msg=missing_required_lib("redis"), exception=_redis_client.REDIS_IMPORT_ERROR)
    try:
        result = run(module)
    except _redis_client.RedisMigrateError as exc:
        module.fail_json(msg=f"redis_migrate: {exc}", **exc.facts)
    if result.get("verified") is False and module.params["fail_on_difference"]:
        module.fail_json(**{**result, "msg": f"redis_migrate: verify: {result['msg']}"})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
