#!/bin/bash
# Self-test of the VM test harness (runs on the host, boots the VM 5 times).
#
# Usage: tests/vm/selftest.sh
#
# Feeds tests/vm/run deliberately bad guest tests from tests/vm/selftest/ and
# checks that it reports each correctly: a failing test, one that hangs past
# its timeout, one that leaks a device, one during which the kernel logs a
# WARNING, lib.sh cleaning up after a failure and after a timeout, two
# tests at a time (--jobs 2: verdicts, separate logs, leaks), a kernel
# panic (own boot), a VM that outlives --vm-timeout (own boot), and a clean
# run that must exit 0 (including lib.sh under busybox ash).  Exit status: 0 harness behaves, 1 it does not,
# 77 no VM can be run here.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)
run="$here/run"
st="$here/selftest"
base=${DMREPL_SELFTEST_OUT:-$srcdir/build/test-results/selftest}
problems=0

fail() { echo "selftest: FAIL: $*"; problems=$((problems + 1)); }
ok() { echo "selftest: ok: $*"; }

# runner CASE ARGS...: run the harness, output in $base/CASE.out, status in $base/CASE.rc.
runner() {
	local case=$1
	shift
	"$run" --out "$base/$case" "$@" > "$base/$case.out" 2>&1
	echo $? > "$base/$case.rc"
}

# expect CASE RC LINE...: exit status RC, each LINE present exactly, and
# the first LINE (the summary) last in the output.
expect() {
	local case=$1 rc=$2 summary=$3 line got bad=0
	shift 2
	got=$(cat "$base/$case.rc")
	[ "$got" = "$rc" ] || { fail "$case: exit status $got, expected $rc"; bad=1; }
	for line in "$@"; do
		grep -qxF -- "$line" "$base/$case.out" || { fail "$case: no line '$line'"; bad=1; }
	done
	got=$(tail -n 1 "$base/$case.out")
	[ "$got" = "$summary" ] || { fail "$case: last line '$got', expected '$summary'"; bad=1; }
	if [ "$bad" = 0 ]; then
		ok "$case"
	else
		echo "---- output of $case ($base/$case.out) ----"
		cat "$base/$case.out"
		echo "---- end ----"
	fi
}

# expect_prefix CASE PREFIX: some line starts with PREFIX.
expect_prefix() {
	awk -v p="$2" 'index($0, p) == 1 { found = 1 } END { exit !found }' "$base/$1.out" ||
		fail "$1: no line starting '$2'"
}

# expect_file_has FILE LINE: FILE contains LINE exactly.
expect_file_has() {
	grep -qxF -- "$2" "$1" || fail "$1 lacks the line '$2'"
}

vm_available() {
	command -v qemu-system-x86_64 >/dev/null || { echo "qemu-system-x86_64 not installed"; return 1; }
	"$here/fetch-kernel.sh" >/dev/null || { echo "cannot fetch the guest kernel"; return 1; }
}

check_usage_errors() {
	"$run" --mode vm > "$base/usage.out" 2>&1
	if [ $? = 99 ]; then
		ok "usage error exits 99"
	else
		fail "a run without tests should exit 99"
	fi
	local args
	for args in "--kernel 5.10" "--mode host --kernel 6.12" "--mode vm --install $st" \
		"--mode rootfs --install $st/st-pass.sh"; do
		# shellcheck disable=SC2086 # separate words
		"$run" $args "$st/st-pass.sh" > "$base/usage.out" 2>&1
		if [ $? = 99 ]; then
			ok "usage error exits 99: $args"
		else
			fail "run $args should exit 99"
		fi
	done
}

check_host_mode() {
	runner host --mode host "$st/st-pass.sh"
	case $(cat "$base/host.rc") in
	0) ok "host mode ran st-pass (this host has thin pools)" ;;
	77) ok "host mode exits 77 here: $(head -n 1 "$base/host.out")" ;;
	*) fail "host mode: exit $(cat "$base/host.rc")"; cat "$base/host.out" ;;
	esac
}

