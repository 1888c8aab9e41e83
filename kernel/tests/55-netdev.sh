# A context with addresses sees only the devices that carry one of them,
# and of their IPv4 addresses only its own (the original's ctx-6), in
# /proc/net/dev, netlink dumps, SIOCGIFCONF and /proc/net/if_inet6; the
# host and a context without addresses see every device.
. /tests/lib.sh
ip link add vt0 type veth peer name vt1 || fail "no veth"
trap 'ip link del vt0 2>/dev/null' EXIT
ip addr add 10.7.0.1/24 dev vt0
ip addr add 10.7.0.2/24 dev vt0
ip link set vt0 up
grep -q " lo:" /proc/net/dev || fail "the host does not see lo"
L="probe vs create dyn -- probe vs ipv4root 10.7.0.1 --"
out=$($L cat /proc/net/dev)
echo "$out" | grep -q "vt0:" || fail "the context does not see its own device: $out"
echo "$out" | grep -q " lo:" && fail "the context sees lo in /proc/net/dev"
echo "$out" | grep -q "veth" && fail "the context sees the veth peer in /proc/net/dev"
out=$($L ip -o link)
echo "$out" | grep -q "vt0" || fail "ip link: no vt0: $out"
echo "$out" | grep -q " lo:" && fail "ip link shows lo: $out"
out=$($L ip -o addr)
echo "$out" | grep -q "10.7.0.1/24" || fail "ip addr: no 10.7.0.1: $out"
echo "$out" | grep -q "10.7.0.2" && fail "ip addr shows an address not its own: $out"
echo "$out" | grep -q "127.0.0.1" && fail "ip addr shows lo's address: $out"
echo "$out" | grep -q "inet6 ::1" && fail "ip addr shows lo's IPv6 address: $out"
$L ip link show lo 2>&1 | grep -q "lo:" && fail "ip link show lo found it"
expect "OK vt0 10.7.0.1" $L probe ifconf
$L probe ifconf | grep -q "127.0.0.1\|10.7.0.2" && fail "SIOCGIFCONF lists another address: $($L probe ifconf)"
$L cat /proc/net/if_inet6 | grep -q " lo$" && fail "/proc/net/if_inet6 shows lo"
grep -q " lo$" /proc/net/if_inet6 || fail "the host's /proc/net/if_inet6 has no lo"
# The host and a context without addresses see every device.
expect " lo:" probe vs create dyn -- cat /proc/net/dev
expect "10.7.0.2" probe vs create dyn -- ip -o addr
expect "lo 127.0.0.1" probe ifconf
echo ok
