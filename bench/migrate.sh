#!/bin/bash
# Benchmark dmrepl migrate (issue 14): how long a live migration keeps the
# volume suspended, against how long an offline dd copy keeps it out of
# service, in the test VM (tests/vm/run, qemu TCG). See bench/migrate-guest.sh.
#
# Usage: bench/migrate.sh [--sizes "1 4 16"] [--runs N] [--rate-kib N]
#                         [--dir DIR] [--dmrepl PATH] [--out FILE]
#
#   --sizes LIST   the volumes' sizes in GiB, each mapped fully (default
#                  "1 4 16")
#   --runs N       migrations per size (default 5; medians are reported)
#   --rate-kib N   the writer's rate: 64 KiB random writes (default 4096,
#                  4 MiB/s: in the TCG VM the copy of scattered 64 KiB
#                  blocks runs at 20-40 MB/s, so a 20 MiB/s writer
#                  outruns the rounds and migrate stops, exit 3)
#   --dir DIR      where the disk files live (default
#                  /var/tmp/dmrepl-bench-migrate; sparse, about twice the
#                  largest size is written)
#   --dmrepl PATH  the dmrepl to measure (default build/tools/dmrepl)
#   --out FILE     also write the report to FILE
#   --log FILE     no VM: report from the guest log of an earlier run
#   --debug        migrate's debug lines from suspend to resume in the log
#
# Targets: the largest size's median suspended_ms at most 1.2x the
# smallest's; every median suspended_ms at most 1000; total bytes shipped
# at most 1.3x (the mapped bytes plus the bytes written meanwhile).
# Exit status: 0 the benchmark ran (see the report for the verdicts),
# 1 it failed, 77 it cannot run here.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
sizes="1 4 16" runs=5 rate=4096 dir=/var/tmp/dmrepl-bench-migrate
dmrepl=$top/build/tools/dmrepl writer=$top/build/tests/integration/seq-writer out= log= debug=
die() { echo "bench/migrate.sh: error: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=${2:?}; shift 2 ;;
	--runs) runs=${2:?}; shift 2 ;;
	--rate-kib) rate=${2:?}; shift 2 ;;
	--dir) dir=${2:?}; shift 2 ;;
	--dmrepl) dmrepl=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--log) log=${2:?}; shift 2 ;;
	--debug) debug=1; shift ;;
	-h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
[[ $rate =~ ^[1-9][0-9]*$ ]] || die "--rate-kib needs a positive number"
for s in $sizes; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "--sizes: '$s' is not a number of GiB"; done
max=0
for s in $sizes; do [ "$s" -le "$max" ] || max=$s; done
if [ -z "$log" ]; then
for t in /usr/bin/time /usr/bin/dd openssl; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not found" >&2; exit 77; }
done
for b in dmrepl writer; do
	p=${!b}
	[ -x "$p" ] || die "$p is not an executable (build it)"
	# a libtool wrapper cannot run in the guest: the real program
	if grep -q libtool "$p" 2>/dev/null && [ -x "$(dirname "$p")/.libs/${p##*/}" ]; then
		printf -v "$b" '%s' "$(dirname "$p")/.libs/${p##*/}"
	fi
done

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$dir/work
rm -rf "$work"
mkdir -p "$work/bin"
if [ "$(stat -c %s "$dir/random" 2>/dev/null || echo 0)" != $((256 << 20)) ]; then
	{ openssl enc -aes-128-ctr -pass pass:dmrepl-migrate -nosalt -pbkdf2 </dev/zero 2>/dev/null || :; } |
		head -c $((256 << 20)) > "$dir/random"
fi
# each PV: the largest volume, what the writer adds meanwhile, the pool's metadata
for d in src dst; do
	rm -f "$dir/$d"
	truncate -s "$((max * 1024 * 5 / 4 + 2048))M" "$dir/$d"
done
cp "$dmrepl" "$work/bin/dmrepl"
cp "$writer" "$work/bin/seq-writer"
cp /usr/bin/time /usr/bin/dd "$work/bin/"
sed "s/^SIZES=.*/SIZES=\"$sizes\"/; s/^RUNS=.*/RUNS=$runs/; s/^RATE_KIB=.*/RATE_KIB=$rate/; ${debug:+s/^LOG=.*/LOG=debug/}" \
	"$here/migrate-guest.sh" > "$work/migrate-guest.sh"

echo "bench/migrate.sh: running the guest (qemu TCG; log: $work/vm/migrate-guest.log)" >&2
t0=$(date +%s)
rc=0
DMREPL_CACHE_DIR=${DMREPL_CACHE_DIR:-$top/build/cache} \
	"$top/tests/vm/run" --mode vm --out "$work/vm" --bin "$work/bin" \
	--disk "$dir/src" --disk "$dir/dst" --disk "$dir/random" "$work/migrate-guest.sh" >&2 || rc=$?
