#!/usr/bin/env bash
# Running guests, measured: `vserver NAME exec true` vs nsenter into the
# same guest, the time from `vserver NAME start` to its web server
# answering, and the memory vsbox keeps per running guest.
# Usage (as root; needs busybox-static): benches/vserver.sh [N]  (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
VSBOX=$(realpath "${VSBOX:-target/x86_64-unknown-linux-musl/release/vsbox}")
[ -x "$VSBOX" ] || cargo build --release -q
work=$(mktemp -d /tmp/vsbox-bench.XXXXXX)
export VSBOX_CONFDIR=$work/etc VSBOX_ROOTDIR=$work/vservers VSBOX_RUNDIR=$work/run
mkdir -p "$VSBOX_CONFDIR"
cleanup() {
	for ((i = 1; i <= 20; i++)); do "$VSBOX" vserver bench$i stop >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

for i in 1 2; do
	"$VSBOX" vserver bench$i build -m busybox >/dev/null
	mkdir -p "$work/vservers/bench$i/var/www"
	echo "bench$i" > "$work/vservers/bench$i/var/www/index.html"
	printf '#!/bin/sh\n[ "$1" = start ] && httpd -p 80 -h /var/www\nexit 0\n' > "$work/vservers/bench$i/etc/init.d/S50httpd"
	chmod 755 "$work/vservers/bench$i/etc/init.d/S50httpd"
	echo "IPROOT=127.77.0.$i" > "$VSBOX_CONFDIR/bench$i.conf"
done

# Start to answering.
ms() { date +%s%N; }
t0=$(ms)
"$VSBOX" vserver bench1 start >/dev/null
t1=$(ms)
until exec 3<>/dev/tcp/127.77.0.1/80 2>/dev/null; do sleep 0.001; done
exec 3>&-
t2=$(ms)
"$VSBOX" vserver bench2 start >/dev/null
printf 'start returned after %.1f ms; the guest answered HTTP after %.1f ms\n' "$(echo "($t1-$t0)/1000000" | bc -l)" "$(echo "($t2-$t0)/1000000" | bc -l)"

# exec vs nsenter into the same running guest.
# A guest's init: the vsbox-init in its context's cgroup.
init_of() {
	local xid p
	xid=$("$VSBOX" vserver "$1" status | sed -n 's/^context: //p')
	for p in $(pgrep -x vsbox-init); do
		if grep -q "^0::.*/vsbox/$xid\$" /proc/"$p"/cgroup; then echo "$p"; fi
	done
}
init=$(init_of bench1)
# The guest's own user namespace, when it has one, is joined by both.
userns=
[ "$(readlink /proc/"$init"/ns/user)" = "$(readlink /proc/self/ns/user)" ] || userns=-U
# The join floor (benches/floor.c -j): the same namespaces joined, uid 0
# there, exec; and with what vsbox must add: the context's cgroup joined
# at clone time, a filter of vsbox's length, a relay process.
FLOOR=$work/floor
cc -O2 -static -o "$FLOOR" benches/floor.c
xid=$("$VSBOX" vserver bench1 status | sed -n 's/^context: //p')
CG2=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -n1)
cgdir=$(find "$CG2/vsbox" -maxdepth 3 -type d -name "$xid" | head -n1)
FILTER=$(strace -f -e trace=seccomp "$VSBOX" vserver bench1 exec true 2>&1 | grep -o 'len=[0-9]*' | head -n1 | cut -d= -f2)
FILTER=${FILTER:-201}
loop() { local s e; s=$(ms); for ((i = 0; i < N; i++)); do "$@" >/dev/null; done; e=$(ms); echo $(((e - s) / N)); }
for r in 1 2 3; do
	a=$(loop "$VSBOX" vserver bench1 exec true)
	b=$(loop nsenter -t "$init" $userns -p -m -u -i -C -r -w true)
	c=$(loop "$FLOOR" -j "$init")
	d=$(loop "$FLOOR" -j "$init" -c "$cgdir" -s "$FILTER" -i)
	A=$((${A:-0} + a)); B=$((${B:-0} + b)); C=$((${C:-0} + c)); D=$((${D:-0} + d))
done
printf 'vserver exec true: %.3f ms   nsenter: %.3f ms   ratio %.2f×\n' "$(echo "$A/3/1000000" | bc -l)" "$(echo "$B/3/1000000" | bc -l)" "$(echo "$A/$B" | bc -l)"
printf 'join floor: %.3f ms (%.2f× nsenter); +cgroup, filter of %s, relay: %.3f ms (%.2f× nsenter); vserver exec %.2f× that\n' \
	"$(echo "$C/3/1000000" | bc -l)" "$(echo "$C/$B" | bc -l)" "$FILTER" "$(echo "$D/3/1000000" | bc -l)" "$(echo "$D/$B" | bc -l)" "$(echo "$A/$D" | bc -l)"

# Unix sockets made in a running guest (each by its supervisor, in the
# guest's own namespace of abstract names) vs on the host.
PROBE=$(dirname "$VSBOX")/vsbox-probe
if [ -x "$PROBE" ]; then
	cp "$PROBE" "$work/vservers/bench1/bin/probe"
	h=$("$PROBE" unix-rate 20000 | sed -n 's/^OK rate=//p')
	g=$("$VSBOX" vserver bench1 exec /bin/probe unix-rate 20000 | sed -n 's/^OK rate=//p')
	printf 'unix sockets a second: host %s, in a running guest %s, ratio %.2f×\n' "$h" "$g" "$(echo "$g/$h" | bc -l)"
fi

# What vsbox keeps per running guest, with 20 running: the guest's PID 1,
# and a 20th of the one vsbox-watch on the host that serves them all.
# PSS (smaps_rollup): the binary's shared pages divided among their users.
for ((i = 3; i <= 20; i++)); do
	"$VSBOX" vserver bench$i build -m busybox >/dev/null
	"$VSBOX" vserver bench$i start >/dev/null
done
pss() { awk '/^Pss:/{print $2}' /proc/"$1"/smaps_rollup; }
total=0
for ((i = 1; i <= 20; i++)); do total=$((total + $(pss "$(init_of bench$i)"))); done
watcher=$(cat "$VSBOX_RUNDIR/vsbox-watch.pid")
w=$(pss "$watcher")
printf 'with 20 guests: guest init PSS %d KiB each (average); vsbox-watch PSS %d KiB for all (%.1f KiB a guest); host processes per guest: %s\n' \
	"$((total / 20))" "$w" "$(echo "$w/20" | bc -l)" "$(echo "$(pgrep -xc vsbox-watch)/20" | bc -l)"
# The same after a reboot of half of them (each restarted from a clean-up
# process the watcher forked).
for ((i = 1; i <= 10; i++)); do "$VSBOX" vserver bench$i exec /sbin/vreboot >/dev/null 2>&1 || true; done
for ((i = 1; i <= 10; i++)); do
	for ((t = 0; t < 100; t++)); do [ -n "$(init_of bench$i)" ] && "$VSBOX" vserver bench$i running >/dev/null 2>&1 && break; sleep 0.05; done
done
sleep 0.5
total=0
for ((i = 1; i <= 20; i++)); do total=$((total + $(pss "$(init_of bench$i)"))); done
printf 'after 10 of them rebooted: guest init PSS %d KiB each (average)\n' "$((total / 20))"
