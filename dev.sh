#!/bin/bash
# dmrepl developer entry point: the two Quick start commands of README.md.
#
#   ./dev.sh demo   install what is needed, build, and run the main job in
#                   the test VM (a real kernel with device-mapper)
#   ./dev.sh test   install, build, and run the whole suite: unit tests,
#                   unit tests again under ASan+UBSan, make distcheck, the
#                   fuzz targets briefly, then the VM integration tests;
#                   ends with one line "N passed, N failed, N skipped"
#   ./dev.sh deps   only install the Debian packages
#   ./dev.sh build  only build (into build/)
#
# Everything generated goes under build/ (git-ignored): the build tree,
# the ASan build, the kernel and initramfs cache, the test results.
set -euo pipefail

top=$(cd "$(dirname "$0")" && pwd)
build=${DMREPL_BUILD_DIR:-$top/build}
jobs=$(nproc 2>/dev/null || echo 2)
export DMREPL_CACHE_DIR=${DMREPL_CACHE_DIR:-$build/cache}

# Build, test and VM packages, all from Debian's archive.
packages=(
	autoconf automake libtool pkg-config make gcc libc6-dev
	libdevmapper-dev liburing-dev libaio-dev libcunit1-dev libjson-c-dev libxxhash-dev xxhash
	libzstd-dev libinih-dev dropbear-bin
	dmsetup thin-provisioning-tools lvm2
	qemu-system-x86 busybox-static cpio kmod util-linux xz-utils
	debootstrap e2fsprogs
	clang libclang-rt-14-dev
	groff-base tmux systemd udev
	python3 python3-jsonschema
)

log() { printf '\n=== %s\n' "$*"; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "installing packages needs root: run as root or install sudo"
	fi
}

missing_packages() {
	local p
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed$' || echo "$p"
	done
}

do_deps() {
	local missing
	missing=$(missing_packages)
	[ -z "$missing" ] && return 0
	log "installing: $(echo $missing)"
	as_root apt-get update -qq
	# shellcheck disable=SC2086
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $missing
}

# configure_tree DIR [configure options...]
configure_tree() {
	local dir=$1
	shift
	[ -x "$top/configure" ] || (cd "$top" && ./autogen.sh)
	mkdir -p "$dir"
	if [ ! -f "$dir/Makefile" ] || [ "$top/configure" -nt "$dir/Makefile" ]; then
		(cd "$dir" && "$top/configure" -q --enable-werror "$@")
	fi
}

do_build() {
	log "building in $build"
	configure_tree "$build"
	make -C "$build" -s -j"$jobs"
}

# The main job: in the test VM, LVM snapshots of a volume being written
# to, replicated by name (full, incremental, over ssh) and verified.
do_demo() {
	do_deps
	do_build
	local out=$build/test-results/demo rc=0
	log "running the demo in the test VM (real kernel, device-mapper)"
	"$top/tests/vm/run" --mode vm --out "$out" --bin "$build/tools/dmrepl" \
		"$top/tests/integration/demo.sh" || rc=$?
	if [ "$rc" -eq 0 ]; then
		log "what the demo did (from $out/demo.log)"
		grep -v '^+ ' "$out/demo.log"
	fi
	return "$rc"
}

# Results of each stage, as "name passed failed skipped".
results=()

# automake_counts DIR: read PASS/FAIL/... from DIR/test-suite.log.
automake_counts() {
	local log=$1/test-suite.log pass fail skip err xpass
	pass=$(sed -n 's/^# PASS: *//p' "$log")
	fail=$(sed -n 's/^# FAIL: *//p' "$log")
	xpass=$(sed -n 's/^# XPASS: *//p' "$log")
	err=$(sed -n 's/^# ERROR: *//p' "$log")
	skip=$(sed -n 's/^# SKIP: *//p' "$log")
	echo "${pass:-0} $(( ${fail:-0} + ${xpass:-0} + ${err:-0} )) ${skip:-0}"
}

# stage NAME COMMAND...: run one stage, record its counts, keep going.
# The command leaves its counts in $stage_counts ("passed failed skipped").
stage() {
	local name=$1 t0=$SECONDS
	shift
	log "$name"
	stage_counts=""
	if "$@"; then
		[ -n "$stage_counts" ] || stage_counts="1 0 0"
	else
		[ -n "$stage_counts" ] || stage_counts="0 1 0"
		# a stage that failed must count as failed even if its log says not
		set -- $stage_counts
		[ "$2" -gt 0 ] || stage_counts="$1 1 $3"
	fi
	results+=("$name $stage_counts $((SECONDS - t0))")
}

unit_tests() {
	local dir=$1 rc=0
	make -C "$dir" -s -j"$jobs" check || rc=$?
	if [ -f "$dir/test-suite.log" ]; then
		stage_counts=$(automake_counts "$dir")
		sed -n '/^FAIL\|^ERROR/,$p' "$dir/test-suite.log" | head -100
	fi
	return $rc
}

