#!/bin/sh
# Builds every package under packages/ into OUTDIR as <name>_<version>_all.deb, with what
# Debian policy asks of a binary package (lintian finds no errors): the copyright file, a
# changelog entry for the version, and every file under /etc marked as a conffile.
# Reproducible: file times are clamped to SOURCE_DATE_EPOCH (Slipway sets it to the commit time).
set -eu
out=${1:?usage: build-debs.sh OUTDIR}
version=$(cat VERSION)
: "${SOURCE_DATE_EPOCH:=$(date +%s)}"
export SOURCE_DATE_EPOCH
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

for dir in packages/*/; do
  name=$(basename "$dir")
  root="$stage/$name"
  mkdir -p "$root/DEBIAN"
  if [ -d "$dir/root" ]; then
    cp -R "$dir/root/." "$root/"
  fi
  sed "s/@VERSION@/$version/g" "$dir/control" > "$root/DEBIAN/control"
  for script in postinst prerm postrm; do
    if [ -f "$dir/$script" ]; then
      install -m 0755 "$dir/$script" "$root/DEBIAN/$script"
    fi
  done
  if [ -d "$root/etc" ]; then
    (cd "$root" && find etc -type f | LC_ALL=C sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
  fi
  doc="$root/usr/share/doc/$name"
  mkdir -p "$doc"
  cp packages/copyright "$doc/copyright"
  # A native package (the version has no Debian revision): changelog.gz, not changelog.Debian.gz.
  maintainer=$(sed -n 's/^Maintainer: //p' "$root/DEBIAN/control")
  {
    echo "$name ($version) unstable; urgency=medium"
    echo
    echo "  * Release $version."
    echo
    echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n > "$doc/changelog.gz"
  # Normalise modes so the package does not depend on the checkout's umask.
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -type f ! -perm -u+x -exec chmod 0644 {} +
  find "$root" -type f -perm -u+x -exec chmod 0755 {} +
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out/${name}_${version}_all.deb" >/dev/null
  echo "built $out/${name}_${version}_all.deb"
done
