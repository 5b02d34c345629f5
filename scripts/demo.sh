#!/usr/bin/env bash
# make demo: build the lab (a local replica of the Sophia stack), then the main job,
# playbooks/phase2a.yml, on the lab inventory; print where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
run_id=$(date -u +%Y%m%dT%H%M%SZ)
echo "== lab: playbooks/lab.yml"
ansible-playbook playbooks/lab.yml
echo "== main job: playbooks/phase2a.yml (run $run_id)"
ansible-playbook playbooks/phase2a.yml -e phase_run_id="$run_id"
echo
echo "Report: reports/$run_id/phase2a.md (JSON beside it). What the lab could not do is listed at its end."
