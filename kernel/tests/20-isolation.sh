# The host is blind to guests, the spectator sees all and signals none, a
# guest sees its own processes and the host's init, which it cannot signal.
. /tests/lib.sh
probe vs create 300 -- sleep 60 &
g=$!
probe vs create 301 -- sleep 60 &
h=$!
sleep 1
cleanup() { probe vs migrate 300 -- kill $g; probe vs migrate 301 -- kill $h; }
trap cleanup EXIT
[ -e /proc/$g ] && fail "the host sees guest process $g in /proc"
ls /proc | grep -qx "$g" && fail "the host lists guest process $g"
ps | grep -q "[s]leep 60" && fail "the host's ps shows the guests' sleep"
kill -0 $g 2>/dev/null && fail "the host signalled guest process $g"
expect "ERR EPERM" probe ptrace $g
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
# The host still signals its own init's children and itself.
kill -0 $$ || fail "the host cannot signal itself"
echo ok
