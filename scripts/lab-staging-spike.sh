#!/usr/bin/env bash
# Feasibility spike: a Docker engine (Debian docker.io 20.10 + docker-compose 1.29) and HAProxy INSIDE the lab's
# systemd "GPU host" container, without --privileged.  Reproduces every measurement of docs/lab-staging.md.
#
#   ./scripts/lab-staging-spike.sh            run everything, print timings, remove everything it created
#   KEEP=1 ./scripts/lab-staging-spike.sh     leave node, volume and network in place (remove later with ./scripts/lab-staging-spike.sh clean)
#   ./scripts/lab-staging-spike.sh clean      remove what this script creates
#   STORAGE=fuse ./scripts/lab-staging-spike.sh   /var/lib/docker on the node's overlayfs, fuse-overlayfs driver, --device /dev/fuse
#   STORAGE=vfs  ./scripts/lab-staging-spike.sh   /var/lib/docker on the node's overlayfs, vfs driver (slow: full copy per container)
#   STORAGE=rootfs ./scripts/lab-staging-spike.sh overlay2 on the node's overlayfs: dockerd does not start ("failed to mount overlay")
#
# Creates only: container spike-node, volume spike-node-docker, network spike-net (one throw-away container
# spike-probe, one outer peer spike-peer).  Scratch: /work/spike/compose (generated).
set -euo pipefail

NODE=spike-node
VOL=spike-node-docker
NET=spike-net
BASE=local/debian-systemd:bookworm
# image shipped into the node (a few hundred MB); the lab image if it exists, else the base image
PAYLOAD=${PAYLOAD:-$(docker image inspect local/sophia-lab:bookworm >/dev/null 2>&1 && echo local/sophia-lab:bookworm || echo "$BASE")}
NSVC=${NSVC:-14}            # small services (+1 edge = 15 containers)
STORAGE=${STORAGE:-volume}
case $STORAGE in
  volume) DRIVER=overlay2;       STORE_OPTS=(-v "spike-node-docker:/var/lib/docker"); EXTRA_PKGS= ;;
  fuse)   DRIVER=fuse-overlayfs; STORE_OPTS=(--device /dev/fuse);                 EXTRA_PKGS=fuse-overlayfs ;;
  vfs)    DRIVER=vfs;            STORE_OPTS=();                                  EXTRA_PKGS= ;;
  rootfs) DRIVER=overlay2;       STORE_OPTS=();                                  EXTRA_PKGS= ;;
  *) echo "STORAGE: volume|fuse|vfs|rootfs" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
TIMINGS=$HERE/timings-$STORAGE.txt

