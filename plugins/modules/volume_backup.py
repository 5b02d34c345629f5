#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_backup
short_description: Back up a Docker volume or directory to tar.gz with sha256, verify or restore it
version_added: 0.1.0
description:
  - O(state=present) archives a directory, or the data directory of a Docker named volume, into a
    C(.tar.gz) at O(dest). The sha256 is computed while writing, the archive is fsync'ed and renamed
    into place (never a partial file under the final name), read back and checked to contain every
    file, and a manifest digest (sha256, size, mode, owner of every file it holds) is returned.
  - Next to the archive a sidecar C(<dest>.manifest.json) (mode 0600) records the archive's sha256 and
    the content digest of what it holds.
  - With O(reuse=matching) an existing archive is reused only when it still hashes to the sha256 its
    sidecar records and the directory's current content digest equals the recorded one. Otherwise a
    new archive is written under a content-addressed name (C(<name>.<digest>.tar.gz) next to O(dest))
    and the old one is kept (RV(superseded)).
  - An existing archive whose sha256 differs from O(expected_sha256) or from the recorded one (O(recorded))
    is never overwritten (the module fails).
  - O(state=verified) proves, right before data is deleted, that the backup still exists, hashes to the
    recorded sha256 and holds exactly the current content of the directory or volume; it fails naming
    the volume and the reason otherwise. Read-only.
  - O(state=restored) unpacks a verified archive into an empty directory or volume. Every member is
    checked before anything is written; an archive with a member outside the target (C(..), an absolute
    path, a symbolic or hard link that leads outside, a write through a symbolic link), a device or FIFO
    is refused whole. setuid, setgid and sticky bits are stripped. Owners and other modes are kept.
  - B(The migration ledger lives on the controller), and this module runs on the host that holds the data.
    It therefore never reads or writes the ledger itself; the role reads the backup's ledger entry on the
    controller (M(sophia.migrate.ledger) O(sophia.migrate.ledger#module:operation=read), delegated to
    C(localhost)) and passes its C(data) as O(recorded); the module returns RV(record), and the role records
    it with M(sophia.migrate.ledger) delegated to C(localhost). See the examples.
  - O(ledger_path) and O(ledger_step) (deprecated) read and write a ledger file B(on the host the module runs
    on); they are right only when that host is the controller.
author:
  - Sophia Platform Team (@sophia-ai)
extends_documentation_fragment:
  - sophia.migrate.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
requirements:
  - docker (Python library), only with O(volume)
options:
  source:
    description: Directory to back up (O(state=present)) or to restore into (O(state=restored)).
    type: path
  volume:
    description: Docker named volume whose data directory is the source or the restore target.
    type: str
  dest:
    description:
      - Path of the archive. Required unless O(state=verified) with O(recorded) (or O(ledger_path)), where
        the record names the archive.
      - With O(state=present) a newer content version goes next to it under a content-addressed name.
    type: path
  state:
    description:
      - V(present) makes the backup, V(verified) proves it still holds the current data, V(restored) restores it.
    type: str
    choices: [present, verified, restored]
    default: present
  expected_sha256:
    description:
      - The sha256 the archive at O(dest) must have (reuse, and required check before a restore or a verification).
    type: str
  reuse:
    description:
      - V(matching) reuses an existing archive only when it holds the current content of the source.
      - V(recorded) reuses the archive of O(recorded) (or at O(dest) with O(expected_sha256)) as long
        as it is unchanged, whatever the source holds now; for a snapshot taken before a migration began.
        Such a backup is never proof before a deletion (O(state=verified) checks the content).
    type: str
    choices: [matching, recorded]
    default: matching
  recorded:
    description:
      - The migration ledger's record of this backup, as the controller's ledger holds it - the C(data) of
        the step's latest C(done) entry, which is the RV(record) an earlier run returned. Keys used
        C(path), C(sha256) and C(manifest_sha256); other keys are ignored. V({}) means nothing is recorded.
      - With O(state=present) the recorded archive is never overwritten when its sha256 changed, and it is
        reused while it holds the current content (or, with O(reuse=recorded), while it is unchanged).
      - With O(state=verified) it is the backup to prove (archive, sha256, content digest); V({}) is refused
        (no recorded backup, nothing may be deleted).
      - Mutually exclusive with O(ledger_path).
    type: dict
  ledger_path:
    description:
      - Deprecated, to be removed in release 0.3.0. Use O(recorded) and record RV(record) with
        M(sophia.migrate.ledger) delegated to the controller.
      - A migration ledger file B(on the host the module runs on) to record the backup in (and to read a
        recorded backup from). Correct only when that host is the controller; on a remote Compose host
        the backup would be recorded in a file the controller never reads.
    type: path
  ledger_step:
    description:
      - Deprecated together with O(ledger_path). Ledger step name, for example V(backup/volume/sophia_embeddings).
    type: str
notes:
  - O(source) and O(volume) are mutually exclusive; one of them is required.
  - Take the backup after the writers of the data stopped; a backup of data that changes afterwards does
    not verify.
"""

EXAMPLES = r"""
# The ledger is on the controller; the volume on the Compose host (the play's host).
- name: Read the ledger on the controller
  sophia.migrate.ledger:
    path: "{{ sophia_ledger_path }}"
    operation: read
  register: ledger
  delegate_to: localhost

- name: Back up the embeddings volume before anything changes
  sophia.migrate.volume_backup:
    volume: sophia_embeddings
    dest: /var/backups/sophia/embeddings.tar.gz
    recorded: "{{ entry.data | default({}) if entry.status | default('') == 'done' else {} }}"
  vars:
    entry: >-
      {{ ledger.ledger.entries | selectattr('step', 'equalto', 'backup/volume/sophia_embeddings')
         | list | last | default({}) }}
  register: backup

- name: Record it in the ledger on the controller
  sophia.migrate.ledger:
    path: "{{ sophia_ledger_path }}"
    step: backup/volume/sophia_embeddings
    phase: phase2d
    data: "{{ backup.record }}"
  delegate_to: localhost
  when: backup.record is defined

- name: Right before deleting the volume, prove the recorded backup holds exactly its data
  sophia.migrate.volume_backup:
    state: verified
    volume: sophia_embeddings
    recorded: "{{ backup.record }}"  # or the step's data from a fresh read of the ledger

- name: Restore it into the new volume
  sophia.migrate.volume_backup:
    state: restored
    volume: sophia-k3s-embeddings
    dest: /var/backups/sophia/embeddings.tar.gz
    expected_sha256: "{{ backup.sha256 }}"
"""

RETURN = r"""
path:
  description: The archive.
  returned: always
  type: str
sha256:
  description: sha256 of the archive.
  returned: when the archive exists (not in check mode for a new backup)
  type: str
size:
  description: Size of the archive in bytes.
  returned: when the archive exists
  type: int
files:
  description: Number of files archived.
  returned: when a new backup is made
  type: int
manifest_sha256:
  description:
    - Digest of the per-file manifest (sha256, size, mode, owner) of the content the archive holds, comparable
      after a restore and with the C(manifest_sha256_source) of M(sophia.migrate.tree_compare).
    - With O(state=restored), the digest of the restored tree.
  returned: when a backup is made, reused with a sidecar, verified or restored
  type: str
reused:
  description: True when an existing archive that holds the current content was kept.
  returned: O(state=present)
  type: bool
superseded:
  description: Existing archives that do not hold the current content; they are kept, a new archive is written.
  returned: O(state=present)
  type: list
  elements: str
verified:
  description: True when the backup exists, is unchanged and holds the current content.
  returned: O(state=verified)
  type: bool
record:
  description:
    - What the migration ledger should record for this backup (the C(data) of the backup's step), to be
      written with M(sophia.migrate.ledger) delegated to the controller and passed back as O(recorded) on
      the next run. Equal to O(recorded) when nothing changed (recording it again is not a change).
  returned: O(state=present), when the archive's sha256 is known (not in check mode for a new backup)
  type: dict
  contains:
    path:
      description: The archive.
      type: str
    size:
      description: Its size in bytes.
      type: int
    sha256:
      description: Its sha256.
      type: str
    manifest_sha256:
      description: The content digest of what it holds (when known).
      type: str
    source:
      description: The volume name, or the directory.
      type: str
  sample: {path: /var/backups/sophia-compose/sophia_embeddings.tar.gz, size: 1048576, source: sophia_embeddings,
           sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08,
           manifest_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae}
"""

import os
import re

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _docker_compose as dc
from ansible_collections.sophia.migrate.plugins.module_utils import _ledger, _volume
from ansible_collections.sophia.migrate.plugins.module_utils._args import AnsibleModule


def _volume_dir(name: str) -> str:
    cli = dc.client()
    try:
        return cli.volumes.get(name).attrs["Mountpoint"]
    except dc.DockerException as exc:
        raise _volume.VolumeError(f"Docker volume '{name}': {exc}") from exc


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _recorded(module: AnsibleModule) -> dict:
    """The recorded backup: O(recorded) as given (checked), or the deprecated ledger file's record, or {}."""
    p = module.params
    if p["recorded"] is not None:
        rec = p["recorded"]
        if not rec:
            return {}
        problems = []
        if not isinstance(rec.get("path"), str) or not rec["path"]:
            problems.append("'path' must be the archive's path")
        for key, required in (("sha256", True), ("manifest_sha256", False)):
            value = rec.get(key)
            if (value is not None or required) and not (isinstance(value, str) and _SHA256.fullmatch(value)):
                problems.append(f"'{key}' must be 64 lowercase hex digits")
        if problems:
            module.fail_json(msg=f"volume_backup: option 'recorded' (the ledger's record of the backup, keys "
                                 f"{', '.join(sorted(map(str, rec)))}): {'; '.join(problems)}")
        return rec
    if not (p["ledger_path"] and p["ledger_step"]):
        return {}
    module.deprecate("volume_backup: ledger_path and ledger_step read and write a ledger file on the host the module "
                     "runs on, which is not the controller's ledger when the Compose host is remote; pass the "
                     "controller ledger's record as 'recorded' and record the returned 'record' with "
                     "sophia.migrate.ledger delegated to localhost", version="0.3.0", collection_name="sophia.migrate")
    entry = _ledger.find(_ledger.load(p["ledger_path"]), p["ledger_step"]) or {}
    return (entry.get("data") or {}) if entry.get("status") == "done" else {}


def _verify(module: AnsibleModule, source: str, recorded: dict) -> dict:
    p = module.params
    what = f"volume '{p['volume']}'" if p["volume"] else f"directory {source}"
    archive = p["dest"] or recorded.get("path")
    if not archive:
        where = (f"in ledger step '{p['ledger_step']}' of {p['ledger_path']}" if p["ledger_path"]
                 else "(option 'recorded' is empty)")
        raise _volume.VolumeError(f"{what}: no backup is recorded {where}; it is not safe to delete")
    if p["dest"] and recorded.get("path") not in (None, p["dest"]):
        raise _volume.VolumeError(f"{what}: the ledger records the backup {recorded['path']}, not {p['dest']}")
    if p["expected_sha256"] and recorded.get("sha256") not in (None, p["expected_sha256"]):
        raise _volume.VolumeError(f"{what}: expected_sha256 {p['expected_sha256']} differs from the recorded "
                                  f"{recorded['sha256']}")
    expected = p["expected_sha256"] or recorded.get("sha256")
    if not expected:
        raise _volume.VolumeError(f"{what}: no sha256 is recorded for the backup {archive} (expected_sha256 or "
                                  "a ledger record is required)")
    try:
        out = _volume.verify(source, archive, expected, recorded.get("manifest_sha256"))
    except _volume.VolumeError as exc:
        raise _volume.VolumeError(f"{what} is not safe to delete: {exc}") from exc
    return {"changed": False, **out}


def run(module: AnsibleModule) -> dict:
    p = module.params
    if p["volume"] and not dc.HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"))
    if not p["source"] and not p["volume"]:
        module.fail_json(msg="volume_backup: one of 'source' or 'volume' is required")
    by_record = p["recorded"] is not None or p["ledger_path"]
    if not p["dest"] and not (p["state"] == "verified" and by_record):
        module.fail_json(msg=f"volume_backup: 'dest' is required with state={p['state']}"
                             + (" (or 'recorded', the ledger's record of the backup)"
                                if p["state"] == "verified" else ""))
    recorded = _recorded(module) if p["state"] != "restored" else {}
    source = p["source"] or _volume_dir(p["volume"])
    if p["state"] == "verified":
        return _verify(module, source, recorded)
    if p["state"] == "restored":
        if not p["expected_sha256"]:
            module.fail_json(msg="volume_backup: 'expected_sha256' is required to restore "
                                 "(a backup is restored only when verified)")
        out = _volume.restore(p["dest"], source, p["expected_sha256"], module.check_mode)
        return {"path": p["dest"], **out}
    known = {recorded["path"]: recorded["sha256"]} if recorded.get("path") and recorded.get("sha256") else {}
    out = _volume.backup(source, p["dest"], p["expected_sha256"], module.check_mode, reuse=p["reuse"],
                         recorded=known)
    if out.get("sha256"):
        record = {k: out[k] for k in ("path", "size", "sha256", "manifest_sha256") if k in out}
        record["source"] = p["volume"] or source
        if "manifest_sha256" not in record and recorded.get("path") == out["path"] and recorded.get("manifest_sha256"):
            record["manifest_sha256"] = recorded["manifest_sha256"]
        out["record"] = record
        if p["ledger_path"] and p["ledger_step"] and any(recorded.get(k) != record.get(k)
                                                         for k in ("path", "sha256", "manifest_sha256")):
            _ledger.record(p["ledger_path"], p["ledger_step"], data=record, check_mode=module.check_mode)
    out["exists"] = os.path.exists(out["path"])
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "path"},
            "volume": {"type": "str"},
            "dest": {"type": "path"},
            "state": {"type": "str", "choices": ["present", "verified", "restored"], "default": "present"},
            "expected_sha256": {"type": "str"},
            "reuse": {"type": "str", "choices": ["matching", "recorded"], "default": "matching"},
            "recorded": {"type": "dict"},
            "ledger_path": {"type": "path"},  # deprecated (see _recorded)
            "ledger_step": {"type": "str"},
        },
        mutually_exclusive=[["source", "volume"], ["recorded", "ledger_path"]],
        required_together=[["ledger_path", "ledger_step"]],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (_volume.VolumeError, _ledger.LedgerError, dc.ComposeInfoError, OSError) as exc:
        module.fail_json(msg=f"volume_backup: {exc}")


if __name__ == "__main__":
    main()
