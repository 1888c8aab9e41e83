#!/usr/bin/env bash
# Every benchmark of issue 12 in one run, each side by side with its
# peers and as ratios: the launch against the floor (benches/floor.c),
# unshare and bwrap; a running server's exec against nsenter, and the
# memory vsbox keeps per server; 500 servers started and stopped, and
# the viewers against procps ps; the binary's size.
# Usage (as root): benches/all.sh   (about two minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
VSBOX=target/x86_64-unknown-linux-musl/release/vsbox
echo "== launch (benches/startup.sh 300)"
bash benches/startup.sh 300
echo
echo "== running servers (benches/vserver.sh 300)"
bash benches/vserver.sh 300
echo
echo "== 500 servers (benches/scale.sh 500)"
bash benches/scale.sh 500
echo
size=$(stat -c %s "$VSBOX")
awk -v s="$size" 'BEGIN { printf "== binary: %d bytes, %.2f MiB (goal 1.5 MiB: %.2f×)\n", s, s / 1048576, s / 1048576 / 1.5 }'
