# The host is blind to guests, the spectator sees all and signals none, a
# guest sees its own processes and the host's init, which it cannot signal;
# a process still signals its own children wherever they went.
. /tests/lib.sh
# Not this shell's children (a subshell started them and is gone).
(probe vs create 300 -- sleep 60 & echo $! >/tmp/g.pid)
(probe vs create 301 -- sleep 60 & echo $! >/tmp/h.pid)
g=$(cat /tmp/g.pid) h=$(cat /tmp/h.pid)
sleep 1
cleanup() { probe vs migrate 300 -- kill $g; probe vs migrate 301 -- kill $h; }
trap cleanup EXIT
[ -e /proc/$g ] && fail "the host sees guest process $g in /proc"
ls /proc | grep -qx "$g" && fail "the host lists guest process $g"
ps | grep -q "[s]leep 60" && fail "the host's ps shows the guests' sleep"
kill -0 $g 2>/dev/null && fail "the host signalled guest process $g"
expect "ERR ESRCH" probe ptrace $g
expect "ERR ESRCH" probe prlimit $g
# The spectator: every process, no signal, no trace.
expect "s_context: 300" probe vs migrate 1 -- cat /proc/$g/status
expect "sleep 60" probe vs migrate 1 -- ps
expect "ERR EPERM" probe vs migrate 1 -- probe kill $g 0
expect "ERR EPERM" probe vs migrate 1 -- probe ptrace $$
# A guest: its own processes and the host's init.
out=$(probe vs migrate 300 -- ls /proc)
echo "$out" | grep -qx "$g" || fail "guest 300 does not see its own $g"
echo "$out" | grep -qx "$h" && fail "guest 300 sees guest 301's $h"
echo "$out" | grep -qx "$$" && fail "guest 300 sees the host's shell $$"
echo "$out" | grep -qx 1 || fail "guest 300 does not see the host's init"
expect "ERR EPERM" probe vs migrate 300 -- probe kill 1 0
expect "ERR EPERM" probe vs migrate 300 -- probe kill $h 0
expect "OK" probe vs migrate 300 -- probe kill $g 0
probe vs migrate 300 -- renice -n 5 -p $h 2>/dev/null && fail "guest 300 reniced guest 301"
# Nothing of the host through its init: not its root, its files, its
# namespaces, its limits; no SIGIO or SIGURG to it or to a host process.
probe vs migrate 300 -- ls /proc/1/root/ >/dev/null 2>&1 && fail "guest 300 reads the host's root through /proc/1/root"
probe vs migrate 300 -- cat /proc/1/environ >/dev/null 2>&1 && fail "guest 300 reads the host init's environment"
probe vs migrate 300 -- readlink /proc/1/ns/mnt >/dev/null 2>&1 && fail "guest 300 reads the host init's namespaces"
expect "ERR EPERM" probe vs migrate 300 -- probe prlimit 1
sh -c 'trap "echo got >/tmp/sigio" USR1; sleep 10 & wait' &
w=$!
sleep 0.5
probe vs create 302 -- probe sigio $w 10 >/dev/null
probe vs create 303 -- probe sigio -$w 10 >/dev/null
sleep 0.5
[ -e /tmp/sigio ] && fail "a guest's SIGIO reached the host's $w"
probe sigio $w 10 >/dev/null
sleep 0.5
[ -e /tmp/sigio ] || fail "the host's own SIGIO did not reach $w"
# The host still signals its own init's children and itself.
kill -0 $$ || fail "the host cannot signal itself"
# Its own child in a guest's context: yes (job control, timeout, a
# service manager); the spectator's or a guest's child: theirs alike.
probe vs create 304 -- sleep 60 &
c=$!
sleep 0.5
kill $c || fail "a parent could not signal its own child in context 304"
wait $c
# But not its grandchild there.
probe vs create 305 -- sh -c 'sleep 61; true' &
c=$!
sleep 0.5
gc=$(vps ax | awk '$2 == 305 && /sleep 61/ { print $1 }')
[ -n "$gc" ] || fail "no sleep 61 in context 305"
kill -0 $gc 2>/dev/null && fail "the host signalled its grandchild $gc in context 305"
kill $c
wait $c

echo ok
