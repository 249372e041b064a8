#!/bin/sh
# Makes an (unsigned) apt repository in OUTDIR from the guest_tools .debs:
#   pool/main/<p>/<package>/<file>.deb
#   dists/<codename>/main/binary-<arch>/{Packages,Packages.gz,Packages.xz,Release}
#   dists/<codename>/Release (SHA256 and MD5Sum of every index)
# Architecture: all packages are listed for every architecture.
set -eu
out=${1:?usage: apt-repo.sh OUTDIR}
debs="$SLIPWAY_INPUTS/guest_tools/guest_debs"
codename=bookworm
archs="amd64 arm64"
component=main
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"

set -- "$debs"/*.deb
[ -e "$1" ] || { echo "no .deb files in $debs" >&2; exit 1; }
mkdir -p "$out"
for deb in "$@"; do
  pkg=$(dpkg-deb -f "$deb" Package)
  prefix=$(printf %s "$pkg" | cut -c1)
  case "$pkg" in lib?*) prefix=$(printf %s "$pkg" | cut -c1-4) ;; esac
  mkdir -p "$out/pool/$component/$prefix/$pkg"
  cp "$deb" "$out/pool/$component/$prefix/$pkg/"
done

cd "$out"
for arch in $archs; do
  dir="dists/$codename/$component/binary-$arch"
  mkdir -p "$dir"
  dpkg-scanpackages --multiversion --arch "$arch" pool /dev/null > "$dir/Packages" 2>/dev/null
  gzip -9nc "$dir/Packages" > "$dir/Packages.gz"
  xz -9c "$dir/Packages" > "$dir/Packages.xz"
  cat > "$dir/Release" <<REL
Archive: stable
Codename: $codename
Component: $component
Origin: Example
Label: cros-containers
Architecture: $arch
REL
done

checksums() { # $1 = sha256sum | md5sum; every index under dists/<codename> but the suite files
  (cd "dists/$codename" && find . -type f | sed 's|^\./||' | grep -vx -e Release -e Release.gpg -e InRelease | sort) |
    while read -r f; do
      sum=$($1 "dists/$codename/$f" | cut -d' ' -f1)
      size=$(wc -c < "dists/$codename/$f")
      printf ' %s %16s %s\n' "$sum" "$size" "$f"
    done
}
{
  echo "Origin: Example"
  echo "Label: cros-containers"
  echo "Suite: stable"
  echo "Codename: $codename"
  echo "Version: 1.0"
  echo "Date: $(date -u -d "@$SOURCE_DATE_EPOCH" '+%a, %d %b %Y %H:%M:%S +0000')"
  echo "Architectures: $archs"
  echo "Components: $component"
  echo "Description: Example guest packages for milestone ${SLIPWAY_MILESTONE:-dev}"
  echo "MD5Sum:"
  checksums md5sum
  echo "SHA256:"
  checksums sha256sum
} > "dists/$codename/Release"
echo "repository for $codename ($archs) with $# packages in $out"
