#!/usr/bin/env bash
# Builds (once) the Debian root that the LambdaStack-node and deploy tests boot with systemd-nspawn:
# a real systemd with PostgreSQL, RabbitMQ, Prometheus, Alertmanager and HAProxy installed from
# Debian, as a LambdaStack node has them, and sshd, sudo, python3 and ansible-core for the deploy.
# It lives outside the checkout and is rebuilt when missing or when this script changes (its hash
# is stored in the root), so CI pays the 3-5 minutes once.
#
#   scripts/test-root.sh [ROOT]        default ROOT: /var/cache/lsbackup/nspawn-bookworm
#
# Needs root, debootstrap and systemd-container. Prints the root's path on the last line.
set -euo pipefail
ROOT="${1:-${LSBACKUP_TEST_ROOT:-/var/cache/lsbackup/nspawn-bookworm}}"
SELF_HASH="$(sha256sum "$0" | cut -d' ' -f1)"
STAMP="$ROOT/.lsbackup-test-root"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SELF_HASH" ]]; then
  echo "$ROOT"
  exit 0
fi
for tool in debootstrap systemd-nspawn; do
  command -v "$tool" >/dev/null || { echo "test-root: $tool is missing; run: apt-get install -y debootstrap systemd-container" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "test-root: must run as root (debootstrap)" >&2; exit 1; }

MIRROR="$(sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
BUILD="$ROOT.building"
rm -rf "$BUILD"
mkdir -p "$(dirname "$ROOT")"
echo "test-root: debootstrap bookworm into $BUILD from $MIRROR (a few minutes, once)" >&2
debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates,iproute2,procps bookworm "$BUILD" "$MIRROR" >&2

# Services are configured and started by the tests, as LambdaStack's roles would, not by apt.
printf '#!/bin/sh\nexit 101\n' > "$BUILD/usr/sbin/policy-rc.d"
chmod +x "$BUILD/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$BUILD/etc/resolv.conf" 2>/dev/null || true
chroot "$BUILD" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
chroot "$BUILD" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  postgresql-15 postgresql-client-15 rabbitmq-server prometheus prometheus-alertmanager haproxy \
  openssh-server sqlite3 libstdc++6 python3 sudo ansible-core openssl >&2
chroot "$BUILD" apt-get clean
rm -f "$BUILD/usr/sbin/policy-rc.d"
# No unit Debian enabled may start at boot: each test configures and starts what it needs.
for unit in postgresql prometheus prometheus-alertmanager prometheus-node-exporter rabbitmq-server haproxy ssh; do
  chroot "$BUILD" systemctl disable "$unit" >/dev/null 2>&1 || true
done
chroot "$BUILD" systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo "$SELF_HASH" > "$BUILD/.lsbackup-test-root"
rm -rf "$ROOT"
mv "$BUILD" "$ROOT"
echo "$ROOT"
