#!/bin/bash
# Benchmark `dmrepl copy` against the device's copy limit, measured in the
# same run by fio (issue 4).
#
# Usage: bench/copy.sh [--runs N] [--dir DIR] [--size-mib N] [--dmrepl PATH]
#                      [--out FILE]
#
#   --runs N       timed runs of each command per pattern (default 5)
#   --dir DIR      where the source and destination files live (default
#                  /var/tmp/dmrepl-bench-copy; kept between runs)
#   --size-mib N   source size (default 2048: the random pattern must
#                  scatter over at least 2 GiB)
#   --dmrepl PATH  the dmrepl to measure (default build/tools/dmrepl)
#   --out FILE     also write the report to FILE
#
# The copy limit is fio reading the same number of bytes from the source
# while it writes as many to the destination, at the same time (two jobs
# in one fio run; O_DIRECT, io_uring, iodepth 32). fio's time is its own
# (the longer job's runtime); dmrepl's is the whole process, from exec to
# exit, fsync included. Patterns:
#   seq   1 MiB blocks / the whole source as one extent
#   rand  64 KiB blocks at random / 64 KiB extents, every other 64 KiB
#         block taken with probability 1/2 (never adjacent, so a delta
#         would not merge them), over the whole source
# Each run starts with `echo 3 > /proc/sys/vm/drop_caches`; commands
# alternate within a run (fio, uring, aio, sync, in a rotating order).
# Peak RSS comes from /usr/bin/time -f %M. The copy is checked: after a
# dmrepl run the destination's copied ranges equal the source's.
set -euo pipefail

runs=5
dir=/var/tmp/dmrepl-bench-copy
size_mib=2048
top=$(cd "$(dirname "$0")/.." && pwd)
dmrepl=$top/build/tools/dmrepl
out=

while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--size-mib) size_mib=$2; shift 2 ;;
	--dmrepl) dmrepl=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench/copy.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

for tool in fio /usr/bin/time "$dmrepl"; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not found" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to drop caches" >&2; exit 77; }

mkdir -p "$dir"
src=$dir/src dst=$dir/dst
size=$((size_mib << 20))

# The files: random data, and a fully allocated destination (overwrites,
# as a replica's blocks mostly are).
if [ "$(stat -c %s "$src" 2>/dev/null || echo 0)" != "$size" ]; then
	echo "# writing $size_mib MiB of random data to $src" >&2
	{ openssl enc -aes-128-ctr -pass pass:dmrepl -nosalt -pbkdf2 </dev/zero 2>/dev/null || :; } |
		head -c "$size" >"$src"
fi
if [ "$(stat -c %s "$dst" 2>/dev/null || echo 0)" != "$size" ]; then
	dd if=/dev/zero of="$dst" bs=1M count="$size_mib" conv=fsync status=none
fi

# The extents.
echo "0 $size copy" >"$dir/seq.ext"
awk -v n=$((size / 131072)) 'BEGIN { srand(4); for (i = 0; i < n; i++)
	if (rand() < 0.5) printf "%d 65536 copy\n", i * 131072 }' >"$dir/rand.ext"
rand_bytes=$(($(wc -l <"$dir/rand.ext") * 65536))

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# fio PATTERN: print fio's own runtime in seconds.
run_fio() {
	local rw bs bytes
	if [ "$1" = seq ]; then rw=read bs=1M bytes=$size; else rw=randread bs=64k bytes=$rand_bytes; fi
	fio --output-format=json --direct=1 --ioengine=io_uring --iodepth=32 \
		--bs="$bs" --size="$size" --io_size="$bytes" --randrepeat=0 \
		--name=read --filename="$src" --rw="$rw" \
		--name=write --filename="$dst" --rw="${rw/read/write}" 2>/dev/null |
		python3 -c 'import json,sys; j=json.load(sys.stdin)
print("%.3f" % (max(x["job_runtime"] for x in j["jobs"]) / 1000.0))'
}

# dmrepl ENGINE PATTERN: print "seconds peak_rss_kib".
run_dmrepl() {
	/usr/bin/time -f '%e %M' -o "$dir/time" \
		"$dmrepl" copy -q --engine="$1" --extents "$dir/$2.ext" "$src" "$dst"
	cat "$dir/time"
}

# check PATTERN: the copied ranges of dst equal src's (first, last, one in the middle).
check() {
	local lines n off len
	lines=$(wc -l <"$dir/$1.ext")
	for n in 1 $(((lines + 1) / 2)) "$lines"; do
		read -r off len _ < <(sed -n "${n}p" "$dir/$1.ext")
		[ "$len" -gt 4194304 ] && len=4194304
		cmp -s <(dd if="$src" bs=64K skip=$((off / 65536)) count=$((len / 65536)) status=none) \
			<(dd if="$dst" bs=64K skip=$((off / 65536)) count=$((len / 65536)) status=none) ||
			{ echo "bench/copy.sh: $1: destination differs at $off" >&2; exit 1; }
	done
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

cmds=(fio uring aio sync)
declare -A times rss
for pattern in seq rand; do
	for ((r = 0; r < runs; r++)); do
		for ((k = 0; k < ${#cmds[@]}; k++)); do
			c=${cmds[$(((k + r) % ${#cmds[@]}))]}
			# Overwrite dst with fio's pattern first, so dmrepl's check means something.
			drop
			if [ "$c" = fio ]; then
				t=$(run_fio "$pattern")
			else
				read -r t m < <(run_dmrepl "$c" "$pattern")
				rss[$pattern.$c]="${rss[$pattern.$c]:-} $m"
				check "$pattern"
			fi
			times[$pattern.$c]="${times[$pattern.$c]:-} $t"
			echo "# $pattern run $r $c: $t s" >&2
		done
	done
done

report() {
	local bytes
	echo "dmrepl copy against fio: $size_mib MiB source in $dir ($(df --output=source "$dir" | tail -1)),"
	echo "$runs runs each, caches dropped before every run; medians."
	echo
	printf '%-5s %-6s %10s %10s %9s %9s\n' pattern cmd seconds MiB/s fio/cmd peak_RSS
	for pattern in seq rand; do
		if [ "$pattern" = seq ]; then bytes=$size; else bytes=$rand_bytes; fi
		f=$(echo ${times[$pattern.fio]} | tr ' ' '\n' | median)
		for c in "${cmds[@]}"; do
			t=$(echo ${times[$pattern.$c]} | tr ' ' '\n' | median)
			m=-
			[ "$c" = fio ] || m="$(( $(echo ${rss[$pattern.$c]} | tr ' ' '\n' | sort -n | tail -1) / 1024 )) MiB"
			printf '%-5s %-6s %10.3f %10.0f %9.3f %9s\n' "$pattern" "$c" "$t" \
				"$(echo "$bytes / 1048576 / $t" | bc -l)" "$(echo "$f / $t" | bc -l)" "$m"
		done
	done
	echo
	echo "Target: fio/cmd >= 0.9 (dmrepl within 1/0.9 of fio's time); peak RSS <= 64 MiB."
}

report | tee ${out:+"$out"}
