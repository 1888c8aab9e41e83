# Unification on ext4 with hard links, immutable and iunlink: vunify links
# the servers' identical files; a guest can neither write, truncate,
# chmod, chown, link nor rename over its unified file, nor take the
# attribute or the flag away, but it can unlink it or rename it away and
# put its own file there; the other server's copy is untouched.
. /tests/lib.sh

mkdir -p /mnt/x /tmp/etc /tmp/run
mount -o loop -t ext4 /ext4.img /mnt/x || fail "no ext4"
trap 'umount /mnt/x' EXIT
export VSBOX_CONFDIR=/tmp/etc VSBOX_ROOTDIR=/mnt/x VSBOX_RUNDIR=/tmp/run
for s in a b; do
	mkdir -p /mnt/x/$s/bin /mnt/x/$s/etc
	cp /bin/probe /mnt/x/$s/bin/tool
	echo "config of $s" >/mnt/x/$s/etc/conf
	: >/tmp/etc/$s.conf
done
cp /bin/busybox /mnt/x/a/bin/other
cp /bin/busybox /mnt/x/b/bin/other
chmod 700 /mnt/x/b/bin/other
expect "b: shares 1 files" vunify a b
[ "$(stat -c %i /mnt/x/a/bin/tool)" = "$(stat -c %i /mnt/x/b/bin/tool)" ] || fail "not linked"
[ "$(stat -c %i /mnt/x/a/bin/other)" = "$(stat -c %i /mnt/x/b/bin/other)" ] && fail "linked across modes"
immutable() { probe iflags "$1" | grep -q "^OK i"; }
immutable /mnt/x/b/bin/tool || fail "not immutable: $(probe iflags /mnt/x/b/bin/tool)"
# A guest of b: root of a context whose ceiling lacks CAP_LINUX_IMMUTABLE.
G="probe vs create dyn -- probe vs bcaps fffffffdff --"
F=/mnt/x/b/bin/tool
$G sh -c "echo x >> $F" 2>/dev/null && fail "appended"
$G truncate -s 0 $F 2>/dev/null && fail "truncated"
$G chmod 777 $F 2>/dev/null && fail "chmod"
$G chown 1 $F 2>/dev/null && fail "chown"
$G ln $F /mnt/x/b/bin/link 2>/dev/null && fail "hard link"
echo new >/mnt/x/b/bin/new
$G mv -f /mnt/x/b/bin/new $F 2>/dev/null && fail "renamed over"
expect "ERR EPERM" $G probe clear-immutable $F
expect "ERR EPERM" $G probe xattr-remove $F trusted.vserver.iunlink
# Even context 0 with CAP_LINUX_IMMUTABLE cannot set it from a guest, but
# the host can.
expect "ERR EPERM" probe vs create dyn -- probe xattr-set /mnt/x/b/etc/conf trusted.vserver.iunlink 1
expect "OK set" probe xattr-set /mnt/x/b/etc/conf trusted.vserver.iunlink 1
# What a package update does: rename the old file away, put the new one in.
$G mv -f $F $F.old || fail "could not rename away"
$G sh -c "echo mine > $F" || fail "could not make its own"
$G rm -f $F.old || fail "could not unlink"
[ "$(cat $F)" = "mine" ] || fail "b's file: $(cat $F)"
cmp /bin/probe /mnt/x/a/bin/tool || fail "a's copy changed"
immutable /mnt/x/a/bin/tool || fail "a's copy is no longer immutable"
echo ok
