#!/bin/bash
# What one run of a sync job costs (issue 13), in one test-VM session,
# next to the floor of any snapshot-based job: see bench/sync-guest.sh.
#
# Usage: bench/sync.sh [--runs N] [--dmrepl PATH] [--out FILE]
#
# Reports, per way, the median wall time, peak RSS, and how many lvm calls
# it made and how long they took; and the ratios to one lvcreate -s.
# Target (issue 13): a sync with nothing changed in at most 1 s.
# Exit status: 0 the benchmark ran (see the report for the verdict),
# 1 it failed, 77 it cannot run here.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
runs=5 dmrepl=$top/build/tools/dmrepl out=
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?}; shift 2 ;;
	--dmrepl) dmrepl=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	-h|--help) sed -n '2,11s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
command -v /usr/bin/time >/dev/null || { echo "SKIP: /usr/bin/time not found" >&2; exit 77; }
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "--runs needs a positive number" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s/^RUNS=.*/RUNS=$runs/" "$here/sync-guest.sh" > "$work/sync-guest.sh"
"$top/tests/vm/run" --mode vm --out "$work/vm" --bin "$dmrepl" --bin /usr/bin/time \
	"$work/sync-guest.sh" >&2 || { cat "$work/vm/"*.log >&2; exit 1; }
log=$work/vm/sync-guest.log
grep -q '^sbench: done$' "$log" || { echo "the guest did not finish" >&2; exit 1; }

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v w="$1" -v n="$2" '$1 == "sbench:" && $2 == "RESULT" && $3 == w { print $n }' "$log"; }
{
	echo "sync: $runs runs per way, one VM session (qemu TCG)"
	printf '%-10s %9s %-28s %12s %9s %7s %13s\n' way "median s" "runs s" "peak RSS KiB" "lvm calls" "lvm s" "vs lvcreate"
	floor=$(col lvcreate 5 | median)
	for w in unchanged changed lvcreate lvs; do
		m=$(col "$w" 5 | median)
		printf '%-10s %9s %-28s %12s %9s %7s %12.2fx\n' "$w" "$m" "$(col "$w" 5 | tr '\n' ',' | sed 's/,$//')" \
			"$(col "$w" 6 | sort -g | tail -n 1)" "$(col "$w" 7 | median)" "$(col "$w" 8 | median)" \
			"$(awk -v a="$m" -v b="$floor" 'BEGIN { print a / b }')"
	done
	u=$(col unchanged 5 | median)
	echo "target: a sync with nothing changed in at most 1 s: $(awk -v a="$u" 'BEGIN { print (a <= 1) ? "met" : "missed" }') ($u s)"
} | tee "${out:-/dev/null}"
