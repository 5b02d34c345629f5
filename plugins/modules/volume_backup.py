#!/usr/bin/python
# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_backup
short_description: Back up a Docker volume or directory to tar.gz with sha256, or restore it
version_added: 0.1.0
description:
  - O(state=present) archives a directory, or the data directory of a Docker named volume, into a
    C(.tar.gz) at O(dest). The sha256 is computed while writing, the archive is fsync'ed and renamed
    into place (never a partial file under the final name), read back and checked to contain every
    file, and a manifest digest (sha256, size, mode, owner of every file) is returned.
  - An existing archive is reused when its sha256 equals O(expected_sha256) (or when none is given);
    an existing archive with a different sha256 is never overwritten.
  - O(state=restored) unpacks a verified archive into an empty directory or volume. Every member is
    checked before anything is written; an archive with a member outside the target (C(..), an absolute
    path, a symbolic or hard link that leads outside, a write through a symbolic link), a device or FIFO
    is refused whole. setuid, setgid and sticky bits are stripped. Owners and other modes are kept.
  - With O(ledger_path) and O(ledger_step) the backup is recorded in the migration ledger, and a
    recorded backup is reused on the next run.
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
    description: Path of the archive.
    type: path
    required: true
  state:
    description: V(present) makes the backup, V(restored) restores it.
    type: str
    choices: [present, restored]
    default: present
  expected_sha256:
    description: The sha256 the archive must have (reuse, and required check before a restore).
    type: str
  ledger_path:
    description: Migration ledger to record the backup in (and to read a recorded backup from).
    type: path
  ledger_step:
    description: Ledger step name, for example V(backup/volume/sophia_embeddings).
    type: str
notes:
  - O(source) and O(volume) are mutually exclusive; one of them is required.
"""

EXAMPLES = r"""
- name: Back up the embeddings volume before anything changes
  sophia.migrate.volume_backup:
    volume: sophia_embeddings
    dest: /var/backups/sophia/embeddings.tar.gz
    ledger_path: "{{ sophia_ledger_path }}"
    ledger_step: backup/volume/sophia_embeddings
  register: backup

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
  description: Digest of the per-file manifest (sha256, size, mode, owner), comparable after a restore.
  returned: when a backup is made or restored
  type: str
reused:
  description: True when an existing archive with the expected sha256 was kept.
  returned: O(state=present)
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


def run(module: AnsibleModule) -> dict:
    p = module.params
    if p["volume"] and not dc.HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"))
    if not p["source"] and not p["volume"]:
        module.fail_json(msg="volume_backup: one of 'source' or 'volume' is required")
    source = p["source"] or _volume_dir(p["volume"])
    if p["state"] == "restored":
        if not p["expected_sha256"]:
            module.fail_json(msg="volume_backup: 'expected_sha256' is required to restore "
                                 "(a backup is restored only when verified)")
        out = _volume.restore(p["dest"], source, p["expected_sha256"], module.check_mode)
        return {"path": p["dest"], **out}
    expected = p["expected_sha256"]
    if p["ledger_path"] and p["ledger_step"] and not expected:
        entry = _ledger.find(_ledger.load(p["ledger_path"]), p["ledger_step"]) or {}
        if entry.get("status") == "done" and entry.get("data", {}).get("path") == p["dest"]:
            expected = entry["data"].get("sha256")
    out = _volume.backup(source, p["dest"], expected, module.check_mode)
    if p["ledger_path"] and p["ledger_step"] and out.get("sha256"):
        data = {k: out[k] for k in ("path", "size", "sha256") if k in out}
        data["source"] = p["volume"] or source
        if "manifest_sha256" in out:
            data["manifest_sha256"] = out["manifest_sha256"]
        recorded = _ledger.find(_ledger.load(p["ledger_path"]), p["ledger_step"]) or {}
        if recorded.get("data", {}).get("sha256") != out["sha256"]:
            _ledger.record(p["ledger_path"], p["ledger_step"], data=data, check_mode=module.check_mode)
    out["exists"] = os.path.exists(p["dest"])
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "path"},
            "volume": {"type": "str"},
            "dest": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "restored"], "default": "present"},
            "expected_sha256": {"type": "str"},
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
