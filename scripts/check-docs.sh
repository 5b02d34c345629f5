#!/usr/bin/env bash
# Every module in plugins/modules must be listed by ansible-doc -l, render with ansible-doc (text and JSON)
# and carry EXAMPLES. One ansible-doc process renders them all (one per module took most of this check's time).
set -euo pipefail
cd "$(dirname "$0")/.."
listed=$(ansible-doc -l sophia.migrate 2>/dev/null | awk '{print $1}')
mods=()
for f in plugins/modules/*.py; do
  [ -e "$f" ] || continue
  mods+=("sophia.migrate.$(basename "$f" .py)")
done
rc=0
for m in "${mods[@]}"; do
  grep -qx "$m" <<<"$listed" || { echo "not listed by ansible-doc -l: $m"; rc=1; }
done
json=$(mktemp); trap 'rm -f "$json"' EXIT
if ! { ansible-doc "${mods[@]}" >/dev/null 2>&1 && ansible-doc --json "${mods[@]}" >"$json" 2>/dev/null; }; then
  # one of them does not render: name it (one process per module, as slow as it is exact)
  for m in "${mods[@]}"; do
    ansible-doc "$m" >/dev/null || { echo "ansible-doc failed: $m"; rc=1; }
  done
  echo '{}' >"$json"; [ "$rc" -ne 0 ] || { echo "ansible-doc failed on the whole set"; rc=1; }
fi
python3 - "$json" "${mods[@]}" <<'PY' || rc=1
import json
import sys

with open(sys.argv[1]) as handle:
    docs = json.load(handle)
bad = 0
for module in sys.argv[2:] if docs else []:
    entry = docs.get(module) or {}
    if not entry.get("doc"):
        print(f"ansible-doc failed: {module}")
        bad = 1
    elif not (entry.get("examples") or "").strip():
        print(f"no EXAMPLES: {module}")
        bad = 1
sys.exit(bad)
PY
echo "modules documented: $(wc -l <<<"$listed")"
exit $rc
