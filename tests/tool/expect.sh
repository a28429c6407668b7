# shellcheck shell=sh
# Shared by the command-line tests: run dmrepl and check its exit code and
# output. Source it after setting DMREPL; it sets up $tmp and $failures.
#
#   expect NAME EXPECTED_RC PATTERN -- ARGS...
#       dmrepl ARGS must exit EXPECTED_RC, and a line of its standard
#       output or error must match PATTERN; stderr alone is in $tmp/err.
#   check NAME COMMAND...
#       a check that is not a dmrepl run: COMMAND must succeed.
#   expect_done
#       exit 1 if any check failed, else 0.

failures=0
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

expect() {
	name=$1 want_rc=$2 pattern=$3
	shift 4
	"$DMREPL" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cat "$tmp/err" >>"$tmp/out"
	if [ "$rc" -ne "$want_rc" ]; then
		echo "FAIL $name: exit $rc, expected $want_rc"; sed 's/^/  | /' "$tmp/out"
		failures=$((failures + 1)); return
	fi
	if ! grep -q -e "$pattern" "$tmp/out"; then
		echo "FAIL $name: output lacks '$pattern'"; sed 's/^/  | /' "$tmp/out"
		failures=$((failures + 1)); return
	fi
	echo "ok   $name"
}

check() {
	name=$1
	shift
	if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

expect_done() {
	[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
	exit 0
}
