#!/bin/sh
# Builds the guest container image from the flow's apt repository, as LXD reads it:
#   OUTDIR/debian/<release>/<arch>/<variant>/lxd.tar.xz     (metadata.yaml + templates)
#   OUTDIR/debian/<release>/<arch>/<variant>/rootfs.tar.xz  (the root filesystem)
# Continuous runs get the signed repo (apt_signer) and verify it with the keyring that
# cros-apt-config ships; presubmit gets the unsigned repo (apt_repo) because the signer is bypassed.
# Every index and package is checked against the hashes the repository lists before use.
set -eu
out=${1:?usage: build-container.sh OUTDIR}
release=bookworm
arch=amd64
variant=default
version=$(cat VERSION)
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"
keyring=packages/cros-apt-config/root/usr/share/keyrings/cros-apt.gpg

if [ -d "$SLIPWAY_INPUTS/apt_signer/apt_signed" ]; then
  repo="$SLIPWAY_INPUTS/apt_signer/apt_signed"
  gpgv --quiet --keyring "./$keyring" "$repo/dists/$release/InRelease"
  gpgv --quiet --keyring "./$keyring" "$repo/dists/$release/Release.gpg" "$repo/dists/$release/Release"
  echo "repository signature verified"
elif [ -d "$SLIPWAY_INPUTS/apt_repo/apt_unsigned" ]; then
  repo="$SLIPWAY_INPUTS/apt_repo/apt_unsigned"
  echo "using the unsigned repository (presubmit)"
else
  echo "no apt repository among the inputs ($SLIPWAY_INPUTS)" >&2
  exit 1
fi

dists="$repo/dists/$release"
index="main/binary-$arch/Packages"
listed=$(awk -v f="$index" '/^SHA256:/{s=1;next} /^[^ ]/{s=0} s && $3==f {print $1}' "$dists/Release")
actual=$(sha256sum "$dists/$index" | cut -d' ' -f1)
if [ -z "$listed" ] || [ "$listed" != "$actual" ]; then
  echo "$index does not match the hash in Release" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs"
awk '/^Filename:/{f=$2} /^SHA256:/{s=$2} /^$/{if (f) print s, f; f=""; s=""} END{if (f) print s, f}' "$dists/$index" |
  while read -r sha file; do
    echo "$sha  $repo/$file" | sha256sum --check --quiet
    dpkg-deb -x "$repo/$file" "$rootfs"
    echo "installed $(basename "$file")"
  done
echo "deb [signed-by=/usr/share/keyrings/cros-apt.gpg] https://storage.example.org/cros-packages/${SLIPWAY_MILESTONE:-dev} $release main" \
  > "$rootfs/etc/apt/sources.list.d/cros.list"

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
pack() { # $1 = dir, $2 = output, rest = members
  dir=$1; file=$2; shift 2
  tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
    -C "$dir" -cf - "$@" | xz -6 -T1 > "$file"
}
pack "$meta" "$dest/lxd.tar.xz" metadata.yaml templates
pack "$rootfs" "$dest/rootfs.tar.xz" .
fingerprint=$(cat "$dest/lxd.tar.xz" "$dest/rootfs.tar.xz" | sha256sum | cut -d' ' -f1)
echo "image debian/$release/$arch/$variant fingerprint $fingerprint"
