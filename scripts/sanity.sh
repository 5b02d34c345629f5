#!/usr/bin/env bash
# Run `ansible-test sanity` on a real ansible_collections/sophia/migrate copy of the work tree
# (ansible-test does not follow the symlinked collection path). Prints one line per test.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ROOT=$(pwd)
tmp=$(mktemp -d /tmp/sophia-sanity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/ansible_collections/sophia/migrate"
mkdir -p "$dest"
rsync -a --exclude .venv --exclude .ansible --exclude .git --exclude tests/output --exclude reports \
  --exclude .pytest_cache --exclude .ruff_cache --exclude build --exclude lab-state --exclude "lab-state.replaced-*" \
  --exclude tests/fixtures "$ROOT/" "$dest/"   # test inputs (some malformed on purpose) are data, not code
cd "$dest"
# ansible-test lists files through git when it finds a repository: give it one of the copied tree.
git init -q . && git add -A && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
# Every sanity test runs (see docs/development.md); tests/sanity/ignore-2.19.txt lists the only ignores:
# typography in verbatim upstream data files under specs/k8s/
ansible-test sanity --python 3.11 --color no "$@" 2>&1 | tee "$ROOT/tests/output-sanity.log"
rc=${PIPESTATUS[0]}
mkdir -p "$ROOT/tests/output"
mv "$ROOT/tests/output-sanity.log" "$ROOT/tests/output/sanity.log"
exit "$rc"
