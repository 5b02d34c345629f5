#!/usr/bin/env bash
# Every module in plugins/modules must render with ansible-doc and be listed by ansible-doc -l.
set -euo pipefail
cd "$(dirname "$0")/.."
listed=$(ansible-doc -l sophia.migrate 2>/dev/null | awk '{print $1}')
rc=0
for f in plugins/modules/*.py; do
  [ -e "$f" ] || continue
  m="sophia.migrate.$(basename "$f" .py)"
  grep -qx "$m" <<<"$listed" || { echo "not listed by ansible-doc -l: $m"; rc=1; }
  ansible-doc "$m" >/dev/null || { echo "ansible-doc failed: $m"; rc=1; }
  ansible-doc "$m" | grep -q "EXAMPLES" || { echo "no EXAMPLES: $m"; rc=1; }
done
echo "modules documented: $(wc -l <<<"$listed")"
exit $rc
