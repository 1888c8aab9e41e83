# vsbox's own contexts are the kernel's on the patched kernel: chcontext
# makes and joins them, the host is blind to them, vps and vkill reach them.
. /tests/lib.sh
expect "s_context: 500" chcontext --silent --ctx 500 -- cat /proc/self/status
out=$(chcontext -- cat /proc/self/status 2>&1)
n=$(echo "$out" | sed -n 's/^New security context is //p')
[ -n "$n" ] && echo "$out" | grep -q "s_context: $n" || fail "chcontext's id is not the kernel's: $out"
chcontext --silent --ctx 501 -- sleep 61 &
c=$!
sleep 0.5
ps -o args | grep -qx "sleep 61" && fail "the host's ps sees context 501"
vps ax | grep -q "^ *[0-9]* *501 .*sleep 61" || fail "vps shows no sleep in 501: $(vps ax)"
expect "sleep 61" chcontext --silent --ctx 501 -- ps
expect "s_context: 501" chcontext --silent --ctx 501 -- cat /proc/self/status
# The spectator sees it and cannot signal it.
expect "sleep 61" chcontext --silent --ctx 1 -- ps
pid=$(vps ax | awk '$2 == 501 && /sleep 61/ { print $1 }')
[ -n "$pid" ] || fail "no pid of the sleep"
chcontext --silent --ctx 1 -- kill $pid 2>/dev/null && fail "the spectator signalled $pid"
kill $pid 2>/dev/null && fail "the host signalled $pid"
# chcontext itself stays its caller's to signal, and takes the command.
takes_along TERM "[s]leep 64" chcontext --silent -- sleep 64
# Killed for good, chcontext still takes its command (its parent-death
# signal crosses from the host's context).
takes_along KILL "[s]leep 66" chcontext --silent -- sleep 66
# vkill by the host's pid (learnt from vps), and by context.
vkill -s KILL $pid || fail "vkill $pid"
wait $c
chcontext --silent --ctx 502 -- sleep 62 &
c=$!
sleep 0.5
vkill --xid 502 -s KILL || fail "vkill --xid 502"
wait $c
# Flags the kernel enforces: private refuses a join, lock a new context.
# Nobody can end a private context before it ends itself: its first
# process sleeps only briefly.
chcontext --silent --ctx 503 --flag private -- sleep 2 &
c=$!
sleep 0.5
expect "private" chcontext --silent --ctx 503 -- true
expect "private" vkill --xid 503
expect "ERR EPERM" probe vs migrate 503
pid=$(vps ax | awk '$2 == 503 { print $1; exit }')
expect "ctxflags: 00000008" chcontext --silent --ctx 1 -- cat /proc/$pid/status
wait $c
expect "ERR EPERM" chcontext --silent --flag lock -- probe vs create dyn
# vsbox never joins a kernel context it did not make: a user's dynamic
# one is skipped when vsbox picks an id, and a taken id is an error.
(probe as-user 65534 probe vs create dyn -- sleep 31 & echo $! >/tmp/u.pid)
sleep 0.5
ux=$(vps ax | awk '/sleep 31$/ { print $2; exit }')
[ -n "$ux" ] || fail "no user context: $(vps ax)"
# vsbox's next dynamic id would be the user's.
mkdir -p /run/vservers
echo "$ux" >/run/vservers/xid.next
out=$(chcontext -- cat /proc/self/status 2>&1)
echo "$out" | grep -q "s_context: $ux$" && fail "chcontext joined the user's context $ux"
echo "$out" | grep -q "^New security context is $((ux + 1))$" || fail "chcontext did not skip $ux: $out"
expect "vsbox did not make" chcontext --silent --ctx "$ux" -- true
vkill --xid "$ux" -s KILL
# Any user gets a context of the kernel's.
expect "s_context: 49" probe as-user 65534 chcontext --silent -- cat /proc/self/status
echo ok
