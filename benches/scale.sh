#!/usr/bin/env bash
# Many servers at once (issue 12): N busybox servers (default 500) with
# ONBOOT=yes started and stopped by `vservers`, and with them running and
# 1,500 other processes on the host, the viewers' CPU time against procps
# `ps ax` (perf's task-clock, mean of 5 runs). Leaves nothing behind.
# Usage (as root): benches/scale.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
VSBOX=${VSBOX:-$PWD/target/x86_64-unknown-linux-musl/release/vsbox}
[ -x "$VSBOX" ] || cargo build --release -q
command -v perf >/dev/null || { echo "perf is needed (Debian: linux-perf)" >&2; exit 1; }

work=$(mktemp -d /tmp/vsbox-scale.XXXXXX)
export VSBOX_CONFDIR=$work/etc VSBOX_ROOTDIR=$work/vservers VSBOX_RUNDIR=$work/run
sleepers=()
cleanup() {
	"$VSBOX" vservers stop >/dev/null 2>&1 || true
	[ ${#sleepers[@]} -eq 0 ] || kill "${sleepers[@]}" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# One server built, the others its copies (hard links: the bench only
# starts and stops them).
"$VSBOX" vserver s1 build -m busybox >/dev/null
echo "ONBOOT=yes" >>"$work/etc/s1.conf"
for i in $(seq 2 "$N"); do
	cp -al "$work/vservers/s1" "$work/vservers/s$i"
	cp "$work/etc/s1.conf" "$work/etc/s$i.conf"
done

t=$(date +%s%N)
"$VSBOX" vservers start | tail -n1
echo "vservers start, $N servers: $(ms "$t") ms"

for _ in $(seq 1500); do sleep 3600 & sleepers+=($!); done
cpu() { LC_ALL=C perf stat -r 5 -e task-clock "$@" 2>&1 >/dev/null | awk '/task-clock/ { print $1 }'; }
procs=$(ls /proc | grep -c '^[0-9]')
ps=$(cpu ps ax)
echo "with $N contexts and $procs processes: CPU ms, and × ps ax"
printf '%-24s %8.2f ms %6.2f×\n' "ps ax (procps)" "$ps" 1
for t in "vps ax" "vserver-stat" "vtop -b -n 1"; do
	# shellcheck disable=SC2086
	c=$(cpu "$VSBOX" $t)
	awk -v t="$t" -v c="$c" -v p="$ps" 'BEGIN { printf "%-24s %8.2f ms %6.2f×\n", t, c, c / p }'
done
kill "${sleepers[@]}" 2>/dev/null || true
sleepers=()

t=$(date +%s%N)
"$VSBOX" vservers stop | tail -n1
echo "vservers stop, $N servers: $(ms "$t") ms"
left=$( (ls -d /sys/fs/cgroup/*/vsbox /sys/fs/cgroup/vsbox 2>/dev/null || true) | wc -l)
echo "vsbox cgroups left: $left"
