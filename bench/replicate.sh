#!/bin/bash
# Benchmark `dmrepl replicate` against dd between two thin pools (issue 4),
# in the test VM (tests/vm/run, qemu TCG).
#
# Usage: bench/replicate.sh [--runs N] [--size-mib N] [--incr-only]
#                           [--pattern scattered|clustered] [--random-mib N]
#                           [--fio] [--lvm] [--dir DIR] [--dmrepl PATH]
#                           [--out FILE]
#
#   --runs N       rounds of each pair (default 3; medians are reported)
#   --size-mib N   the volume's size (default 1024)
#   --incr-only    time only the incremental pair (for large volumes,
#                  where the fixed cost per replication is amortised)
#   --pattern P    how the 1% of the blocks changed between S1 and S2 lie:
#                  scattered (default: distinct blocks drawn with a fixed
#                  seed) or clustered (4 contiguous ranges, centred at 1/8,
#                  3/8, 5/8 and 7/8 of the volume)
#   --random-mib N the random data file's size (default: the volume's); a
#                  smaller one is written over the volume again and again,
#                  so large volumes need less room in DIR
#   --fio          also measure what the guest's storage does with fio
#                  (copied into the guest): 64 MiB read from S2 while as
#                  much is written into a snapshot of S1's replica, as 64
#                  KiB random I/Os and as 1 MiB sequential ones (io_uring,
#                  O_DIRECT, iodepth 32 each): the limit a scattered copy
#                  runs into, against the streaming one
#   --lvm          over pools LVM manages, by LVM names (issue 11): the
#                  volume a thin LV, S1 and S2 LVM snapshots, the replicas
#                  LVs (`--snap VG/s2 --base VG/s1 --to-pool VG/pool`),
#                  dd's targets new thin LVs; not with --fio
#   --dir DIR      where the disk files live (default
#                  /var/tmp/dmrepl-bench-replicate; the random data file is
#                  kept between runs, the pool disks are made anew)
#   --dmrepl PATH  the dmrepl to measure (default build/tools/dmrepl)
#   --out FILE     also write the report to FILE
#
# bench/replicate-guest.sh runs in the VM over five virtio disks backed by
# sparse files in DIR (source pool metadata and data, destination pool
# metadata and data, and the random data the volume is filled from). It
# fills a thin volume with non-zero data (64 KiB blocks), snapshots it (S1),
# rewrites 1% of its blocks (--pattern), snapshots it again (S2), then times,
# alternating the order and dropping the guest's caches before each command:
#   full  dmrepl replicate --snap S1 --full   vs  dd bs=1M conv=sparse
#         iflag=direct oflag=direct of S1's device into a new thin device
#   incr  dmrepl replicate --snap S2 --base S1  vs  dd bs=1M iflag=direct
#         oflag=direct of S2's device into a new thin device
# Wall time and peak RSS come from GNU time (%e %M) in the guest. The first
# replica of each kind is checked: its sha256 equals its source snapshot's.
# Targets: incr at least 50x faster than the full dd; full at least as fast
# as dd conv=sparse; dmrepl's peak RSS at most 64 MiB.
# Exit status: 0 the benchmark ran (targets met or not: see the report),
# 1 it failed, 77 it cannot run here.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
runs=3 size_mib=1024 pairs=full,incr pattern=scattered random_mib= fio= lvm=0 dir=/var/tmp/dmrepl-bench-replicate dmrepl=$top/build/tools/dmrepl out=

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?}; shift 2 ;;
	--size-mib) size_mib=${2:?}; shift 2 ;;
	--incr-only) pairs=incr; shift ;;
	--pattern) pattern=${2:?}; shift 2 ;;
	--random-mib) random_mib=${2:?}; shift 2 ;;
	--fio) fio=1; shift ;;
	--lvm) lvm=1; shift ;;
	--dir) dir=${2:?}; shift 2 ;;
	--dmrepl) dmrepl=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	-h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