main() {
	local why t0 bg
	if ! why=$(vm_available); then
		echo "selftest: SKIP: $why"
		exit 77
	fi
	mkdir -p "$base"
	t0=$SECONDS
	check_usage_errors

	# The VM that must be killed by --vm-timeout mostly sleeps: run it alongside.
	runner vm-timeout --mode vm --vm-timeout 15 "$st/st-vm-hang.sh" &
	bg=$!

	runner mixed --mode vm --timeout 30 "$st/st-pass.sh" "$st/st-fail.sh" \
		"$st/st-hang.sh" "$st/st-skip.sh" "$st/st-leak.sh" "$st/st-kmsg-warning.sh" \
		"$st/st-lib-cleanup.sh" "$st/st-lib-timeout.sh"
	expect mixed 1 "1 passed, 6 failed, 1 skipped" \
		"PASS: st-pass" \
		"FAIL: st-fail (exit 1)" \
		"FAIL: st-hang (timed out after 3s)" \
		"SKIP: st-skip (selftest skips on purpose)" \
		"FAIL: st-leak (left devices behind)" \
		"FAIL: st-lib-cleanup (exit 1)" \
		"FAIL: st-lib-timeout (timed out after 5s)"
	expect_prefix mixed "FAIL: st-kmsg-warning (kernel: WARNING: CPU: 0 PID: "
	expect_file_has "$base/mixed/summary" "passed=1 failed=6 skipped=1"
	expect_file_has "$base/mixed/st-pass.log" "@@END st-pass rc=1 secs=0 status=ok leaked=0"
	expect_file_has "$base/mixed/st-pass.log" "no trailing newline"

	# Lanes: the same verdicts and separate logs with two tests at a time.
	runner lanes --mode vm --jobs 2 --timeout 30 "$st/st-pass.sh" "$st/st-fail.sh" \
		"$st/st-skip.sh" "$st/st-leak.sh" "$st/st-lib-cleanup.sh" "$st/st-lib-ash.sh"
	expect lanes 1 "2 passed, 3 failed, 1 skipped" \
		"PASS: st-pass" "PASS: st-lib-ash" \
		"FAIL: st-fail (exit 1)" \
		"SKIP: st-skip (selftest skips on purpose)" \
		"FAIL: st-leak (left devices behind)" \
		"FAIL: st-lib-cleanup (exit 1)"
	expect_file_has "$base/lanes/st-pass.log" "@@END st-pass rc=1 secs=0 status=ok leaked=0"
	expect_file_has "$base/lanes/st-pass.log" "no trailing newline"
	expect_file_has "$base/lanes/st-fail.log" "about to fail on purpose"
	grep -q 'about to fail' "$base/lanes/st-pass.log" "$base/lanes/st-leak.log" &&
		fail "lanes: one test's line in another's log"
	grep -q '^harness: test left device-mapper devices behind: dmrt[0-9]*-L[12]-leak' \
		"$base/lanes/st-leak.log" || fail "lanes: st-leak's log does not name its device"
	for l in 1 2; do
		grep -q "^@@BEGIN .* lane=$l\$" "$base/lanes/results.raw" || fail "lanes: lane $l ran no test"
	done

	runner clean --mode vm "$st/st-pass.sh" "$st/st-skip.sh" "$st/st-lib-ash.sh"
	expect clean 0 "2 passed, 0 failed, 1 skipped" \
		"PASS: st-pass" "SKIP: st-skip (selftest skips on purpose)" "PASS: st-lib-ash"
	expect_prefix clean "vm: first test started at "

	runner panic --mode vm "$st/st-panic.sh" "$st/st-pass.sh"
	expect panic 1 "0 passed, 2 failed, 0 skipped" \
		"FAIL: st-pass (not run: kernel panic)"
	expect_prefix panic "FAIL: st-panic (no @@END: kernel: Kernel panic - not syncing: sysrq triggered crash"

	wait "$bg"
	expect vm-timeout 1 "0 passed, 1 failed, 0 skipped" \
		"FAIL: st-vm-hang (no @@END: qemu timed out after 15s)"

	check_host_mode

	echo "selftest: $((SECONDS - t0)) s; outputs in $base"
	if [ "$problems" -gt 0 ]; then
		echo "selftest: $problems problem(s): the harness misbehaves"
		exit 1
	fi
	echo "selftest: the harness behaves"
	exit 0
}

main "$@"