log=$work/vm/migrate-guest.log
[ "$rc" = 0 ] || die "the guest run failed (exit $rc; see $log)"
grep -q '^mbench: done$' "$log" || die "the guest did not finish (see $log)"
echo "bench/migrate.sh: the VM ran $(( $(date +%s) - t0 )) s" >&2
rm -f "$dir/src" "$dir/dst"
fi

# col SIZE N: field N of the size's RESULT lines (5 exit, 6 suspended_ms,
# 7 total_bytes, 8 rounds, 9 secs, 10 written, 11 rss)
col() { awk -v s="$1" -v n="$2" '$1 == "mbench:" && $2 == "RESULT" && $3 == s { print $n }' "$log"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
list() { col "$1" "$2" | tr '\n' ' ' | sed 's/ $//'; }
report() {
	local s first last worst_ratio=0 worst_susp=0 gib ratios m dd
	echo "# bench/migrate.sh --sizes \"$sizes\" --runs $runs --rate-kib $rate"
	sed -n 's/^mbench: \(kernel\|lvm\|filled\)/# \1/p' "$log"
	echo "# guest: qemu TCG (no KVM), virtio disks backed by sparse host files"
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "size" "suspended_ms (runs)" "median" \
		"rounds" "bytes shipped / (mapped + written)" "migrate s (median)" "peak RSS" \
		"full dd s (offline)"
	printf '| --- | --- | --- | --- | --- | --- | --- | --- |\n'
	for s in $sizes; do
		gib=$((s << 30))
		ratios=$(awk -v s="$s" -v g="$gib" '$1 == "mbench:" && $2 == "RESULT" && $3 == s && $5 == 0 {
			printf "%.2f ", $7 / (g + $10) }' "$log")
		m=$(awk -v s="$s" '$1 == "mbench:" && $2 == "RESULT" && $3 == s && $5 == 0 { print $6 }' "$log" | median)
		dd=$(awk -v s="$s" '$1 == "mbench:" && $2 == "DD" && $3 == s { print $4 }' "$log")
		printf '| %s GiB | %s | **%s** | %s | %s | %s | %s MiB | %s |\n' "$s" "$(list "$s" 6)" "$m" \
			"$(list "$s" 8)" "$ratios" "$(col "$s" 9 | median)" \
			"$(col "$s" 11 | sort -g | tail -n 1 | awk '{ printf "%.1f", $1 / 1024 }')" "$dd"
		for r in $ratios; do worst_ratio=$(awk -v a="$worst_ratio" -v b="$r" 'BEGIN { print (b > a) ? b : a }'); done
		worst_susp=$(awk -v a="$worst_susp" -v b="$m" 'BEGIN { print (b > a) ? b : a }')
		[ -n "${first:-}" ] || first=$m
		last=$m
	done
	echo "what the suspended time went to (migrate's own account, each run):"
	sed -n 's/^mbench: PARTS \([0-9]*\) \([0-9]*\) /  \1 GiB run \2: /p' "$log"
	echo "the final round's bytes (taken before the suspend, and while suspended):"
	sed -n 's/^mbench: LAST \([0-9]*\) \([0-9]*\) /  \1 GiB run \2: /p' "$log"
	echo "exit statuses (0 migrated, 3 did not converge; the medians are of the migrated runs): $(awk '$1 == "mbench:" && $2 == "RESULT" { printf "%s ", $5 }' "$log")"
	awk '$1 == "mbench:" && $2 == "JSON" && /"exit_status":3/ { sub(/.*"reason":"/, ""); sub(/".*/, ""); print "did not converge: " $0 }' "$log"
	echo "downtime independent of size: largest / smallest median = $(awk -v a="$last" -v b="$first" 'BEGIN { printf "%.2f", a / b }') (target <= 1.2): $(awk -v a="$last" -v b="$first" 'BEGIN { print (a <= 1.2 * b) ? "met" : "MISSED" }')"
	echo "median suspended_ms at most $worst_susp (target <= 1000): $(awk -v a="$worst_susp" 'BEGIN { print (a <= 1000) ? "met" : "MISSED" }')"
	echo "bytes shipped at most ${worst_ratio}x mapped + written (target <= 1.3): $(awk -v a="$worst_ratio" 'BEGIN { print (a == 0) ? "n/a" : (a <= 1.3) ? "met" : "MISSED" }')"
}
if [ -n "$out" ]; then report | tee "$out"; else report; fi
