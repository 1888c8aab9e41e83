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
	for d in bin sbin etc root tests extra kits init ext4.img; do
		[ -e "/$d" ] && cp -a "/$d" /newroot/
	done
	mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run
	export VSTEST_SWITCHED=1
	exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /sys/fs/cgroup
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs tmpfs /tmp
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
}
# PID 1 reaps what is orphaned to it at once, as an installed system's
# init does (a guest's init outlives the `vserver start` that forked it):
# the shell's wait takes any child that ends, not only its job.
run_tests &
wait
echo "VSTEST DONE"
sync
poweroff -f
