#!/bin/sh
# /init of the test initramfs (kernel/test.sh): mounts the basics, runs
# every /tests/*.sh and then /extra/*.sh as root, each with a timeout, and
# reports `VSTEST PASS NAME` or `VSTEST FAIL NAME: why` on the console,
# then `VSTEST DONE`, and powers off.
export PATH=/bin:/sbin
# The initramfs is the rootfs, which pivot_root(2) cannot leave (EINVAL),
# and vsbox's guests pivot into their trees: first move everything to a
# tmpfs and make that the root, as an installed system's initramfs does.
if [ -z "$VSTEST_SWITCHED" ]; then
	mkdir -p /newroot
	mount -t tmpfs -o size=80% tmpfs /newroot
	# Everything, /tmp included: the suite's executables live at their
	# build paths, which may be under /tmp (a CI clone).
	for d in /*; do
		case $d in /proc | /sys | /dev | /newroot) continue ;; esac
		cp -a "$d" /newroot/
	done
	mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run
	chmod 1777 /newroot/tmp
	export VSTEST_SWITCHED=1
	exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
echo "VSTEST kernel $(uname -r) $(cat /proc/version)"
run_tests() {
	for t in /tests/[0-9]*.sh /extra/*.sh; do
		[ -f "$t" ] || continue
		name=${t#/}
		name=${name%.sh}
		out=/tmp/$(basename "$t").out
		if timeout 120 sh "$t" </dev/null >"$out" 2>&1; then
			echo "VSTEST PASS $name"
		else
			echo "VSTEST FAIL $name: $(tail -n 3 "$out" | tr '\n' ' ')"
			sed 's/^/  | /' "$out"
		fi
	done
	run_suite
}
# The integration suite of tests/ (kernel/test.sh packs it): each test
# executable as one entry, skipping what kernel/suite-skip names.
run_suite() {
	[ -f /suite/list ] || return 0
	skips=$(sed 's/#.*//' /suite/skip | awk 'NF { printf " --skip %s", $1 }')
	while read -r name exe; do
		name=suite/$name
		out=/tmp/$(basename "$exe").out
		# shellcheck disable=SC2086
		if PATH=/usr/sbin:$PATH timeout 1800 "$exe" --exact $skips --test-threads=2 </dev/null >"$out" 2>&1; then
			echo "VSTEST PASS $name: $(grep '^test result:' "$out" | tail -1)"
		else
			echo "VSTEST FAIL $name: $(grep -E '^test .* FAILED$' "$out" | awk '{ print $2 }' | tr '\n' ' ')$(tail -n 1 "$out")"
			sed 's/^/  | /' "$out"
		fi
	done </suite/list
}
# PID 1 reaps what is orphaned to it at once, as an installed system's
# init does (a guest's init outlives the `vserver start` that forked it):
# the shell's wait takes any child that ends, not only its job.
run_tests &
wait
echo "VSTEST DONE"
sync
poweroff -f
