#!/bin/sh
# The dmrepl command line: help, version, subcommand dispatch and the
# documented exit codes (0 ok, 1 failure, 2 usage).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
failures=0
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

# expect NAME EXPECTED_RC GREP_PATTERN -- ARGS...
expect() {
	name=$1 want_rc=$2 pattern=$3
	shift 4
	"$DMREPL" "$@" >"$tmp/out" 2>&1
	rc=$?
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

expect "top-level --help"           0 '^Usage: dmrepl'            -- --help
expect "-h lists subcommands"       0 '^  version '               -- -h
expect "-V prints version"          0 "^dmrepl $PACKAGE_VERSION\$" -- -V
expect "--version prints version"   0 "^dmrepl $PACKAGE_VERSION\$" -- --version
expect "version subcommand"         0 "libdmrepl $PACKAGE_VERSION" -- version
expect "version --help"             0 '^Usage: dmrepl version'     -- version --help
expect "help SUBCOMMAND"            0 '^Usage: dmrepl version'     -- help version
expect "no subcommand is usage"     2 '^Usage: dmrepl'             --
expect "unknown subcommand"         2 "unknown subcommand 'frobnicate'" -- frobnicate
expect "unknown subcommand hint"    2 "Try 'dmrepl --help'"        -- frobnicate
expect "unknown option"             2 "Try 'dmrepl --help'"        -- --bogus
expect "bad subcommand option"      2 "Try 'dmrepl version --help'" -- version --bogus
expect "stray argument"             2 "unexpected argument 'x'"    -- version x
expect "help of unknown"            2 "unknown subcommand 'nope'"  -- help nope

[ "$failures" -eq 0 ] || { echo "$failures check(s) failed"; exit 1; }
exit 0
