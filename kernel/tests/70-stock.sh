# vsbox's stock path works on the patched kernel as on any other: a
# chcontext context, and a busybox guest started, exec'd, listed and
# stopped.
. /tests/lib.sh
expect "s_context: 0" chcontext --silent -- cat /proc/self/status
expect "uid=0(root)" chcontext --secure --silent -- id
export VSBOX_CONFDIR=/tmp/e VSBOX_ROOTDIR=/tmp/v VSBOX_RUNDIR=/tmp/r
mkdir -p /tmp/e /tmp/v /tmp/r
vserver g build -m busybox >/dev/null || fail "build"
: >/tmp/e/g.conf
vserver g start || fail "start"
expect "vsbox-init" vserver g exec ps
expect "Server g is running" vserver g status
expect " g " vps ax
vserver g stop || fail "stop"
# The viewers see the patch's own contexts too: they look as the spectator.
probe vs create 900 -- sleep 30 &
s=$!
sleep 0.5
vps ax | grep -q "^ *$s *900 " || fail "vps shows no context 900: $(vps ax | grep sleep)"
vserver-stat | grep -q "^900 " || fail "vserver-stat shows no context 900: $(vserver-stat)"
ps | grep -q "[s]leep 30" && fail "the host's own ps sees context 900"
probe vs migrate 900 -- kill $s
expect "is not running" vserver g status
echo ok
