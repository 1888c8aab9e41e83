# A vsbox guest on the patched kernel is a context of the kernel's own:
# the host is blind to it, it sees only itself (and the host's init), and
# vsbox still starts, enters, lists, stops and restarts it.
. /tests/lib.sh
expect "uid=0(root)" chcontext --secure --silent -- id
export VSBOX_CONFDIR=/tmp/e VSBOX_ROOTDIR=/tmp/v VSBOX_RUNDIR=/tmp/r
mkdir -p /tmp/e /tmp/v /tmp/r
vserver g build -m busybox >/dev/null || fail "build"
: >/tmp/e/g.conf
vserver g start || fail "start"
xid=$(vserver g status | sed -n 's/^context: //p')
[ -n "$xid" ] || fail "no context in: $(vserver g status)"
expect "Server g is running" vserver g status
expect "s_context: $xid" vserver g exec cat /proc/self/status
# The kernel's first task of the context is the guest's init.
init=$(vps ax | awk -v x="$xid" '$2 == x && /vsbox-init/ { print $1; exit }')
expect "initpid: $init" vserver g exec cat /proc/self/status
expect "vsbox-init" vserver g exec ps
ps | grep -q "[v]sbox-init" && fail "the host's ps sees the guest's init"
vserver g exec ls /proc | grep -qx "$$" && fail "the guest sees the host's shell"
init=$(vps ax | awk -v x="$xid" '$2 == x && /vsbox-init/ { print $1; exit }')
[ -n "$init" ] || fail "vps shows no init of g: $(vps ax)"
kill -0 "$init" 2>/dev/null && fail "the host signalled the guest's init"
vserver-stat | grep -q "^$xid .* g$" || fail "vserver-stat: $(vserver-stat)"
# The host's own `vserver exec` stays its to signal (job control, a
# service manager), and the command goes with it.
takes_along TERM "[s]leep 30" vserver g exec sleep 30
# The client stays a host process: anyone may signal it (busybox's
# timeout signals its parent from a child).
(vserver g exec sleep 34 >/dev/null 2>&1 & echo $! >/tmp/c.pid)
sleep 1
kill "$(cat /tmp/c.pid)" || fail "the host could not signal an exec client it did not start"
sleep 0.5
vps ax | grep -q "[s]leep 34" && fail "the command outlived its client"
t0=$(date +%s)
timeout 2 vserver g exec sleep 20
[ $(( $(date +%s) - t0 )) -lt 10 ] || fail "timeout could not end vserver exec"
# A command started inside outlives nothing: stop ends it with the guest.
vserver g exec sh -c 'sleep 300 >/dev/null 2>&1 &'
vserver g stop || fail "stop"
expect "is not running" vserver g status
vps ax | grep -q "[s]leep 300" && fail "a process outlived its guest"
sleep 0.5
expect "ERR ESRCH" probe vs info "$xid"
# A stopped guest's exec: a fresh context of the kernel's, gone after.
expect "s_context: " vserver g exec cat /proc/self/status
vserver g exec cat /proc/self/status | grep -q "s_context: 0" && fail "exec ran in the host's context"
# A killed client of an exec into the stopped server takes its command.
takes_along KILL "[s]leep 33" vserver g exec sleep 33
# Restarted: the same id again, a context of the kernel's again.
vserver g start || fail "start again"
vserver g restart || fail "restart"
x2=$(vserver g status | sed -n 's/^context: //p')
expect "s_context: $x2" vserver g exec cat /proc/self/status
vkill --xid g -s KILL || fail "vkill --xid g"
sleep 1
expect "is not running" vserver g status
# A guest that may reboot itself: its supervisor answers reboot(2) from
# inside its context, and the host's half of it starts the guest again.
echo S_CAPS=CAP_SYS_BOOT >/tmp/e/g.conf
vserver g start || fail "start with CAP_SYS_BOOT"
i1=$(vserver g exec cat /proc/self/status | sed -n 's/^initpid: //p')
vserver g exec reboot -f
n=0
until vserver g running && i2=$(vserver g exec cat /proc/self/status | sed -n 's/^initpid: //p') && [ -n "$i2" ] && [ "$i2" != "$i1" ]; do
	n=$((n + 1))
	[ $n -gt 50 ] && fail "the guest did not restart (init $i1, now '$i2')"
	sleep 0.2
done
vserver g stop || fail "stop after the reboot"
# Its own init (busybox's, fakeinit): started and stopped as it
# understands, from inside its context.
printf '#!/bin/sh\necho up >/var/started\n' >/tmp/v/g/etc/init.d/rcS
chmod 755 /tmp/v/g/etc/init.d/rcS
printf '::sysinit:/etc/init.d/rcS\n::shutdown:/bin/sh -c "echo down >/var/stopped"\n' >/tmp/v/g/etc/inittab
echo S_FLAGS=fakeinit >/tmp/e/g.conf
vserver g start || fail "start with fakeinit"
[ -e /tmp/v/g/var/started ] || fail "start returned before the rc script ran"
expect "init" vserver g exec cat /proc/1/comm
vserver g stop || fail "stop with fakeinit"
[ "$(cat /tmp/v/g/var/stopped 2>/dev/null)" = down ] || fail "busybox init's shutdown did not run"
expect "is not running" vserver g status
# The viewers still see the patch's own contexts made without vsbox.
probe vs create 900 -- sleep 30 &
s=$!
sleep 0.5
vps ax | grep -q "^ *$s *900 " || fail "vps shows no context 900: $(vps ax | grep sleep)"
vserver-stat | grep -q "^900 " || fail "vserver-stat shows no context 900: $(vserver-stat)"
ps | grep -q "[s]leep 30" && fail "the host's own ps sees context 900"
probe vs migrate 900 -- kill $s
echo ok
