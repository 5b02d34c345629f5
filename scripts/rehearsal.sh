#!/usr/bin/env bash
# make rehearsal: the end-to-end rehearsal (tests/e2e). Staging, production's settings: phase2a, phase1, phase2b and
# a failure injected at 25% under continuous load and writes, phase2c, phase2d and the rollback under load. The lab:
# the data migration killed midway, resumed and rolled back. Prints the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
# its two files run beside each other (the lab and staging use different names, ports and state directories); the
# counts are printed as figures (tests/output/figures/rehearsal-*.txt)
rm -f tests/output/figures/rehearsal-*.txt
rc=0
pytest tests/e2e -n 2 --dist loadfile -q -p no:cacheprovider "$@" || rc=$?
cat tests/output/figures/rehearsal-*.txt 2>/dev/null || true
exit "$rc"
