# /proc/PID/status lines and VCMD_ctx_info for a guest.
. /tests/lib.sh
out=$(probe vs create 500 -- probe vs ipv4root 127.0.0.2 10.0.0.1 -- cat /proc/self/status)
echo "$out" | grep -qx "s_context: 500" || fail "$out"
echo "$out" | grep -qx "ipv4root: 0200007f/ffffffff 0100000a/ffffffff" || fail "$out"
echo "$out" | grep -q "^initpid: [0-9]" || fail "$out"
expect "ERR EPERM" probe vs create 501 -- probe vs ipv4root 127.0.0.2 -- probe vs ipv4root 127.0.0.3
expect "ERR EINVAL" probe vs create 502 -- probe vs ipv4root
expect "xid=503 flags=0x0" probe vs create 503 -- probe vs info dyn
expect "tasks=1" probe vs create 504 -- probe vs info 504
# A guest asks about no other context.
probe vs create 505 -- sleep 20 &
p=$!
sleep 1
expect "ERR ESRCH" probe vs create 506 -- probe vs info 505
expect "xid=505" probe vs info 505
expect "xid=505" probe vs migrate 1 -- probe vs info 505
probe vs migrate 505 -- kill $p
# The capability ceiling of a context: lowered, never raised, and the
# caller's own sets with it (commoncap checks some on them directly).
expect "CapBnd:	0000000000000000" probe vs create dyn -- probe vs bcaps 0 -- cat /proc/self/status
expect "CapEff:	0000000000000000" probe vs create dyn -- probe vs bcaps 0 -- cat /proc/self/status
expect "ERR EPERM" probe vs create 507 -- probe vs bcaps 0 -- probe set-clock
expect "ERR EPERM" probe vs create 508 -- probe vs bcaps 0 -- probe vs bcaps ffffffffff -- probe mknod-block /tmp/vs-blk
echo ok
