#!/usr/bin/env bash
# The cost of resource limits (vserver.conf(5)): `vserver start` and
# `vserver NAME exec true` for a busybox server without limits and one
# with every limit set (MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT, CPU_LIMIT,
# CPUSET, CGROUP), side by side, and sysinfo(2) inside a server (answered
# by its supervisor) against on the host.
# Usage (as root; needs busybox-static): benches/limits.sh [N]  (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
VSBOX=$(realpath "${VSBOX:-target/x86_64-unknown-linux-musl/release/vsbox}")
[ -x "$VSBOX" ] || cargo build --release -q
PROBE=$(realpath target/x86_64-unknown-linux-musl/release/vsbox-probe)
[ -x "$PROBE" ] || cargo build --release -q --bin vsbox-probe
work=$(mktemp -d /tmp/vsbox-bench.XXXXXX)
export VSBOX_CONFDIR=$work/etc VSBOX_ROOTDIR=$work/vservers VSBOX_RUNDIR=$work/run
mkdir -p "$VSBOX_CONFDIR"
cleanup() {
	for g in free limited; do "$VSBOX" vserver $g stop >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT
for g in free limited; do
	"$VSBOX" vserver $g build -m busybox >/dev/null
	cp "$PROBE" "$work/vservers/$g/bin/probe"
done
cat >"$VSBOX_CONFDIR/limited.conf" <<-EOC
	MEM_LIMIT=512M
	SWAP_LIMIT=128M
	CPU_WEIGHT=200
	CPU_LIMIT=2
	CPUSET=0-$(($(nproc) - 1))
	CGROUP="pids.max=1000"
EOC
ms() { date +%s%N; }
mean() { awk '{s += $1} END {printf "%.2f", s / NR / 1e6}'; }
# start + stop, R times each, alternating.
R=10
for ((r = 0; r < R; r++)); do
	for g in free limited; do
		t0=$(ms)
		"$VSBOX" vserver $g start >/dev/null
		echo $(($(ms) - t0)) >>"$work/start.$g"
		"$VSBOX" vserver $g stop >/dev/null
	done
done
for g in free limited; do "$VSBOX" vserver $g start >/dev/null; done
loop() { local s; s=$(ms); for ((i = 0; i < N; i++)); do "$VSBOX" vserver "$1" exec true >/dev/null; done; echo $((($(ms) - s) / N)); }
for r in 1 2 3; do
	for g in free limited; do loop $g >>"$work/exec.$g"; done
done
sf=$(mean <"$work/start.free"); sl=$(mean <"$work/start.limited")
ef=$(mean <"$work/exec.free"); el=$(mean <"$work/exec.limited")
printf 'vserver start: %s ms without limits, %s ms with all, ratio %.2f×\n' "$sf" "$sl" "$(echo "$sl/$sf" | bc -l)"
printf 'vserver exec true: %s ms without limits, %s ms with all, ratio %.2f×\n' "$ef" "$el" "$(echo "$el/$ef" | bc -l)"
h=$("$PROBE" sysinfo-rate 20000 | sed -n 's/^OK ns=//p')
i=$("$VSBOX" vserver limited exec /bin/probe sysinfo-rate 20000 | sed -n 's/^OK ns=//p')
printf 'sysinfo(2): %s ns on the host, %s ns in a server (its supervisor answers), ratio %.0f×\n' "$h" "$i" "$(echo "$i/$h" | bc -l)"
