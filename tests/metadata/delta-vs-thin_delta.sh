#!/bin/sh
# For every ordered pair of thin devices in every metadata fixture, the
# delta must print exactly what thin_delta prints: from the library
# (tests/unit/delta-dump) and from `dmrepl delta --format=xml`.
set -u

FIXTURES=${FIXTURES:-tests/fixtures}
DELTA_DUMP=${DELTA_DUMP:-tests/unit/delta-dump}
DMREPL=${DMREPL:-tools/dmrepl}

if ! command -v thin_delta >/dev/null 2>&1 || ! command -v thin_dump >/dev/null 2>&1; then
	echo "SKIP: thin_delta and thin_dump (thin-provisioning-tools) are not installed"
	exit 77
fi
set -- "$FIXTURES"/*.bin
if [ ! -e "$1" ]; then
	echo "SKIP: no metadata fixtures in $FIXTURES"
	exit 77
fi
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

use_tool=no
"$DMREPL" delta --help >/dev/null 2>&1 && use_tool=yes

failures=0 pairs=0
# compare NAME COMMAND...: its output must equal $tmp/want
compare() {
	name=$1
	shift
	if ! "$@" >"$tmp/got" 2>"$tmp/err"; then
		echo "FAIL $name: exit status $?"; sed 's/^/  | /' "$tmp/err"
		failures=$((failures + 1))
	elif ! diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
		echo "FAIL $name: differs from thin_delta"; head -20 "$tmp/diff"
		failures=$((failures + 1))
	fi
}

for img in "$@"; do
	ids=$(thin_dump "$img" | sed -n 's/.*<device dev_id="\([0-9]*\)".*/\1/p')
	for a in $ids; do
		for b in $ids; do
			pairs=$((pairs + 1))
			thin_delta --snap1 "$a" --snap2 "$b" "$img" >"$tmp/want" || exit 99
			compare "$img $a->$b (delta-dump)" "$DELTA_DUMP" "$img" "$a" "$b"
			[ $use_tool = yes ] &&
				compare "$img $a->$b (dmrepl delta)" "$DMREPL" delta \
					--format=xml --snap1 "$a" --snap2 "$b" "$img"
		done
	done
done

echo "$pairs device pairs in $# images compared with thin_delta" \
	"(dmrepl delta: $use_tool), $failures failures"
[ "$failures" -eq 0 ]
