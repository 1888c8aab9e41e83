# Unification on ext4 with the patch, then a real package update in one
# server: Debian's dpkg, run by vrpm, replaces that server's own links to
# the unified files (a backup link, then a rename over each), and the
# other server's files stay as they were, unified and immutable.
. /tests/lib.sh
mkdir -p /mnt/y /tmp/e65 /tmp/r65
mount -o loop -t ext4 /ext4.img /mnt/y || fail "no ext4"
trap 'umount /mnt/y' EXIT
mkdir -p /mnt/y/v65
export VSBOX_CONFDIR=/tmp/e65 VSBOX_ROOTDIR=/mnt/y/v65 VSBOX_RUNDIR=/tmp/r65
for s in a b; do
	vserver $s build -m busybox >/dev/null || fail "build $s"
	: >/tmp/e65/$s.conf
	# busybox's own dpkg applet is a link to busybox: removed, not
	# written through.
	(cd /kits/dpkg && find . ! -type d) | while read -r f; do rm -f "/mnt/y/v65/$s/$f"; done
	cp -a /kits/dpkg/. /mnt/y/v65/$s/
	cp /kits/vsbox-test_1.0.deb /kits/vsbox-test_2.0.deb /mnt/y/v65/$s/tmp/
done
vrpm a b -- -i /tmp/vsbox-test_1.0.deb >/tmp/65.out 2>&1 || fail "dpkg -i 1.0: $(cat /tmp/65.out)"
D=usr/share/vsbox-test/data
S=usr/share/vsbox-test/same
A=/mnt/y/v65/a B=/mnt/y/v65/b
ino() { stat -c %i "$1"; }
immutable() { probe iflags "$1" | grep -q "^OK i"; }
vunify a b >/dev/null || fail "vunify"
[ "$(ino $A/$D)" = "$(ino $B/$D)" ] || fail "the package's file is not unified"
[ "$(ino $A/usr/bin/dpkg)" = "$(ino $B/usr/bin/dpkg)" ] || fail "dpkg itself is not unified"
immutable $B/$D || fail "the unified file is not immutable"
# The update, in b only.
vrpm b -- -i /tmp/vsbox-test_2.0.deb >/tmp/65.out 2>&1 || fail "dpkg -i 2.0 in b: $(cat /tmp/65.out)"
grep -q "^v2.0 1$" $B/$D || fail "b's file was not updated: $(head -1 $B/$D)"
grep -q "^v1.0 1$" $A/$D || fail "a's file changed: $(head -1 $A/$D)"
[ "$(ino $A/$D)" != "$(ino $B/$D)" ] || fail "b still shares a's file"
immutable $A/$D || fail "a's copy is no longer immutable"
immutable $B/$D && fail "b's own new file is immutable"
cmp $A/$S $B/$S || fail "the unchanged file differs"
[ -e $B/$D.dpkg-tmp ] && fail "dpkg left its backup link"
expect "ii vsbox-test 2.0" vserver b exec sh -c "dpkg -l vsbox-test | tr -s ' '"
expect "ii vsbox-test 1.0" vserver a exec sh -c "dpkg -l vsbox-test | tr -s ' '"
# And removed from b, the package stays whole in a.
vrpm b -- -r vsbox-test >/tmp/65.out 2>&1 || fail "dpkg -r in b: $(cat /tmp/65.out)"
[ -e $B/$D ] && fail "b's file was not removed"
grep -q "^v1.0 1$" $A/$D || fail "a's file changed at the removal"
echo ok
