#!/usr/bin/env bash
# The kernel harness (kernel/README.md): from a fresh Debian 12 machine,
# builds Debian's linux-source-6.12 with vsbox's patch series
# (kernel/patches/) and the config fragment (kernel/config/vsbox.config),
# packs an initramfs with the static vsbox, busybox and the test programs,
# boots it under qemu (TCG: KVM does not work on these machines), runs
# every kernel/tests/*.sh inside as root (and then every *.sh of
# $VSBOX_KTEST_EXTRA, when set), and judges the serial log.
#
# Prints `PASS NAME` or `FAIL NAME: why` per test and `N passed, M failed`;
# exits 0 only when every test passed and the log has no BUG:, WARNING:
# or Oops. The build is cached in $VSBOX_KBUILD (default
# /var/tmp/vsbox-kbuild) under a key of the source version, the patches
# and the config, so an unchanged kernel is not rebuilt.
#
# Usage (as root): kernel/test.sh [--build-only]
# VSBOX_BZIMAGE=path boots that kernel instead of building one (for
# working on the patches in a tree of one's own).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
KBUILD=${VSBOX_KBUILD:-/var/tmp/vsbox-kbuild}
TIMEOUT=${VSBOX_KTEST_TIMEOUT:-3000}
mkdir -p "$KBUILD"

