#!/usr/bin/env bash
# Disk space of unified servers: a Debian server made with debootstrap and
# a second, separate copy of it (as a second install from the same mirror
# would be), on btrfs on a loop device; vdu before and after vunify, and
# how long vunify takes.
# Usage (as root; needs debootstrap, btrfs-progs and the Debian mirror):
#   benches/unify.sh [SUITE]   (default bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."
SUITE=${1:-bookworm}
VSBOX=$(realpath "${VSBOX:-target/x86_64-unknown-linux-musl/release/vsbox}")
[ -x "$VSBOX" ] || cargo build --release -q
work=$(mktemp -d /tmp/vsbox-unify.XXXXXX)
export VSBOX_CONFDIR=$work/etc VSBOX_ROOTDIR=$work/vservers VSBOX_RUNDIR=$work/run
mkdir -p "$VSBOX_CONFDIR" "$VSBOX_ROOTDIR"
truncate -s 3G "$work/fs.img"
dev=$(losetup -f --show "$work/fs.img")
cleanup() {
	umount "$VSBOX_ROOTDIR" 2>/dev/null || umount -l "$VSBOX_ROOTDIR" 2>/dev/null || true
	losetup -d "$dev" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkfs.btrfs -q "$dev"
mount "$dev" "$VSBOX_ROOTDIR"

"$VSBOX" vserver base build -m debootstrap --suite "$SUITE" >/dev/null
cp -a --reflink=never "$VSBOX_ROOTDIR/base" "$VSBOX_ROOTDIR/web"
cp "$VSBOX_CONFDIR/base.conf" "$VSBOX_CONFDIR/web.conf"
sync
echo "before:"; "$VSBOX" vdu "$VSBOX_ROOTDIR"/base "$VSBOX_ROOTDIR"/web
s=$(date +%s%N)
"$VSBOX" vunify base web
e=$(date +%s%N)
sync
echo "after:"; "$VSBOX" vdu "$VSBOX_ROOTDIR"/base "$VSBOX_ROOTDIR"/web
printf 'vunify took %.2f s\n' "$(echo "($e - $s) / 1000000000" | bc -l)"
df -k "$VSBOX_ROOTDIR" | tail -n 1
