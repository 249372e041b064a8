#!/bin/sh
# Builds the guest container image from the flow's apt repository, as LXD reads it:
#   OUTDIR/debian/<release>/<arch>/<variant>/lxd.tar.xz       (metadata.yaml + templates)
#   OUTDIR/debian/<release>/<arch>/<variant>/rootfs.squashfs  (the root filesystem)
# The root filesystem is a Debian minbase with systemd (made once and kept in $SLIPWAY_CACHE)
# with cros-guest-tools installed by apt from the flow's repository: the signed one in
# continuous runs (checked against the keyring cros-apt-config ships), the unsigned one in
# presubmit, where the signer is bypassed.
set -eu
out=${1:?usage: build-container.sh OUTDIR}
release=bookworm
arch=amd64
variant=default
version=$(cat VERSION)
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"
keyring=packages/cros-apt-config/root/usr/share/keyrings/cros-apt.gpg
# A base made ahead of time (CI and hosts without network prepare it); else debootstrap it.
seed=/var/cache/slipway/debian-$release-guest-base.tar
base="${SLIPWAY_CACHE:?}/debian-$release-guest-base.tar"

if [ ! -f "$base" ]; then
  if [ -f "$seed" ]; then
    cp "$seed" "$base.tmp"
  else
    echo "making the $release base with debootstrap (kept in $SLIPWAY_CACHE)"
    tmp=$(mktemp -d)
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libpam-systemd "$release" "$tmp/rootfs" >/dev/null
    tar -C "$tmp/rootfs" --numeric-owner -cf "$base.tmp" .
    rm -rf "$tmp"
  fi
  mv "$base.tmp" "$base"
fi

if [ -d "$SLIPWAY_INPUTS/apt_signer/apt_signed" ]; then
  repo="$SLIPWAY_INPUTS/apt_signer/apt_signed"
  gpgv --quiet --keyring "./$keyring" "$repo/dists/$release/InRelease"
  source_opts="signed-by=/etc/apt/keyrings/slipway-flow.gpg"
  echo "repository signature verified"
elif [ -d "$SLIPWAY_INPUTS/apt_repo/apt_unsigned" ]; then
  repo="$SLIPWAY_INPUTS/apt_repo/apt_unsigned"
  source_opts="trusted=yes"
  echo "using the unsigned repository (presubmit)"
else
  echo "no apt repository among the inputs ($SLIPWAY_INPUTS)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"
# Device nodes cannot be made in a sandbox (nor are they needed: LXD gives the guest its /dev).
tar -C "$rootfs" --numeric-owner --exclude='./dev/*' -xf "$base"

# apt inside the image installs from a copy of the flow's repository, with apt's own checks.
mkdir -p "$rootfs/var/lib/slipway-flow" "$rootfs/etc/apt/keyrings"
cp -R "$repo/." "$rootfs/var/lib/slipway-flow/"
cp "$keyring" "$rootfs/etc/apt/keyrings/slipway-flow.gpg"
echo "deb [$source_opts] file:/var/lib/slipway-flow $release main" > "$rootfs/etc/apt/sources.list.d/slipway-flow.list"
# apt runs inside the image with a private /dev and /proc: a nested bubblewrap (its own user
# namespace, as mmdebstrap --mode=unshare does), so this works unprivileged in Slipway's sandbox.
in_image() {
  bwrap --unshare-user --uid 0 --gid 0 --unshare-pid --unshare-net --bind "$rootfs" / \
    --dev /dev --proc /proc --tmpfs /tmp --tmpfs /run --die-with-parent "$@"
}
apt_in() { in_image env DEBIAN_FRONTEND=noninteractive apt-get -o APT::Sandbox::User=root -o Dir::Etc::SourceList=/dev/null "$@"; }
apt_in update -qq
apt_in install -y -qq --no-install-recommends cros-guest-tools >/dev/null
rm -rf "$rootfs/var/lib/slipway-flow" "$rootfs/etc/apt/sources.list.d/slipway-flow.list" "$rootfs/etc/apt/keyrings/slipway-flow.gpg"
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
# The image's apt source and pin for the milestone's repository (the administrator's files, so
# no package ships them; cros-apt-config ships the keyring).
echo "deb [signed-by=/usr/share/keyrings/cros-apt.gpg] https://storage.example.org/cros-packages/${SLIPWAY_MILESTONE:-dev} $release main" \
  > "$rootfs/etc/apt/sources.list.d/cros.list"
printf 'Package: *\nPin: release l=cros-containers\nPin-Priority: 995\n' > "$rootfs/etc/apt/preferences.d/cros"
in_image dpkg-query -W -f '${Package} ${Version}\n' 'cros-*'

# The user the guest tools run for, with lingering so its user units start at boot.
chroot "$rootfs" useradd --create-home --uid 1000 --shell /bin/bash user
mkdir -p "$rootfs/var/lib/systemd/linger"
touch "$rootfs/var/lib/systemd/linger/user"

meta="$work/meta"
mkdir -p "$meta/templates"
cat > "$meta/metadata.yaml" <<META
architecture: x86_64
creation_date: $SOURCE_DATE_EPOCH
properties:
  os: debian
  release: $release
  variant: $variant
  architecture: $arch
  description: Debian $release guest tools $version (milestone ${SLIPWAY_MILESTONE:-dev})
templates:
  /etc/hostname:
    when:
      - create
      - copy
    template: hostname.tpl
META
echo '{{ container.name }}' > "$meta/templates/hostname.tpl"

dest="$out/debian/$release/$arch/$variant"
mkdir -p "$dest"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C "$meta" -cf - metadata.yaml templates | xz -6 -T1 > "$dest/lxd.tar.xz"
# mksquashfs takes its timestamps from SOURCE_DATE_EPOCH.
mksquashfs "$rootfs" "$dest/rootfs.squashfs" -comp lz4 -noappend -quiet >/dev/null
fingerprint=$(cat "$dest/lxd.tar.xz" "$dest/rootfs.squashfs" | sha256sum | cut -d' ' -f1)
echo "image debian/$release/$arch/$variant fingerprint $fingerprint"
