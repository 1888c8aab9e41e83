# Unification on ext4 with hard links, immutable and iunlink: vunify links
# the servers' identical files; a guest can neither write, truncate,
# chmod nor chown its unified file, nor take the attribute or the flag
# away, but it can replace it as dpkg does (a backup link, then a rename
# over it) or unlink it or rename it away, and put its own file there;
# the other server's copy is untouched. A plain immutable file keeps all
# its names.
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
# Without the attribute, immutable is immutable: no link, no rename, no
# unlink, from the guest or the host.
cp /bin/busybox /mnt/x/b/bin/plain
probe set-immutable /mnt/x/b/bin/plain >/dev/null || fail "set-immutable"
P=/mnt/x/b/bin/plain
$G ln $P $P.link 2>/dev/null && fail "linked a plain immutable file"
ln $P $P.link 2>/dev/null && fail "the host linked a plain immutable file"
echo x >$P.new
$G mv -f $P.new $P 2>/dev/null && fail "renamed over a plain immutable file"
$G rm -f $P 2>/dev/null; [ -e $P ] || fail "unlinked a plain immutable file"
probe clear-immutable $P >/dev/null
rm -f $P $P.new
expect "ERR EPERM" $G probe clear-immutable $F
expect "ERR EPERM" $G probe xattr-remove $F trusted.vserver.iunlink
# Even context 0 with CAP_LINUX_IMMUTABLE cannot set it from a guest, but
# the host can.
expect "ERR EPERM" probe vs create dyn -- probe xattr-set /mnt/x/b/etc/conf trusted.vserver.iunlink 1
expect "OK set" probe xattr-set /mnt/x/b/etc/conf trusted.vserver.iunlink 1
# What dpkg does to install a new version: link the old file as a backup,
# rename the new one over it, remove the backup (its secure_remove tries
# rmdir first and expects ENOTDIR).
$G rmdir $F 2>&1 | grep -q "Not a directory" || fail "rmdir of the unified file: $($G rmdir $F 2>&1)"
$G ln $F $F.dpkg-tmp || fail "could not make dpkg's backup link"
$G sh -c "echo mine > $F.dpkg-new" || fail "could not write the new file"
$G mv -f $F.dpkg-new $F || fail "could not rename over the unified file"
$G rm -f $F.dpkg-tmp || fail "could not remove the backup link"
[ "$(cat $F)" = "mine" ] || fail "b's file: $(cat $F)"
immutable $F && fail "b's own new file is immutable"
# What an older rpm did: rename the old file away, put the new one in.
O=/mnt/x/b/bin/other2
cp /bin/busybox /mnt/x/a/bin/other2
cp /bin/busybox $O
vunify a b >/dev/null || fail "vunify again"
[ "$(stat -c %i $O)" = "$(stat -c %i /mnt/x/a/bin/other2)" ] || fail "other2 not linked"
$G mv -f $O $O.old || fail "could not rename away"
$G sh -c "echo mine > $O" || fail "could not make its own"
$G rm -f $O.old || fail "could not unlink"
cmp /bin/busybox /mnt/x/a/bin/other2 || fail "a's other2 changed"
cmp /bin/probe /mnt/x/a/bin/tool || fail "a's copy changed"
immutable /mnt/x/a/bin/tool || fail "a's copy is no longer immutable"
echo ok
