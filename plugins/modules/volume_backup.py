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
  - An existing archive whose sha256 differs from O(expected_sha256) or from the one recorded in the
    ledger is never overwritten (the module fails).
  - O(state=verified) proves, right before data is deleted, that the backup still exists, hashes to the
    recorded sha256 and holds exactly the current content of the directory or volume; it fails naming
    the volume and the reason otherwise. Read-only.
  - O(state=restored) unpacks a verified archive into an empty directory or volume. Every member is
    checked before anything is written; an archive with a member outside the target (C(..), an absolute
    path, a symbolic or hard link that leads outside, a write through a symbolic link), a device or FIFO
    is refused whole. setuid, setgid and sticky bits are stripped. Owners and other modes are kept.
  - With O(ledger_path) and O(ledger_step) the backup is recorded in the migration ledger, and a
    recorded backup is reused on the next run when it still holds the current content (or, with
    O(reuse=recorded), when it is unchanged).
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
      - Path of the archive. Required unless O(state=verified) with O(ledger_path), where the ledger
        records the archive.
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
      - V(recorded) reuses the archive recorded in the ledger (or at O(dest) with O(expected_sha256)) as long
        as it is unchanged, whatever the source holds now; for a snapshot taken before a migration began.
        Such a backup is never proof before a deletion (O(state=verified) checks the content).
    type: str
    choices: [matching, recorded]
    default: matching
  ledger_path:
    description: Migration ledger to record the backup in (and to read a recorded backup from).
    type: path
  ledger_step:
    description: Ledger step name, for example V(backup/volume/sophia_embeddings).
    type: str
notes:
  - O(source) and O(volume) are mutually exclusive; one of them is required.
  - Take the backup after the writers of the data stopped; a backup of data that changes afterwards does
    not verify.
"""

EXAMPLES = r"""
- name: Back up the embeddings volume before anything changes
  sophia.migrate.volume_backup:
    volume: sophia_embeddings
    dest: /var/backups/sophia/embeddings.tar.gz
    ledger_path: "{{ sophia_ledger_path }}"
    ledger_step: backup/volume/sophia_embeddings
  register: backup

- name: Right before deleting the volume, prove the recorded backup holds exactly its data
  sophia.migrate.volume_backup:
    state: verified
    volume: sophia_embeddings
    ledger_path: "{{ sophia_ledger_path }}"
    ledger_step: backup/volume/sophia_embeddings

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
"""

import os

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sophia.migrate.plugins.module_utils import _docker_compose as dc
from ansible_collections.sophia.migrate.plugins.module_utils import _ledger, _volume


def _volume_dir(name: str) -> str:
    cli = dc.client()
    try:
        return cli.volumes.get(name).attrs["Mountpoint"]
    except dc.DockerException as exc:
        raise _volume.VolumeError(f"Docker volume '{name}': {exc}") from exc


def _recorded(p: dict) -> dict:
    """The ledger's record of this backup (status done), or {}."""
    if not (p["ledger_path"] and p["ledger_step"]):
        return {}
    entry = _ledger.find(_ledger.load(p["ledger_path"]), p["ledger_step"]) or {}
    return (entry.get("data") or {}) if entry.get("status") == "done" else {}


def _verify(module: AnsibleModule, source: str) -> dict:
    p = module.params
    what = f"volume '{p['volume']}'" if p["volume"] else f"directory {source}"
    recorded = _recorded(p)
    archive = p["dest"] or recorded.get("path")
    if not archive:
        raise _volume.VolumeError(f"{what}: no backup is recorded in ledger step '{p['ledger_step']}' of "
                                  f"{p['ledger_path']}; it is not safe to delete")
    if p["dest"] and recorded.get("path") not in (None, p["dest"]):
        raise _volume.VolumeError(f"{what}: the ledger records the backup {recorded['path']}, not {p['dest']}")
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
    if not p["dest"] and not (p["state"] == "verified" and p["ledger_path"]):
        module.fail_json(msg=f"volume_backup: 'dest' is required with state={p['state']}"
                             + (" (or ledger_path and ledger_step)" if p["state"] == "verified" else ""))
    source = p["source"] or _volume_dir(p["volume"])
    if p["state"] == "verified":
        return _verify(module, source)
    if p["state"] == "restored":
        if not p["expected_sha256"]:
            module.fail_json(msg="volume_backup: 'expected_sha256' is required to restore "
                                 "(a backup is restored only when verified)")
        out = _volume.restore(p["dest"], source, p["expected_sha256"], module.check_mode)
        return {"path": p["dest"], **out}
    recorded = _recorded(p)
    known = {recorded["path"]: recorded["sha256"]} if recorded.get("path") and recorded.get("sha256") else {}
    out = _volume.backup(source, p["dest"], p["expected_sha256"], module.check_mode, reuse=p["reuse"],
                         recorded=known)
    if p["ledger_path"] and p["ledger_step"] and out.get("sha256"):
        data = {k: out[k] for k in ("path", "size", "sha256", "manifest_sha256") if k in out}
        data["source"] = p["volume"] or source
        if "manifest_sha256" not in data and recorded.get("path") == out["path"] and recorded.get("manifest_sha256"):
            data["manifest_sha256"] = recorded["manifest_sha256"]
        if any(recorded.get(k) != data.get(k) for k in ("path", "sha256", "manifest_sha256")):
            _ledger.record(p["ledger_path"], p["ledger_step"], data=data, check_mode=module.check_mode)
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
            "ledger_path": {"type": "path"},
            "ledger_step": {"type": "str"},
        },
        mutually_exclusive=[["source", "volume"]],
        required_together=[["ledger_path", "ledger_step"]],
        supports_check_mode=True,
    )
    try:
        module.exit_json(**run(module))
    except (_volume.VolumeError, _ledger.LedgerError, dc.ComposeInfoError, OSError) as exc:
        module.fail_json(msg=f"volume_backup: {exc}")


if __name__ == "__main__":
    main()