say() { printf 'kernel/test.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root"

# --- 1. What the build needs: Debian's kernel source and tool chain, and
# qemu from bookworm-backports (bookworm's 7.2 conflicts with the
# qemu-utils 10 these machines carry), through a private APT_CONFIG so the
# system's sources stay as they are.
install_packages() {
	local need=()
	local p
	for p in linux-source-6.12 build-essential flex bison bc libelf-dev libssl-dev cpio busybox-static e2fsprogs iproute2 util-linux btrfs-progs xfsprogs dash; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
	done
	command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86/bookworm-backports
		qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports seabios/bookworm-backports)
	[ ${#need[@]} -eq 0 ] && return 0
	say "installing: ${need[*]}"
	local apt=/tmp/vsbox-apt
	mkdir -p "$apt/lists/partial" "$apt/sources.list.d"
	cp /etc/apt/sources.list.d/*.sources "$apt/sources.list.d/" 2>/dev/null || true
	[ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$apt/sources.list" || : >"$apt/sources.list"
	cat >"$apt/sources.list.d/vsbox-backports.sources" <<-EOF
		Types: deb
		URIs: http://deb.debian.org/debian
		Suites: bookworm-backports
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	cat >"$apt/apt.conf" <<-EOF
		Dir::Etc::SourceList "$apt/sources.list";
		Dir::Etc::SourceParts "$apt/sources.list.d";
		Dir::State::Lists "$apt/lists";
	EOF
	export APT_CONFIG=$apt/apt.conf DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	unset APT_CONFIG
}

# --- 2. The source, patched, configured: one directory per key.
source_tarball() {
	ls /usr/src/linux-source-6.12.tar.xz 2>/dev/null || ls /usr/src/linux-source-6.12*.tar.* | head -1
}

source_version() {
	dpkg-query -W -f='${Version}' linux-source-6.12
}

build_key() {
	{
		source_version
		cat "$here/include/uapi/linux/vserver.h" "$here"/patches/*.patch "$here/config/vsbox.config"
	} | sha256sum | cut -c1-16
}

prepare_tree() {
	local tree=$1
	say "unpacking $(source_tarball) ($(source_version)) into $tree"
	rm -rf "$tree.tmp"
	mkdir -p "$tree.tmp"
	tar -xf "$(source_tarball)" -C "$tree.tmp" --strip-components=1
	# The UAPI header is vsbox's single source of truth: the patches use it
	# as it is in the repository.
	cp "$here/include/uapi/linux/vserver.h" "$tree.tmp/include/uapi/linux/vserver.h"
	local p
	for p in "$here"/patches/*.patch; do
		say "applying $(basename "$p")"
		if ! (cd "$tree.tmp" && patch -p1 -F3 -s --no-backup-if-mismatch <"$p"); then
			die "$(basename "$p") does not apply to linux-source-6.12 $(source_version): a hunk was rejected (see the .rej files in $tree.tmp)"
		fi
	done
	(
		cd "$tree.tmp"
		make -s ARCH=x86_64 tinyconfig >/dev/null
		# Twice, so that children of options the first pass enables stay on.
		for _ in 1 2; do
			grep -E '^CONFIG_' "$here/config/vsbox.config" | while IFS='=' read -r k v; do
				case $v in
				y) scripts/config --enable "${k#CONFIG_}" ;;
				n) scripts/config --disable "${k#CONFIG_}" ;;
				\"*) scripts/config --set-str "${k#CONFIG_}" "$(eval echo "$v")" ;;
				*) scripts/config --set-val "${k#CONFIG_}" "$v" ;;
				esac
			done
			make -s ARCH=x86_64 olddefconfig >/dev/null
		done
		local missing=0
		while IFS='=' read -r k v; do
			if ! grep -qx "$k=$v" .config; then
				say "config: $k=$v did not stick"
				missing=1
			fi
		done < <(grep -E '^CONFIG_' "$here/config/vsbox.config")
		[ $missing = 0 ] || exit 1
	) || die "configuring the kernel failed"
	mv "$tree.tmp" "$tree"
}

build_kernel() {
	local key tree
	key=$(build_key)
	tree=$KBUILD/linux-$key
	BZIMAGE=$tree/arch/x86/boot/bzImage
	say "linux-source-6.12 $(source_version), $(ls "$here"/patches/*.patch | wc -l) patches, build key $key"
	if [ -f "$tree/.vsbox-built" ]; then
		say "kernel $key is built already ($tree)"
		return 0
	fi
	[ -d "$tree" ] || prepare_tree "$tree"
	say "building the kernel in $tree (a few minutes on 2 cores)"
	local t0=$SECONDS
	(cd "$tree" && nice -n 19 make -s ARCH=x86_64 -j"$(nproc)" bzImage >"$tree/build.log" 2>&1) ||
		{ tail -40 "$tree/build.log" >&2; die "the kernel build failed (log: $tree/build.log)"; }
	touch "$tree/.vsbox-built"
	say "built in $((SECONDS - t0)) s: $(cd "$tree" && make -s ARCH=x86_64 kernelrelease)"
	# Old builds go: each takes about 2 GB.
	find "$KBUILD" -maxdepth 1 -name 'linux-*' ! -name "linux-$key" -exec rm -rf {} + 2>/dev/null || true
}

# --- 3. The initramfs: busybox, vsbox, the probe and the tests.
build_initramfs() {
	local root=$KBUILD/initramfs
	rm -rf "$root"
	mkdir -p "$root"/{bin,sbin,proc,sys,dev,tmp,run,etc,tests,extra,root}
	cp /bin/busybox "$root/bin/busybox"
	local a
	for a in $("$root/bin/busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	local rel=$top/target/x86_64-unknown-linux-musl/release
	cp "$rel/vsbox" "$root/bin/vsbox"
	# Relative links: the tree is / inside.
	for a in $("$rel/vsbox" --list | awk '{print $1}'); do
		ln -sf vsbox "$root/bin/$a"
	done
	cp "$rel/vsbox-probe" "$root/bin/probe"
	cp "$here"/tests/*.sh "$root/tests/"
	if [ -n "${VSBOX_KTEST_EXTRA:-}" ]; then
		cp "$VSBOX_KTEST_EXTRA"/*.sh "$root/extra/" 2>/dev/null || true
	fi
	# An ext4 file system for the tests that need one (iunlink).
	truncate -s 64M "$root/ext4.img"
	mkfs.ext4 -q -F "$root/ext4.img"
	dpkg_kit "$root/kits"
	pack_suite "$root"
	cp "$here/init.sh" "$root/init"
	chmod 755 "$root/init"
	# What a host has in /etc (a copy-built server copies it).
	echo "nameserver 10.0.2.3" >"$root/etc/resolv.conf"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
	echo vsbox-ktest >"$root/etc/hostname"
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$KBUILD/initramfs.cpio.gz"
}

# The integration suite of tests/, so both kernels pass the same tests: the
# executables `cargo test --no-run` builds (static, musl), each at its own
# absolute path, because they find the binary under test and their
# scratch directory by the paths compiled into them (CARGO_BIN_EXE_*,
# CARGO_TARGET_TMPDIR). Without debug information: a tenth of the size.
# /suite/list names them, `NAME PATH` a line, in the order init.sh runs
# them (NAME: the crate's, numbered when two share it: the library's and
# the binary's unit tests).
pack_suite() {
	local root=$1 exe json name
	mkdir -p "$root/suite"
	: >"$root/suite/list"
	json=$(cd "$top" && cargo test --no-run --message-format=json) ||
		die "cargo test --no-run failed"
	for exe in $(printf '%s\n' "$json" | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | sort -u); do
		mkdir -p "$root$(dirname "$exe")"
		objcopy --strip-debug "$exe" "$root$exe"
		case $exe in
		*/deps/*)
			name=$(basename "$exe" | sed 's/-[0-9a-f]*$//')
			while grep -q "^$name " "$root/suite/list"; do name=$name+; done
			echo "$name $exe" >>"$root/suite/list"
			;;
		esac
	done
	[ -s "$root/suite/list" ] || die "cargo test --no-run named no test executables"
	# The tools they run whose busybox versions lack an option they use
	# (ip's nodad, losetup's --show, mount's --make-rprivate) or that
	# busybox lacks (nohup, mkfs.btrfs, mkfs.ext4, mkfs.xfs), and a shell that runs the ip of
	# PATH (busybox's sh prefers its own applets): the host's, with the
	# libraries they load, in /usr/sbin, which init.sh puts first in the
	# suite's PATH.
	local t lib
	mkdir -p "$root/usr/sbin" "$root/usr/bin"
	for t in ip losetup mount umount unshare mkfs.btrfs mkfs.ext4 mkfs.xfs nohup dash; do
		t=$(command -v "$t") || die "no $t here (iproute2, util-linux, btrfs-progs, e2fsprogs, xfsprogs, coreutils, dash)"
		cp -L "$t" "$root/usr/sbin/"
		for lib in $(ldd "$t" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
			cp -L --parents "$lib" "$root"
		done
	done
	ln -s dash "$root/usr/sbin/sh"
	# Their scratch directory, and what tests/cli.rs reads of the sources.
	mkdir -p "$root$top/target/tmp"
	cp -r "$top/README.md" "$top/man" "$top/src" "$root$top/"
	cp "$here/suite-skip" "$root/suite/skip"
}

# For 65-vrpm.sh: Debian's dpkg, dpkg-deb, dpkg-split and GNU tar with the libraries they load
# (in kit/dpkg, laid out as in a server's tree), a stand-in ldconfig (dpkg
# wants one in PATH), and two versions of a small package.
dpkg_kit() {
	local kits=$1 tree=$1/dpkg b lib v d
	mkdir -p "$tree/sbin" "$tree/var/lib/dpkg/info" "$tree/var/lib/dpkg/updates" "$tree/var/lib/dpkg/triggers"
	: >"$tree/var/lib/dpkg/status"
	: >"$tree/var/lib/dpkg/available"
	for b in dpkg dpkg-deb dpkg-split tar; do
		b=$(command -v "$b") || die "no $b here"
		cp -L --parents "$b" "$tree"
		for lib in $(ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
			cp -L --parents "$lib" "$tree"
		done
	done
	# dpkg-deb runs GNU tar: in /bin too, wherever PATH looks first.
	mkdir -p "$tree/bin"
	cp -L "$(command -v tar)" "$tree/bin/tar"
	printf '#!/bin/sh\nexit 0\n' >"$tree/sbin/ldconfig"
	chmod 755 "$tree/sbin/ldconfig"
	for v in 1.0 2.0; do
		d=$(mktemp -d)
		mkdir -p "$d/DEBIAN" "$d/usr/share/vsbox-test"
		printf 'Package: vsbox-test\nVersion: %s\nArchitecture: all\nMaintainer: vsbox <vsbox@localhost>\nDescription: a package to update in a unified server\n' "$v" >"$d/DEBIAN/control"
		seq 1 20000 | sed "s/^/v$v /" >"$d/usr/share/vsbox-test/data"
		seq 1 20000 >"$d/usr/share/vsbox-test/same"
		dpkg-deb --root-owner-group -Zgzip --build "$d" "$kits/vsbox-test_$v.deb" >/dev/null || die "dpkg-deb --build failed"
		rm -rf "$d"
	done
}

# --- 4. Boot and judge.
boot() {
	local log=$KBUILD/serial.log
	say "booting under qemu (TCG)"
	local t0=$SECONDS
	rm -f "$log" "$log.txt"
	timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 3072 -smp 2 -nographic -no-reboot \
		-kernel "$BZIMAGE" -initrd "$KBUILD/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1 loglevel=5" -serial "file:$log" -monitor none -display none \
		>/dev/null 2>&1 || say "qemu ended with status $?"
	say "booted, tested and powered off in $((SECONDS - t0)) s"
	tr -d '\r\000' <"$log" >"$log.txt"
	judge "$log.txt"
}

judge() {
	local log=$1 passed=0 failed=0 line
	while IFS= read -r line; do
		case $line in
		"VSTEST PASS "*) echo "PASS ${line#VSTEST PASS }"; passed=$((passed + 1)) ;;
		"VSTEST FAIL "*) echo "FAIL ${line#VSTEST FAIL }"; failed=$((failed + 1)) ;;
		esac
	done <"$log"
	local bad='BUG:|WARNING:|Oops|Kernel panic|rcu: INFO|soft lockup|hung_task|blocked for more than'
	if grep -aqE "$bad" "$log"; then
		echo "FAIL kernel: $(grep -a -m1 -oE "($bad).*" "$log")"
		failed=$((failed + 1))
	fi
	if ! grep -q '^VSTEST DONE' "$log"; then
		echo "FAIL harness: the run did not finish (serial log: $log)"
		failed=$((failed + 1))
	fi
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
}

install_packages
# The vsbox under test is the tree's own (a no-op when it is built).
(cd "$top" && cargo build --release -q) || die "cargo build --release failed"
if [ -n "${VSBOX_BZIMAGE:-}" ]; then
	BZIMAGE=$VSBOX_BZIMAGE
else
	build_kernel
fi
[ "${1:-}" = --build-only ] && exit 0
build_initramfs
boot
