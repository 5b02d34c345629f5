#!/usr/bin/env bash
# make rehearsal: the end-to-end rehearsal on the lab (tests/e2e): lab + phase2a; the data migration killed
# midway, resumed and rolled back; phase2b, a failure injected at 25%, phase2d and the rollback, all under
# continuous load and writes. Prints the counts.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
exec pytest tests/e2e -s -q -p no:cacheprovider "$@"
