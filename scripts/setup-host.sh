#!/usr/bin/env bash
# Prepares a Debian 12 host for Slipway's example and tests (idempotent; run as root):
# the Debian tools they use, the example container's base image (Debian minbase + systemd, made
# once from the host's Debian mirror into /var/cache/slipway), and a local S3 server (moto).
set -euo pipefail

need=()
for pair in git:git gpg:gnupg gpgv:gpgv dpkg-deb:dpkg dpkg-scanpackages:dpkg-dev xz:xz-utils gzip:gzip apt-get:apt tar:tar reprepro:reprepro apt-ftparchive:apt-utils curl:curl lxc:lxd-client lxd:lxd mksquashfs:squashfs-tools debootstrap:debootstrap openssl:openssl rclone:rclone qemu-img:qemu-utils mkfs.ext4:e2fsprogs bwrap:bubblewrap newuidmap:uidmap debmirror:debmirror aptly:aptly lintian:lintian python3:python3 wrk:wrk; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

# The example's container base (Debian minbase + systemd), made once from the machine's Debian
# mirror here, in setup: the tests themselves never leave 127.0.0.0/8.
seed=/var/cache/slipway/debian-bookworm-guest-base.tar
if [ ! -f "$seed" ]; then
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1 || true)
  mkdir -p "$(dirname "$seed")"
  tmp=$(mktemp -d)
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libpam-systemd bookworm "$tmp/rootfs" "${mirror:-http://deb.debian.org/debian}" >/dev/null
  tar -C "$tmp/rootfs" --numeric-owner -cf "$seed.tmp" .
  mv "$seed.tmp" "$seed"
  rm -rf "$tmp"
fi

# A real S3 server for the bucket tests.
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install -q 'moto[server]'
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  hash -r
fi
