# The in-kernel address lock: 0.0.0.0 becomes the first address, other
# addresses are refused, connections and datagrams leave from the first
# address, IPv6 is refused, and the lock is one-shot.
. /tests/lib.sh
# A new context locked to the addresses given, then the command.
L1="probe vs create dyn -- probe vs ipv4root 127.0.0.2 --"
L2="probe vs create dyn -- probe vs ipv4root 127.0.0.2 127.0.0.3 --"
expect "OK 127.0.0.2:8080" $L2 probe bind 0.0.0.0 8080 tcp
expect "OK 127.0.0.3:8081" $L2 probe bind 127.0.0.3 8081 tcp
expect "ERR EADDRNOTAVAIL" $L1 probe bind 127.0.0.1 8082 tcp
expect "ERR EADDRNOTAVAIL" $L1 probe bind 127.0.0.4 8083 udp
# The host itself has IPv6 (so the refusal is the lock's).
expect "OK" probe socket6
expect "ERR EAFNOSUPPORT" $L1 probe socket6
expect "ERR EAFNOSUPPORT" $L1 probe bind :: 8084 tcp
expect "ERR EPERM" $L1 probe vs ipv4root 127.0.0.5
# Outgoing: a host server sees the guest's address as the peer.
probe serve 127.0.0.1 8090 t >/tmp/serve.out &
sleep 0.5
expect "local=127.0.0.2 answer=t 127.0.0.2" $L1 probe connect 127.0.0.1 8090
wait
probe udp-recv 127.0.0.1 8091 >/tmp/udp.out &
sleep 0.5
expect "OK sent 5" $L1 probe udp-send 127.0.0.1 8091
wait
grep -q "from=127.0.0.2" /tmp/udp.out || fail "datagram came from $(cat /tmp/udp.out)"
# No way around it: AF_UNSPEC, listen without bind, IP_PKTINFO, other
# protocols; no 0.0.0.0 as an address of the lock.
expect "OK 127.0.0.2" $L1 probe bind-unspec 8086
expect "OK 127.0.0.2" $L1 probe listen-unbound
expect "ERR EADDRNOTAVAIL" $L1 probe pktinfo-send 127.0.0.1 127.0.0.1 8092
expect "ERR EPERM" $L1 probe raw-socket
expect "ERR EPERM" $L1 probe raw-open 4 132
expect "ERR EPERM" $L1 probe packet-open all
expect "ERR EINVAL" probe vs create dyn -- probe vs ipv4root 0.0.0.0
# Without a lock, nothing changes.
expect "OK 0.0.0.0:8085" probe vs create dyn -- probe bind 0.0.0.0 8085 tcp
echo ok
