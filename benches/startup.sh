#!/usr/bin/env bash
# Launch cost of a new context, side by side with the peers, as ratios to
# the floor (benches/floor.c: unshare pid/mount/uts/ipc, fork, a fresh
# /proc, exec /bin/true — nothing else) and to
# `unshare -p -m -u -i -f --mount-proc /bin/true`. Wall time and CPU time
# over N runs each, interleaved in rounds so machine noise hits every tool
# alike. With perf (Debian: linux-perf), CPU is perf's task-clock of the
# launcher and every process it started, waited for or not, and wall is
# perf's elapsed time; without it, both come from a bash loop (CPU: the
# loop's children's user+sys, which misses processes nobody waited for,
# and both include bash's own fork per run).
# Usage (as root): benches/startup.sh [N]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300}
ROUNDS=5
VSBOX=${VSBOX:-target/x86_64-unknown-linux-musl/release/vsbox}
[ -x "$VSBOX" ] || cargo build --release -q

FLOOR=$(mktemp /tmp/vsbox-floor.XXXXXX)
trap 'rm -f "$FLOOR"' EXIT
cc -O2 -static -o "$FLOOR" benches/floor.c

# The cgroup v2 hierarchy (pure v2 or hybrid), for the floor's own cgroup.
CG2=$(awk '{ for (i = 1; i <= NF; i++) if ($i == "-") { if ($(i + 1) == "cgroup2") print $5; break } }' /proc/self/mountinfo | head -n1)
# vsbox's filter's length, for the floor's.
FILTER=$(strace -f -e trace=seccomp "$VSBOX" chcontext --silent /bin/true 2>&1 | grep -o 'len=[0-9]*' | head -n1 | cut -d= -f2)
FILTER=${FILTER:-71}

declare -A CMD=(
	[floor]="$FLOOR"
	[+cgroup]="$FLOOR -c $CG2"
	[+filter]="$FLOOR -c $CG2 -s $FILTER"
	[+init]="$FLOOR -c $CG2 -s $FILTER -i"
	[unshare]="unshare -p -m -u -i -f --mount-proc /bin/true"
	[vsbox]="$VSBOX chcontext --silent /bin/true"
	[fakeinit]="$VSBOX chcontext --silent --flag fakeinit /bin/true"
	[secure]="$VSBOX chcontext --silent --secure /bin/true"
	[bwrap]="bwrap --unshare-pid --unshare-ipc --unshare-uts --dev-bind / / --proc /proc /bin/true"
)
ORDER=(floor +cgroup +filter +init unshare vsbox fakeinit secure bwrap)
command -v bwrap >/dev/null || { echo "bwrap not installed (apt-get install bubblewrap): skipped" >&2; ORDER=(floor +cgroup +filter +init unshare vsbox fakeinit secure); }

declare -A WALL CPU
for t in "${ORDER[@]}"; do WALL[$t]=0; CPU[$t]=0; done

# One batch: prints "wall_ns cpu_ns" for n runs of a command.
batch() {
	if command -v perf >/dev/null; then
		local n=$1; shift
		LC_ALL=C perf stat -r "$n" -e task-clock "$@" 2>&1 >/dev/null |
			awk -v n="$n" '/task-clock/ { c = $1 } /seconds time elapsed/ { w = $1 } END { printf "%.0f %.0f\n", w * 1e9 * n, c * 1e6 * n }'
		return
	fi
	batch_loop "$@"
}

batch_loop() {
	local n=$1; shift
	bash -c '
		n=$1; shift
		start=$(date +%s%N)
		for ((i = 0; i < n; i++)); do "$@" >/dev/null; done
		end=$(date +%s%N)
		read -r _ _ cu cs < <(awk "{print \$1, \$2, \$16, \$17}" /proc/$$/stat)
		echo $((end - start)) $(((cu + cs) * 1000000000 / $(getconf CLK_TCK)))
	' batch "$n" "$@"
}

per=$((N / ROUNDS))
for ((r = 0; r < ROUNDS; r++)); do
	for t in "${ORDER[@]}"; do
		read -r w c < <(batch "$per" ${CMD[$t]})
		WALL[$t]=$((WALL[$t] + w))
		CPU[$t]=$((CPU[$t] + c))
	done
done

runs=$((per * ROUNDS))
echo "floor: $FLOOR; +cgroup: a cgroup of its own in $CG2; +filter: a seccomp filter of $FILTER instructions (vsbox's length); +init: an init that forks the command"
printf '%-9s %12s %12s %11s %11s %11s %11s %11s %11s\n' tool "wall/run" "cpu/run" "wall×floor" "cpu×floor" "wall×+init" "cpu×+init" "wall×unsh" "cpu×unsh"
for t in "${ORDER[@]}"; do
	awk -v w="${WALL[$t]}" -v c="${CPU[$t]}" -v fw="${WALL[floor]}" -v fc="${CPU[floor]}" -v iw="${WALL[+init]}" -v ic="${CPU[+init]}" -v bw="${WALL[unshare]}" -v bc="${CPU[unshare]}" -v n="$runs" -v t="$t" \
		'BEGIN { printf "%-9s %10.3f ms %10.3f ms %10.2f× %10.2f× %10.2f× %10.2f× %10.2f× %10.2f×\n", t, w/n/1e6, c/n/1e6, w/fw, (fc ? c/fc : 0), w/iw, (ic ? c/ic : 0), w/bw, (bc ? c/bc : 0) }'
done
size=$(stat -c %s "$VSBOX")
awk -v s="$size" -v f="$VSBOX" 'BEGIN { printf "binary: %s, %d bytes (%.2f MiB)\n", f, s, s / 1048576 }'
ldd "$VSBOX" 2>&1 | sed 's/^[[:space:]]*/ldd: /'  || true