[[ $size_mib =~ ^[1-9][0-9]*$ ]] || die "--size-mib needs a positive number"
[[ $pattern =~ ^(scattered|clustered)$ ]] || die "--pattern is scattered or clustered"
[ "$lvm" = 0 ] || [ -z "$fio" ] || die "--fio runs over raw pools only: not with --lvm"
random_mib=${random_mib:-$size_mib}
[[ $random_mib =~ ^[1-9][0-9]*$ ]] && [ "$random_mib" -le "$size_mib" ] ||
	die "--random-mib needs a positive number, at most --size-mib"
for t in /usr/bin/time /usr/bin/dd openssl; do
	command -v "$t" >/dev/null || { echo "SKIP: $t not found" >&2; exit 77; }
done
[ -x "$dmrepl" ] || die "$dmrepl is not an executable (build it, or pass --dmrepl)"
# A libtool wrapper cannot run in the guest: take the real program.
if grep -q 'libtool' "$dmrepl" 2>/dev/null && [ -x "$(dirname "$dmrepl")/.libs/${dmrepl##*/}" ]; then
	dmrepl=$(dirname "$dmrepl")/.libs/${dmrepl##*/}
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$dir/work
rm -rf "$work"
mkdir -p "$work/bin"
size=$((random_mib << 20))

# The disks.
if [ "$(stat -c %s "$dir/random" 2>/dev/null || echo 0)" != "$size" ]; then
	say "writing $random_mib MiB of random data to $dir/random"
	{ openssl enc -aes-128-ctr -pass pass:dmrepl-replicate -nosalt -pbkdf2 </dev/zero 2>/dev/null || :; } |
		head -c "$size" > "$dir/random"
fi
mkdisk() { rm -f "$dir/$1"; truncate -s "$2M" "$dir/$1"; }
mkdisk src-meta 64
mkdisk src-data $((size_mib + 256))
mkdisk dst-meta 64
mkdisk dst-data $((2 * size_mib + 512))

# The programs, and the guest script with the number of rounds.
cp "$dmrepl" "$work/bin/dmrepl"
cp /usr/bin/time /usr/bin/dd "$work/bin/"
if [ -n "$fio" ]; then
	command -v fio >/dev/null || die "--fio: fio is not installed"
	cp "$(command -v fio)" "$work/bin/"
fi
sed "s/^RUNS=.*/RUNS=$runs/; s/^PAIRS=.*/PAIRS=$pairs/; s/^PATTERN=.*/PATTERN=$pattern/; s/^VOL_MIB=.*/VOL_MIB=$size_mib/; s/^LVM=.*/LVM=$lvm/" \
	"$here/replicate-guest.sh" > "$work/replicate-guest.sh"

say "running the guest (qemu TCG; log: $work/vm/replicate-guest.log)"
t0=$(date +%s)
rc=0
DMREPL_CACHE_DIR=${DMREPL_CACHE_DIR:-$top/build/cache} \
	"$top/tests/vm/run" --mode vm --out "$work/vm" --bin "$work/bin" \
	--disk "$dir/src-meta" --disk "$dir/src-data" --disk "$dir/dst-meta" \
	--disk "$dir/dst-data" --disk "$dir/random" "$work/replicate-guest.sh" >&2 || rc=$?
log=$work/vm/replicate-guest.log
[ "$rc" = 0 ] || die "the guest run failed (exit $rc; see $log)"
grep -q '^rbench: done$' "$log" || die "the guest did not finish (see $log)"
say "the VM ran $(( $(date +%s) - t0 )) s"

# field PAIR CMD N: column N (1 secs, 2 rss) of the timed runs, one a line.
field() { awk -v p="$1" -v c="$2" -v n="$3" '$1 == "rbench:" && $2 == "RESULT" && $3 == p && $4 == c && $5 > 0 { print $(5 + n) }' "$log"; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit } print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maxof() { sort -g | tail -n 1; }
list() { field "$@" | tr '\n' ' '; }

# fio_report: from the guest's "rbench: FIO pattern round secs bytes" lines.
fio_report() {
	local p t b m
	for p in rand seq; do
		t=$(awk -v p="$p" '$1 == "rbench:" && $2 == "FIO" && $3 == p { print $5 }' "$log")
		b=$(awk -v p="$p" '$1 == "rbench:" && $2 == "FIO" && $3 == p { print $6 }' "$log" | head -n 1)
		[ -n "$t" ] || continue
		m=$(echo "$t" | median)
		echo "fio $p: $b bytes read and as many written; s: $(echo $t); median $m s = $(awk -v b="$b" -v m="$m" 'BEGIN { printf "%.0f", b / m / 1e6 }') MB/s each way"
	done
}

report() {
	local p
	for p in rand seq; do
		awk -v p="$p" '$1 == "rbench:" && $2 == "FIO" && $3 == p { t = t " " $5; b = $6 } END {
			n = split(t, a, " "); asort(a); m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			if (n) printf "fio %s: %d bytes read and as many written, s:%s; median %.3f s = %.0f MB/s each way\n", p, b, t, m, b / m / 1e6
		}' "$log"
	done
}

