#!/usr/bin/env bash
# make test: every check of the project, one after the other, then one summary line.
# Lint and sanity stages count as one check each; pytest counts each test; each Molecule
# scenario counts as one check. The last line is "N passed, N failed" for the whole run.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
mkdir -p tests/output
# figures the tests measure (shared settings, corpus shares...): one line each, printed at the end
rm -rf tests/output/figures tests/output/*.rc
passed=0; failed=0; failures=()
start_all=$(date +%s)

stage() {  # stage NAME CMD...   -> one check
  local name=$1; shift
  local t0; t0=$(date +%s)
  echo "=== $name"
  if "$@" >"tests/output/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "--- $name: PASSED ($(( $(date +%s) - t0 ))s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "--- $name: FAILED ($(( $(date +%s) - t0 ))s)"
    tail -40 "tests/output/$name.log"
  fi
}

# bg_stage NAME CMD -> one check, queued to run in the background beside the next stage, one after the other
# (the static checks use about one core; the integration tests leave one idle). run_bg starts the queue;
# collect_stages waits, then prints and counts them.
bg_names=(); bg_cmds=()
bg_stage() { bg_names+=("$1"); bg_cmds+=("$2"); }

run_bg() {
  (
    for i in "${!bg_names[@]}"; do
      t0=$(date +%s)
      ${bg_cmds[$i]} >"tests/output/${bg_names[$i]}.log" 2>&1
      echo "$? $(( $(date +%s) - t0 ))" >"tests/output/${bg_names[$i]}.rc"
    done
  ) &
  bg_pid=$!
}

collect_stages() {
  wait "$bg_pid"
  local name rc secs
  for name in "${bg_names[@]}"; do
    echo "=== $name (ran beside the stage before)"
    read -r rc secs <"tests/output/$name.rc" || rc=1
    if [ "${rc:-1}" -eq 0 ]; then
      passed=$((passed + 1)); echo "--- $name: PASSED (${secs}s)"
    else
      failed=$((failed + 1)); failures+=("$name"); echo "--- $name: FAILED (${secs:-?}s)"
      tail -40 "tests/output/$name.log"
    fi
  done
  bg_names=(); bg_cmds=()
}

pytest_stage() {  # pytest_stage NAME ARGS... -> each test counts
  local name=$1; shift
  local t0; t0=$(date +%s)
  echo "=== $name"
  pytest "$@" --junitxml="tests/output/$name.xml" -q -p no:cacheprovider >"tests/output/$name.log" 2>&1
  local rc=$?
  tail -3 "tests/output/$name.log"
  read -r p f < <(python3 scripts/junit_counts.py "tests/output/$name.xml")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then
    [ "$f" -gt 0 ] || { failed=$((failed + 1)); }
    failures+=("$name"); grep -E "^(FAILED|ERROR)" "tests/output/$name.log" | head -30
  fi
  echo "--- $name: $p passed, $f failed ($(( $(date +%s) - t0 ))s)"
}

stage ruff ruff check .
stage yamllint yamllint -s .
stage changelog antsibull-changelog lint
stage collection-build ansible-galaxy collection build --force --output-path tests/output/build
stage ansible-lint ansible-lint
# The Molecule scenarios run beside the unit and integration tests, one after the other in each stage and at a lower
# CPU priority: a scenario waits on its container most of the time. They are dealt longest first, each to the stage
# with more room left: a stage's room is its own length (STAGE_SECONDS) less what is queued beside it (the integration
# stage also queues the static checks, about 150 s). Seconds measured on this machine (CI16 and after manifest_files).
# The rehearsal, which measures failed requests under load, runs alone.
declare -A MOLECULE_SECONDS=([k3s_gpu]=500 [ingress_certs]=250 [host_python]=110 [traffic_shift]=85)
declare -A STAGE_SECONDS=([unit]=600 [integration]=800)
skipped=(); mol_unit=(); mol_integration=(); room_unit=${STAGE_SECONDS[unit]}; room_integration=$((STAGE_SECONDS[integration] - 150))
for scenario in $(for s in $(ls molecule); do echo "${MOLECULE_SECONDS[$s]:-300} $s"; done | sort -rn | cut -d' ' -f2); do
  [ -f "molecule/$scenario/molecule.yml" ] || continue
  # A scenario that needs something this machine cannot have (a real K3s air-gap bundle, ...)
  # names the environment variable in REQUIRES_ENV; it runs only when that variable is set.
  if [ -f "molecule/$scenario/REQUIRES_ENV" ]; then
    var=$(tr -d '[:space:]' <"molecule/$scenario/REQUIRES_ENV")
    if [ -z "${!var:-}" ]; then
      skipped+=("molecule-$scenario (needs \$$var)"); echo "=== molecule-$scenario: not run, needs \$$var (not counted)"
      continue
    fi
  fi
  cost=${MOLECULE_SECONDS[$scenario]:-300}
  if [ "$room_unit" -ge "$room_integration" ]; then
    mol_unit+=("$scenario"); room_unit=$((room_unit - cost))
  else
    mol_integration+=("$scenario"); room_integration=$((room_integration - cost))
  fi
done
for scenario in "${mol_unit[@]}"; do bg_stage "molecule-$scenario" "nice -n 10 molecule test -s $scenario"; done
run_bg
pytest_stage unit tests/unit -n 2
collect_stages
bg_stage ansible-doc scripts/check-docs.sh
bg_stage sanity scripts/sanity.sh
for scenario in "${mol_integration[@]}"; do bg_stage "molecule-$scenario" "nice -n 10 molecule test -s $scenario"; done
run_bg
# whole files per worker: a file's tests share their servers and containers (names are unique per file)
pytest_stage integration tests/integration -n 2 --dist loadfile
collect_stages
# the end-to-end rehearsal (make rehearsal): staging on production's settings, and the lab's data migration
# its two files beside each other (the lab test finishes while staging builds its node and runs 2A): the counts are
# figures, printed at the end
pytest_stage rehearsal tests/e2e -n 2 --dist loadfile
echo
if compgen -G "tests/output/figures/*.txt" >/dev/null; then
  echo "figures:"; sed 's/^/  /' tests/output/figures/*.txt
fi
echo "total time: $(( $(date +%s) - start_all ))s"
[ ${#skipped[@]} -eq 0 ] || echo "not run (need what this machine lacks): ${skipped[*]}"
[ ${#failures[@]} -eq 0 ] || echo "failed stages: ${failures[*]} (logs in tests/output/)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
