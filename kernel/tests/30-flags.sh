# Context flags: lock refuses a new context, private a join, nproc counts
# the context's tasks against RLIMIT_NPROC; flags are never cleared.
. /tests/lib.sh
expect "ERR EPERM" probe vs create 400 -- probe vs flags 1 1 -- probe vs create dyn
expect "ERR EPERM" probe vs create 401 -- probe vs flags 1 1 -- probe vs flags 0 1
expect "flags 0x1" probe vs create 402 -- probe vs flags 1 1 -- probe vs getflags
expect "ctxflags: 00000001" probe vs create 403 -- probe vs flags 1 1 -- cat /proc/self/status
(probe vs create 404 -- probe vs flags 8 8 -- sleep 5 & echo $! >/tmp/p.pid)
p=$(cat /tmp/p.pid)
sleep 1
expect "ERR EPERM" probe vs migrate 404
probe vs migrate 1 -- cat /proc/$p/status | grep -q "ctxflags: 00000008" || fail "no private flag shown"
kill -9 $p 2>/dev/null && fail "the host killed a guest process"
probe vs migrate 1 -- true
# nproc: with RLIMIT_NPROC 5 the context holds 5 tasks, whoever runs them.
out=$(probe vs create 405 -- probe vs flags 4 4 -- sh -c 'ulimit -u 5; n=0; for i in 1 2 3 4 5 6 7 8; do sleep 5 & [ $? = 0 ] && n=$((n+1)); done; probe count-procs' 2>&1)
echo "$out" | grep -q "fork" || echo "$out" | grep -qi "resource\|again" || fail "no fork was refused: $out"
# Flags and the capability ceiling need CAP_SYS_ADMIN: a user's context
# cannot hide from the host's root, nor a guest's user lock its root out.
expect "ERR EPERM" probe as-user 65534 probe vs create dyn -- probe vs flags 8 8
# lock and nproc only restrict: a user may add them to its own context.
expect "ctxflags: 00000005" probe as-user 65534 probe vs create dyn -- probe vs flags 5 5 -- cat /proc/self/status
expect "ERR EPERM" probe as-user 65534 probe vs create dyn -- probe vs bcaps 0
# A context made from a guest keeps its flags and its addresses.
expect "ctxflags: 00000004" probe vs create 406 -- probe vs flags 4 4 -- probe vs create dyn -- cat /proc/self/status
expect "ipv4root: 0200007f" probe vs create 407 -- probe vs ipv4root 127.0.0.2 -- probe vs create dyn -- cat /proc/self/status
echo ok
