#!/bin/sh
# Builds a VM disk image of the guest (qcow2 holding an ext4 root filesystem) for device tests,
# as the original pushed Termina images to a testing bucket. The root filesystem is the one the
# container build made, so the VM and the container carry the same packages.
set -eu
out=${1:?usage: build-vm-image.sh OUTDIR}
src="$SLIPWAY_INPUTS/lxd_container/lxd/debian/bookworm/amd64/default/rootfs.squashfs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unsquashfs -q -no-progress -d "$work/rootfs" "$src" >/dev/null
size_mb=$(( $(du -sm "$work/rootfs" | cut -f1) * 3 / 2 + 64 ))
mkfs.ext4 -q -L guest-root -d "$work/rootfs" "$work/root.img" "${size_mb}M"
dest="$out/debian/bookworm/amd64"
mkdir -p "$dest"
qemu-img convert -q -c -O qcow2 "$work/root.img" "$dest/guest-rootfs.qcow2"
qemu-img check -q "$dest/guest-rootfs.qcow2"
echo "vm image $(qemu-img info --output=json "$dest/guest-rootfs.qcow2" | tr -d ' \n' | sed 's/.*"virtual-size":\([0-9]*\).*/\1/') bytes virtual"