sanitizer_tests() {
	configure_tree "$build/asan" --enable-asan --enable-ubsan
	make -C "$build/asan" -s -j"$jobs"
	unit_tests "$build/asan"
}

# The tarball: it builds (with -Werror), installs, uninstalls and cleans
# out of its source tree, and the tests that read the source tree's files
# (fixtures, man pages, schemas, the completion, the symbol list) pass
# there. The whole suite ran in the stages before; here it would add two
# minutes to CI and find nothing those did not.
DISTCHECK_TESTS="tests/unit/test-metadata tests/tool/man.sh tests/tool/abi.sh \
tests/tool/cli-schema.sh tests/tool/completion.sh tests/tool/cli-units.sh"
distcheck() {
	make -C "$build" -s distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
		TESTS="$DISTCHECK_TESTS" \
		>"$build/distcheck.log" 2>&1 || { tail -40 "$build/distcheck.log"; return 1; }
	tail -4 "$build/distcheck.log"
}

fuzz_tests() {
	local runner n=0 failed=0
	for runner in "$top"/tests/fuzz/run*.sh; do
		[ -x "$runner" ] || continue
		n=$((n + 1))
		FUZZ_OUT="$build/fuzz" "$runner" "${DMREPL_FUZZ_SECONDS:-30}" ||
			failed=$((failed + 1))
	done
	stage_counts="$((n - failed)) $failed 0"
	[ "$failed" -eq 0 ]
}

vm_tests() {
	local out=$build/test-results/vm rc=0
	make -C "$build" -s check-vm VM_OUT="$out" || rc=$?
	if [ -f "$out/summary" ]; then
		# shellcheck disable=SC1091
		. "$out/summary"
		stage_counts="${passed:-0} ${failed:-0} ${skipped:-0}"
	fi
	return $rc
}

# The --json outputs the VM tests logged ("dmt-json" lines), against the
# JSON Schemas of doc/schema.
vm_json() {
	"$top/tests/vm/check-json.sh" "$build/test-results/vm"
}

# vm_summary DIR: stage counts from tests/vm/run's DIR/summary.
vm_summary() {
	local passed failed skipped
	if [ -f "$1/summary" ]; then
		# shellcheck disable=SC1091
		. "$1/summary"
		stage_counts="${passed:-0} ${failed:-0} ${skipped:-0}"
	fi
}

# The Debian 12 guest with systemd, udev, lvm2 and sshd (tests/vm/mkrootfs.sh;
# the image is built once and cached in build/cache/rootfs): its smoke test,
# on the 6.12 kernel.
vm_rootfs_tests() {
	local out=$build/test-results/rootfs-6.12 rc=0
	if [ -n "${rootfs_build:-}" ]; then
		wait "$rootfs_build" || { echo "building the rootfs image failed:"; tail -n 30 "$build/mkrootfs.log"; }
	fi
	make -C "$build" -s check-vm-rootfs VM_ROOTFS_OUT="$out" || rc=$?
	vm_summary "$out"
	return $rc
}

# The tests of device-mapper behaviour again, on Debian 12's 6.12 kernel.
# Meanwhile the rootfs image builds (if it is not cached): debootstrap
# mostly keeps one core busy, and the VM's shell tests mostly leave one idle.
vm_612_tests() {
	local out=$build/test-results/vm-6.12 rc=0
	nice -n 10 "$top/tests/vm/mkrootfs.sh" > "$build/mkrootfs.log" 2>&1 &
	rootfs_build=$!
	make -C "$build" -s check-vm-6.12 VM_612_OUT="$out" || rc=$?
	vm_summary "$out"
	return $rc
}

harness_selftest() {
	"$top/tests/vm/selftest.sh"
}

do_test() {
	do_deps
	do_build
	stage "unit tests" unit_tests "$build"
	stage "unit tests under ASan+UBSan" sanitizer_tests
	stage "make distcheck" distcheck
	stage "fuzz targets" fuzz_tests
	stage "VM harness self-test" harness_selftest
	stage "VM integration tests (real kernel)" vm_tests
	stage "JSON Schemas of VM outputs" vm_json
	stage "VM dm tests on kernel 6.12" vm_612_tests
	stage "VM rootfs guest (systemd, udev)" vm_rootfs_tests

	local line p=0 f=0 s=0
	log "summary"
	for line in "${results[@]}"; do
		set -- $line
		local n=$(($# - 4)) name
		name=${*:1:$n}
		shift "$n"
		printf '  %-40s %3d passed %3d failed %3d skipped %5d s\n' "$name" "$1" "$2" "$3" "$4"
		p=$((p + $1)); f=$((f + $2)); s=$((s + $3))
	done
	echo "$p passed, $f failed, $s skipped"
	[ "$f" -eq 0 ]
}

case "${1:-}" in
demo) do_demo ;;
test) do_test ;;
deps) do_deps ;;
build) do_deps; do_build ;;
*) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
