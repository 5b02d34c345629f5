# Copyright: sophia.migrate contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

# Documentation: ledger_step_report.yml, ledger_artifacts.yml and ledger_done.yml next to this file.
from ansible.errors import AnsibleFilterError

OUTCOME = {"done": "ran", "failed": "failed", "rolled_back": "skipped", "started": "staged"}


def ledger_step_report(entry):
    if not isinstance(entry, dict) or "step" not in entry:
        raise AnsibleFilterError("ledger_step_report: input must be a ledger entry (a dict with 'step')")
    status = entry.get("status", "done")
    step = {"name": entry["step"], "outcome": OUTCOME.get(status, "failed"), "details": dict(entry.get("data") or {})}
    if status == "rolled_back":
        step["reason"] = "rolled back"
    elif status not in OUTCOME:
        step["reason"] = f"unknown status {status}"
    return step


def ledger_artifacts(entries):
    """Backups recorded in ledger entries (data with path and sha256), named by their step."""
    if not isinstance(entries, list):
        raise AnsibleFilterError("ledger_artifacts: input must be the list of ledger entries")
    latest = {}
    for entry in entries:
        latest[entry.get("step")] = entry
    out = []
    for step, entry in latest.items():
        data = entry.get("data") or {}
        if entry.get("status") != "done":
            continue
        if data.get("path") and data.get("sha256"):
            out.append({"name": step, "path": data["path"], "size": data.get("size", ""), "sha256": data["sha256"]})
        for value in data.values():  # files listed by the step, e.g. one snapshot per Qdrant collection
            for item in value if isinstance(value, list) else []:
                if isinstance(item, dict) and item.get("path") and item.get("sha256"):
                    label = item.get("collection") or item.get("name") or item["path"].rsplit("/", 1)[-1]
                    out.append(
                        {
                            "name": f"{step}/{label}",
                            "path": item["path"],
                            "size": item.get("size", ""),
                            "sha256": item["sha256"],
                        }
                    )
    return sorted(out, key=lambda a: a["name"])


def _group(step):
    return step.rsplit("/", 1)[0] if "/" in step else ""


def ledger_done(entries, reset="rollback"):
    """Steps whose latest entry is done and newer than the last completed <group>/<reset> of their group.

    A step's group is its name up to the last slash (redis/backup -> redis, volume/embeddings/copy ->
    volume/embeddings). A completed rollback of a group (and of the groups under it) starts it again: the
    next migration redoes its steps instead of trusting what the rolled-back run did.
    """
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "step" in e for e in entries):
        raise AnsibleFilterError("ledger_done: input must be the list of ledger entries (dicts with 'step')")
    latest, restart = {}, {}
    for index, entry in enumerate(entries):
        step = entry["step"]
        latest[step] = (index, entry)
        if step.endswith("/" + reset) and entry.get("status", "done") == "done":
            restart[_group(step)] = index

    def restarted_at(step):  # a rollback of "qdrant" also starts "qdrant/<collection>/..." again
        return max([i for group, i in restart.items() if step.startswith(group + "/")], default=-1)

    return sorted(
        step
        for step, (index, entry) in latest.items()
        if entry.get("status", "done") == "done" and not step.endswith("/" + reset) and index > restarted_at(step)
    )


class FilterModule:
    def filters(self):
        return {
            "ledger_step_report": ledger_step_report,
            "ledger_artifacts": ledger_artifacts,
            "ledger_done": ledger_done,
        }
