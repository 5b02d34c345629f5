#!/usr/bin/env bash
# make setup: idempotent preparation of a fresh Debian 12 machine for sophia.migrate.
# Every step checks first and reports "ok:" (nothing to do) or "changed:" (what it did).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
APT_PACKAGES=(docker.io docker-compose debootstrap redis-server nginx haproxy prometheus
              prometheus-node-exporter prometheus-alertmanager wrk rsync curl jq iproute2 iptables git make openssl pebble certbot)
changed=0
say() { printf '%s\n' "$*"; }

# 1. Debian packages
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "changed: apt install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sophia-apt.log 2>&1 \
    || { tail -30 /tmp/sophia-apt.log; exit 1; }
  # Debian starts some of these as services where systemd runs; tests start their own instances.
  changed=1
else
  say "ok: apt packages present (${#APT_PACKAGES[@]})"
fi

# 2. Docker engine
if docker info >/dev/null 2>&1; then
  say "ok: docker engine running"
else
  say "changed: starting dockerd"
  (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { say "error: dockerd did not start, see /var/log/dockerd.log"; tail -20 /var/log/dockerd.log; exit 1; }
  changed=1
fi

# 3. Python virtualenv from pinned requirements
stamp="$VENV/.sophia-requirements.sha256"
want=$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "ok: .venv matches requirements.txt"
else
  say "changed: installing .venv from requirements.txt (about a minute)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/pip" install -q -r requirements.txt -c constraints.txt 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import ansible, molecule, redis, qdrant_client, kubernetes_validate, docker, dns" \
    || { say "error: .venv is incomplete"; exit 1; }
  echo "$want" >"$stamp"
  changed=1
fi

# 4. The repository is the collection root: link it where Ansible looks for collections
link=.ansible/collections/ansible_collections/sophia/migrate
if [ "$(readlink "$link" 2>/dev/null)" = "../../../.." ]; then
  say "ok: collection link $link"
else
  mkdir -p "$(dirname "$link")"
  ln -sfn ../../../.. "$link"
  say "changed: linked $link -> repository root"
  changed=1
fi

# 5. ansible-test sanity needs get-pip from a host we cannot reach: a local stand-in using ensurepip
getpip="$HOME/.ansible/test/cache/get_pip_24_2.py"
if [ -f "$getpip" ] && cmp -s scripts/get_pip_offline.py "$getpip"; then
  say "ok: offline get-pip for ansible-test"
else
  mkdir -p "$(dirname "$getpip")"
  cp scripts/get_pip_offline.py "$getpip"
  say "changed: installed offline get-pip for ansible-test at $getpip"
  changed=1
fi

# 6. Local systemd base image for Molecule and the lab
out=$(scripts/build-systemd-image.sh)
say "$out"
case "$out" in changed:*) changed=1 ;; esac

if [ "$changed" = 0 ]; then say "setup: nothing to change"; else say "setup: done"; fi
