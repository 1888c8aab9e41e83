#!/usr/bin/env bash
# What the address lock costs a TCP connection: the rate of connect +
# accept + close on loopback for a process under `chbind` (its own address;
# and its own 127.0.0.1, which also looks the listener up) against the same
# unbound, as ratios. Rounds of N connections each, interleaved so machine
# noise hits every case alike.
# Usage (as root): [BASE=other/vsbox] benches/netlock.sh [N] [ROUNDS]   (default 10000, 15)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
ROUNDS=${2:-15}
VSBOX=$(realpath "${VSBOX:-target/x86_64-unknown-linux-musl/release/vsbox}")
PROBE=$(realpath "${PROBE:-target/x86_64-unknown-linux-musl/release/vsbox-probe}")
[ -x "$VSBOX" ] && [ -x "$PROBE" ] || cargo build --release -q
IP=127.77.1.9

declare -A CMD=(
	[unbound]="$PROBE tcp-rate $IP $N"
	[chbind]="$VSBOX chbind --silent --ip $IP -- $PROBE tcp-rate $IP $N"
	[lback]="$VSBOX chbind --silent --ip $IP -- $PROBE tcp-rate 127.0.0.1 $N"
)
ORDER=(unbound chbind lback)
# BASE=path/to/another/vsbox adds its chbind, e.g. a build before a change.
if [ -n "${BASE:-}" ]; then
	CMD[base]="$(realpath "$BASE") chbind --silent --ip $IP -- $PROBE tcp-rate $IP $N"
	ORDER+=(base)
fi
# Per round, each case's rate over the unbound one; the median of those
# ratios (and their range) is what is reported.
declare -A RATIOS RATES
for ((r = 0; r < ROUNDS; r++)); do
	declare -A rate=()
	for t in "${ORDER[@]}"; do
		rate[$t]=$(${CMD[$t]} | awk '/^OK/ { print $2 }')
		[ -n "${rate[$t]}" ] || { echo "$t: no rate" >&2; exit 1; }
		RATES[$t]+="${rate[$t]} "
	done
	for t in "${ORDER[@]}"; do
		RATIOS[$t]+="$(echo "${rate[$t]} / ${rate[unbound]}" | bc -l) "
	done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f (%.3f-%.3f)", m, v[1], v[NR] }'; }
printf '%-8s %-22s %s\n' case 'median conn/s (range)' 'median ratio (range)'
for t in "${ORDER[@]}"; do
	printf '%-8s %-22s %s\n' "$t" "$(echo "${RATES[$t]}" | median | sed 's/\.000//g')" "$(echo "${RATIOS[$t]}" | median)"
done
