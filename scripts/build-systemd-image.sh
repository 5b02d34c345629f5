#!/usr/bin/env bash
# Build local/debian-systemd:bookworm from a debootstrap rootfs (no image registry is reachable).
# Idempotent: does nothing when the image already exists (FORCE=1 rebuilds).
set -euo pipefail
IMAGE="${IMAGE:-local/debian-systemd:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "ok: image $IMAGE present"
  exit 0
fi
rootfs=$(mktemp -d /tmp/sophia-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $IMAGE with debootstrap (about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-apt,systemd,systemd-sysv,dbus,iproute2,procps,ca-certificates,sudo,kmod \
  bookworm "$rootfs" "$MIRROR" >/tmp/sophia-debootstrap.log 2>&1 || { tail -20 /tmp/sophia-debootstrap.log; exit 1; }
# A container has no consoles or hardware: mask the units that only wait or fail there.
for unit in getty@tty1.service console-getty.service systemd-udevd.service systemd-udev-trigger.service \
            systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount systemd-remount-fs.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
rm -f "$rootfs"/var/cache/apt/archives/*.deb
echo 'APT::Install-Recommends "false";' > "$rootfs/etc/apt/apt.conf.d/90norecommends"
tar -C "$rootfs" -c . | docker import \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change 'ENV container=docker' - "$IMAGE" >/dev/null
echo "changed: built $IMAGE"
