#!/bin/sh
# Signs the unsigned repository into OUTDIR: for each dists/*/Release, an ASCII-armored detached
# Release.gpg and a clearsigned InRelease (SHA-512), then checks both with gpgv.
# The key comes from $SLIPWAY_SECRETS/apt-signing-key and never leaves the private GNUPGHOME.
set -eu
out=${1:?usage: apt-sign.sh OUTDIR}
key="${SLIPWAY_SECRETS:?no secrets: this build must run privileged in a trusted job}/apt-signing-key"
mkdir -p "$out"
cp -R "$SLIPWAY_INPUTS/apt_repo/apt_unsigned/." "$out/"

GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all >/dev/null 2>&1 || true; rm -rf "$GNUPGHOME"' EXIT
gpg --batch --quiet --import "$key" 2>/dev/null
gpg --batch --quiet --export > "$GNUPGHOME/public.gpg"

for release in "$out"/dists/*/Release; do
  dir=$(dirname "$release")
  gpg --batch --yes --quiet --pinentry-mode loopback --passphrase '' --digest-algo SHA512 \
    --armor --detach-sign --output "$dir/Release.gpg" "$release"
  gpg --batch --yes --quiet --pinentry-mode loopback --passphrase '' --digest-algo SHA512 \
    --clearsign --output "$dir/InRelease" "$release"
  gpgv --quiet --keyring "$GNUPGHOME/public.gpg" "$dir/Release.gpg" "$release"
  gpgv --quiet --keyring "$GNUPGHOME/public.gpg" "$dir/InRelease"
  echo "signed $(basename "$dir")"
done