clean() {
  # stop cleanly first: a SIGKILLed node leaves its inner containers' (empty) cgroups behind on the host
  docker stop "$NODE" >/dev/null 2>&1 || true
  docker rm -f -v "$NODE" spike-probe spike-peer >/dev/null 2>&1 || true
  # inner containers' cgroups live in the HOST's tree (cgroupns host) under daemon.json's cgroup-parent
  find /sys/fs/cgroup/*/"$NODE"-inner -depth -type d -exec rmdir {} + 2>/dev/null || true
  docker volume rm "$VOL" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
}
if [[ ${1:-} == clean ]]; then clean; exit 0; fi

now() { date +%s.%N; }
T_ALL=$(now)
: >"$TIMINGS"
lap() { # lap LABEL START
  local d; d=$(python3 -c "print(f'{$(now)-$2:.1f}')"); printf '%-52s %6ss\n' "$1" "$d" | tee -a "$TIMINGS"
}
nx() { docker exec "$NODE" "$@"; }                 # run in the node
nxi() { docker exec -i "$NODE" "$@"; }             # ... with stdin
waitfor() { # waitfor SECONDS CMD...: retry CMD until it succeeds, fail after SECONDS
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do (( $(date +%s) < end )) || { echo "timeout: $*" >&2; return 1; }; sleep 0.3; done
}
check() { # check LABEL CMD...   (prints ok/FAIL, never aborts)
  if out=$("${@:2}" 2>&1); then out=${out//$'\n'/ }; echo "ok    $1: ${out:0:70}"; else out=${out//$'\n'/ }; echo "FAIL  $1: ${out:0:300}"; FAILED=1; fi
}
FAILED=0

echo "== waiting for $BASE"
until docker image inspect "$BASE" >/dev/null 2>&1; do sleep 5; done
clean
[[ ${KEEP:-0} == 1 ]] || trap 'clean; echo "cleaned up"' EXIT

# ---------------------------------------------------------------- 1. the node
t=$(now)
docker network create "$NET" >/dev/null
docker volume create "$VOL" >/dev/null
# Exactly the lab's capability set, plus:
#  - /var/lib/docker on a Docker volume (ext4 on this host), NOT on the container's overlayfs, so overlay2 works
#  - net.ipv4.ip_nonlocal_bind=1 (namespaced sysctl): HAProxy may bind 172.17.0.1 before dockerd has created docker0
#  - SIGRTMIN+3 = systemd's clean shutdown; 30 s lets the inner dockerd stop its containers
docker run -d --name "$NODE" --hostname "$NODE" \
  --cap-add SYS_ADMIN --cap-add NET_ADMIN --security-opt seccomp=unconfined \
  --tmpfs /run --tmpfs /run/lock --cgroupns host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
  "${STORE_OPTS[@]}" \
  --sysctl net.ipv4.ip_nonlocal_bind=1 \
  --stop-signal SIGRTMIN+3 --stop-timeout 30 \
  --network "$NET" \
  "$BASE" /lib/systemd/systemd >/dev/null
# systemctl fails with "Failed to connect to bus" for the first few 100 ms: retry
waitfor 120 nx systemctl is-system-running --wait
lap "node start (docker run -> systemd running)" "$t"
NODE_IP=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$NODE")

# ---------------------------------------------------------------- 2. packages + daemon.json
# daemon.json first, so the dockerd that the package starts is already configured.
nx mkdir -p /etc/docker
sed "s/@DRIVER@/$DRIVER/; s/@NET@/$NET/" <<'EOF' | nxi sh -c 'cat >/etc/docker/daemon.json'
{
  "storage-driver": "@DRIVER@",
  "bip": "172.17.0.1/16",
  "default-address-pools": [{"base": "10.213.0.0/16", "size": 24}],
  "cgroup-parent": "/spike-node-inner",
  "dns": ["172.17.0.1"],
  "dns-search": ["@NET@"],
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
EOF
# DNS for inner containers: the inner embedded DNS forwards only dotted names, to daemon.json's "dns"; the node's own
# resolver is the OUTER engine's 127.0.0.11 (reachable only from the node's netns). So: dnsmasq on 172.17.0.1 forwards
# to 127.0.0.11 (no cache: lab aliases move at cutover), and dns-search <outer network> turns "sophia-redis" into
# "sophia-redis.<network>", which the outer engine's DNS answers (container names and aliases).
nxi sh -c 'cat >/etc/systemd/system/lab-dns.service' <<'EOF'
[Unit]
Description=DNS forwarder for inner containers: 172.17.0.1:53 -> the outer engine's DNS (127.0.0.11)
Before=docker.service
[Service]
ExecStart=/usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --cache-size=0 --server=127.0.0.11 --listen-address=172.17.0.1 --bind-interfaces --user=root
Restart=always
[Install]
WantedBy=multi-user.target
EOF
t=$(now)
nx sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  docker.io docker-compose haproxy dnsmasq-base '"$EXTRA_PKGS"' >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }' \
  && nx systemctl enable --now lab-dns.service >/dev/null 2>&1
lap "apt-get update + install docker.io docker-compose haproxy dnsmasq-base $EXTRA_PKGS" "$t"
t=$(now)
waitfor 60 nx docker info || { nx journalctl -u docker --no-pager | grep -m3 -E 'level=(error|fatal)|failed' || true; exit 1; }
lap "dockerd answering after install" "$t"
t=$(now)
nx systemctl restart docker
waitfor 60 nx docker info
lap "dockerd restart (systemctl restart docker, empty)" "$t"

# ---------------------------------------------------------------- 3. ship an image
SIZE=$(docker image inspect -f '{{.Size}}' "$PAYLOAD")
t=$(now)
docker save "$PAYLOAD" | docker exec -i "$NODE" docker load >/dev/null
lap "docker save | docker exec -i node docker load ($((SIZE/1000000)) MB)" "$t"

# ---------------------------------------------------------------- 4. compose project ON the node
mkdir -p "$HERE/compose/edge"
echo edge-ok >"$HERE/compose/edge/index.html"
python3 - "$HERE/compose/docker-compose.yml" "$PAYLOAD" "$NSVC" <<'EOF'
import json, sys
path, image, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
web = ["python3", "-m", "http.server", "8080"]
hc = {"test": ["CMD", "python3", "-c", "import urllib.request;urllib.request.urlopen('http://127.0.0.1:8080/')"],
      "interval": "2s", "retries": 15}
svcs = {f"svc{i:02d}": {"image": image, "command": web, "init": True, "restart": "unless-stopped",
                       "healthcheck": hc, "volumes": [f"data{i:02d}:/data"]} for i in range(1, n + 1)}
svcs["edge"] = {"image": image, "command": web, "init": True, "restart": "unless-stopped", "working_dir": "/srv",
                "volumes": ["./edge:/srv:ro"],
                "ports": ["127.0.0.1:18080:8080", "18081:8080"]}
json.dump({"version": "2.4", "services": svcs, "volumes": {f"data{i:02d}": {} for i in range(1, n + 1)}},
          open(path, "w"), indent=1)
EOF
# a container on the OUTER network, reached by inner containers by name and by network alias
docker run -d --name spike-peer --network "$NET" --network-alias spike-alias "$BASE" python3 -m http.server 8000 >/dev/null
nx mkdir -p /srv/sophia
docker cp "$HERE/compose/." "$NODE":/srv/sophia/
t=$(now)
docker exec -w /srv/sophia "$NODE" docker-compose -p sophia up -d >/dev/null 2>&1
lap "docker-compose up -d ($((NSVC+1)) containers)" "$t"
wait_healthy() {
  for _ in $(seq 1 240); do
    [[ $(nx sh -c 'docker ps -q --filter health=healthy 2>/dev/null | wc -l') -ge $NSVC ]] && return 0; sleep 0.5
  done; return 1
}
wait_healthy
lap "  ... and all $NSVC healthchecks healthy (from up)" "$t"

# ---------------------------------------------------------------- 5. HAProxy on the node, bound to docker0's address
nxi sh -c 'cat >>/etc/haproxy/haproxy.cfg' <<'EOF'

frontend spike_fe
    bind 172.17.0.1:9000
    bind 127.0.0.1:9000
    mode http
    default_backend spike_be
backend spike_be
    mode http
    server edge 127.0.0.1:18080
EOF
nx sh -c 'haproxy -q -c -f /etc/haproxy/haproxy.cfg && systemctl restart haproxy'

# ---------------------------------------------------------------- 6. checks
GET='import sys,urllib.request;print(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode().strip())'
checks() {
  check "inner cgroup parent"            nx sh -c "grep -m1 memory /proc/\$(docker inspect -f '{{.State.Pid}}' sophia_edge_1)/cgroup"
  check "storage driver"                  nx sh -c "docker info -f '{{.Driver}}'"
  check "docker0 address"                 nx sh -c "ip -4 -br addr show docker0 | awk '{print \$3}'"
  check "compose network subnet"          nx docker network inspect sophia_default -f '{{(index .IPAM.Config 0).Subnet}}'
  check "iptables flavour in node"        nx iptables -V
  check "container -> container by name"  nx docker exec sophia_svc01_1 python3 -c "$GET" http://svc02:8080/data/
  check "container -> 172.17.0.1 HAProxy" nx docker exec sophia_svc01_1 python3 -c "$GET" http://172.17.0.1:9000/
  check "inner container -> outer spike-peer by name" nx docker exec sophia_svc01_1 python3 -c "$GET" http://spike-peer:8000/etc/hostname
  check "inner container -> outer alias spike-alias" nx docker exec sophia_svc01_1 python3 -c "$GET" http://spike-alias:8000/etc/hostname
  check "inner container -> internet name"  nx docker exec sophia_svc01_1 python3 -c "import socket;print(socket.gethostbyname('deb.debian.org'))"
  check "node -> 127.0.0.1:18080 (published)" nx python3 -c "$GET" http://127.0.0.1:18080/
  check "node -> $NODE_IP:18081 (published)" nx python3 -c "$GET" "http://$NODE_IP:18081/"
  check "host -> $NODE_IP:18081"          python3 -c "$GET" "http://$NODE_IP:18081/"
  check "host -> $NODE_IP:18080 refused (loopback-only publish)" \
        python3 -c "import socket,sys;s=socket.socket();s.settimeout(3);sys.exit(0 if s.connect_ex(('$NODE_IP',18080)) else 1)"
  check "sibling container -> $NODE:18081" docker run --rm --name spike-probe --network "$NET" "$BASE" python3 -c "$GET" "http://$NODE:18081/"
  check "haproxy active"                  nx systemctl is-active haproxy
  check "node has no failed units"        nx sh -c '[ -z "$(systemctl --failed --no-legend)" ] && echo none'
}
checks

# ---------------------------------------------------------------- 7. restart of the node
t=$(now)
docker stop "$NODE" >/dev/null
lap "docker stop node (systemd + inner dockerd shut down cleanly)" "$t"
t=$(now)
docker start "$NODE" >/dev/null
waitfor 120 nx systemctl is-system-running --wait
lap "docker start node -> systemd running" "$t"
wait_healthy
lap "  ... inner containers back and healthy (restart policy)" "$t"
t=$(now)
docker restart "$NODE" >/dev/null
waitfor 120 nx systemctl is-system-running --wait
wait_healthy
lap "docker restart node -> all healthy again" "$t"
echo "== checks after restarts"
checks

lap "TOTAL (incl. checks)" "$T_ALL"
echo "timings saved in $TIMINGS"
exit "$FAILED"
