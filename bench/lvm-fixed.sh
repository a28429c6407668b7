#!/bin/bash
# The fixed cost of an incremental replication by LVM names, next to the
# raw-pool path, in one test-VM session (issue 11): see
# bench/lvm-fixed-guest.sh for what is timed.
#
# Usage: bench/lvm-fixed.sh [--runs N] [--dmrepl PATH] [--out FILE]
#
# Reports, per way, the median wall time of the incrementals, peak RSS,
# how many lvm calls each made and how long they took (the rest is
# dmrepl's own work: metadata, delta, copy of one block, device-mapper),
# the median time of each phase (prepare, delta, copy, commit) and of
# each lvm subcommand, and the ratios to the raw path.
# Target (issue 11): by names, at most 1.5x the raw path's fixed cost.
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
	-h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
command -v /usr/bin/time >/dev/null || { echo "SKIP: /usr/bin/time not found" >&2; exit 77; }
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "--runs needs a positive number" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s/^RUNS=.*/RUNS=$runs/" "$here/lvm-fixed-guest.sh" > "$work/lvm-fixed-guest.sh"
"$top/tests/vm/run" --mode vm --out "$work/vm" --bin "$dmrepl" --bin /usr/bin/time \
	"$work/lvm-fixed-guest.sh" >&2 || { cat "$work/vm/"*.log >&2; exit 1; }
log=$work/vm/lvm-fixed-guest.log
grep -q '^lbench: done$' "$log" || { echo "the guest did not finish" >&2; exit 1; }

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
col() { awk -v w="$1" -v n="$2" '$1 == "lbench:" && $2 == "RESULT" && $3 == w { print $n }' "$log"; }
{
	echo "lvm-fixed: $runs incrementals per way (one 64 KiB block changed), one VM session"
	printf '%-6s %10s %10s %12s %10s %10s %9s\n' way "median s" "runs s" "peak RSS KiB" "lvm calls" "lvm s" "vs raw"
	raw=$(col raw 5 | median)
	for w in raw names lvm; do
		m=$(col "$w" 5 | median)
		printf '%-6s %10s %10s %12s %10s %10s %8.2fx\n' "$w" "$m" "$(col "$w" 5 | tr '\n' ' ' | sed 's/ $//;s/ /,/g')" \
			"$(col "$w" 6 | sort -g | tail -n 1)" "$(col "$w" 7 | median)" "$(col "$w" 8 | median)" \
			"$(awk -v a="$m" -v b="$raw" 'BEGIN { print a / b }')"
	done
	echo "median seconds of each phase of dmrepl replicate (dmrepl -vv), by way:"
	printf '  %-6s' way
	for p in prepare delta copy commit other; do printf ' %9s' "$p"; done
	echo
	for w in raw names lvm; do
		printf '  %-6s' "$w"
		for p in prepare delta copy commit other; do
			printf ' %9s' "$(awk -v w="$w" -v p="$p" '$1 == "lbench:" && $2 == "PHASE" && $3 == w && $5 == p { print $6 }' "$log" | median)"
		done
		echo
	done
	echo "  (prepare: the source identified, the destination opened and locked;"
	echo "   delta: the changed extents read through a held metadata snapshot;"
	echo "   copy: the new device created and activated, the blocks copied;"
	echo "   commit: the replica recorded, helpers dropped, locks released;"
	echo "   other: start-up, the tool's name lookups before the job, exit)"
	echo "median seconds of each lvm call, by way and subcommand (calls per replication):"
	awk '$1 == "lbench:" && $2 == "CALL" { k = $3 " " $5; n[k]++; s[k] = s[k] " " $6; r[$3]++ }
	     END { for (k in n) print k, n[k], s[k] }' "$log" | sort | while read -r w sub n times; do
		rounds=$(col "$w" 4 | wc -l)
		printf '  %-6s %-9s %5s per run, median %s s\n' "$w" "$sub" "$(awk -v a="$n" -v b="$rounds" 'BEGIN { printf "%.1f", a / b }')" \
			"$(echo "$times" | tr ' ' '\n' | grep . | median)"
	done
} | tee "${out:-/dev/null}"
