#!/usr/bin/env bash
# vps and vserver-stat at scale: 5 busybox servers running 1000 processes
# each (5000+ in all), `vps ax` against procps `ps ax`; then vserver-stat
# with 100 running servers. As root; needs busybox-static and procps.
# Usage: benches/admin.sh [RUNS]  (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-20}
VSBOX=$(realpath "${VSBOX:-target/x86_64-unknown-linux-musl/release/vsbox}")
[ -x "$VSBOX" ] || cargo build --release -q
work=$(mktemp -d /tmp/vsbox-bench.XXXXXX)
export VSBOX_CONFDIR=$work/etc VSBOX_ROOTDIR=$work/vservers VSBOX_RUNDIR=$work/run
mkdir -p "$VSBOX_CONFDIR"
started=()
cleanup() {
	for g in "${started[@]}"; do "$VSBOX" vserver "$g" stop >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

for i in 1 2 3 4 5; do
	g=many$i
	"$VSBOX" vserver $g build -m busybox >/dev/null
	printf '#!/bin/sh\n[ "$1" = start ] && for i in $(seq 1000); do sleep 3600 & done\nexit 0\n' > "$work/vservers/$g/etc/init.d/S50many"
	chmod 755 "$work/vservers/$g/etc/init.d/S50many"
	"$VSBOX" vserver $g start >/dev/null
	started+=($g)
done
total=$(ls -d /proc/[0-9]* | wc -l)
time_ms() { local s e; s=$(date +%s%N); for ((r = 0; r < RUNS; r++)); do "$@" >/dev/null; done; e=$(date +%s%N); echo $(((e - s) / RUNS / 1000)); }
a=$(time_ms "$VSBOX" vps ax)
b=$(time_ms ps ax)
printf '%d processes: vps ax %.1f ms, ps ax %.1f ms: %.2f×\n' "$total" "$(echo "$a/1000" | bc -l)" "$(echo "$b/1000" | bc -l)" "$(echo "$a/$b" | bc -l)"
for g in "${started[@]}"; do "$VSBOX" vserver "$g" stop >/dev/null; done
started=()

for i in $(seq 1 100); do
	"$VSBOX" vserver g$i build -m skeleton >/dev/null
	"$VSBOX" vserver g$i start >/dev/null
	started+=(g$i)
done
c=$(time_ms "$VSBOX" vserver-stat)
printf 'vserver-stat with %d running servers: %.1f ms\n' "$("$VSBOX" vserver-stat | tail -n +2 | wc -l)" "$(echo "$c/1000" | bc -l)"