report() {
	local fr fd ir id rss ratio_full ratio_incr
	fr=$(field full dmrepl 1 | median) fd=$(field full dd-sparse 1 | median)
	ir=$(field incr dmrepl 1 | median) id=$(field incr dd-full 1 | median)
	rss=$( { field full dmrepl 2; field incr dmrepl 2; } | maxof)
	ratio_full=$(awk -v a="$fd" -v b="$fr" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "n/a" }')
	ratio_incr=$(awk -v a="$id" -v b="$ir" 'BEGIN { printf "%.1f", a / b }')
	echo "# bench/replicate.sh --runs $runs --size-mib $size_mib$([ "$pairs" = incr ] && echo ' --incr-only') --pattern $pattern$([ "$random_mib" = "$size_mib" ] || echo " --random-mib $random_mib")$([ "$lvm" = 0 ] || echo ' --lvm')"
	echo "# $(sed -n 's/^rbench: \(volume\|kernel\|pools\)/\1/p' "$log" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
	echo "# guest: qemu TCG (no KVM), virtio disks backed by host files (cache=unsafe)"
	grep '^rbench: \(filled\|delta\|CHECK\)' "$log" | sed 's/^rbench: /# /'
	printf '%-34s %-28s %s\n' "command" "wall s (each round)" "median s"
	printf '%-34s %-28s %s\n' "dmrepl replicate --full S1" "$(list full dmrepl 1)" "$fr"
	printf '%-34s %-28s %s\n' "dd conv=sparse S1" "$(list full dd-sparse 1)" "$fd"
	printf '%-34s %-28s %s\n' "dmrepl replicate S2 --base S1" "$(list incr dmrepl 1)" "$ir"
	printf '%-34s %-28s %s\n' "dd S2 (full copy)" "$(list incr dd-full 1)" "$id"
	echo "peak RSS of dmrepl (KiB), full: $(list full dmrepl 2) incr: $(list incr dmrepl 2)"
	echo "peak RSS of dd (KiB): $(list full dd-sparse 2) $(list incr dd-full 2)"
	echo "incr copied: $(awk '$1 == "rbench:" && $2 == "COPIED" && $3 == "incr" { print $5 " bytes in " $6 " extents" }' "$log" | sort -u | tr '\n' ';' | sed 's/;$//')"
	[ -z "$fio" ] || fio_report
	echo "full dd of S2 at the median: $(awk -v b="$((size_mib << 20))" -v s="$id" 'BEGIN { if (s + 0 > 0) printf "%.0f MB/s", b / s / 1e6; else print "n/a" }')"
	[ "$pairs" = incr ] ||
		echo "full: dd conv=sparse / dmrepl --full = ${ratio_full}x (target >= 1): $(awk -v r="$ratio_full" 'BEGIN { print (r >= 1) ? "met" : "MISSED" }')"
	echo "incr: dd full / dmrepl --base = ${ratio_incr}x (target >= 50): $(awk -v r="$ratio_incr" 'BEGIN { print (r >= 50) ? "met" : "MISSED" }')"
	echo "peak RSS: $rss KiB = $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') MiB (target <= 64 MiB): $(awk -v k="$rss" 'BEGIN { print (k <= 65536) ? "met" : "MISSED" }')"
}

if [ -n "$out" ]; then report | tee "$out"; else report; fi
