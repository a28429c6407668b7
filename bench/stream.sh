#!/bin/bash
# Benchmark the replication stream: `dmrepl send | dmrepl receive` against
# `dmrepl copy` moving the same bytes between the same files (issue 5).
#
# Usage: bench/stream.sh [--runs N] [--dir DIR] [--size-mib N] [--dmrepl PATH]
#                        [--out FILE]
#
#   --runs N       timed runs of each command per pattern (default 5)
#   --dir DIR      where the files live (default /var/tmp/dmrepl-bench-stream)
#   --size-mib N   source size (default 2048)
#   --dmrepl PATH  the dmrepl to measure (default build/tools/dmrepl)
#   --out FILE     also write the report to FILE
#
# Commands, all from SRC to DST over the same extents:
#   copy     dmrepl copy --extents EXT SRC DST
#   stream   dmrepl send --device SRC --extents EXT | dmrepl receive --device DST
#            (every record checksummed, END digest checked)
#   zstd1    the same with send --compress=1
#   zstd3    the same with send --compress=3
# Data: "random" (incompressible: compression can only cost) and "text"
# (half random, half zeroes in 4 KiB runs: compresses about 2:1).
# Patterns: seq (the whole file as one extent, 1 MiB records) and rand
# (64 KiB extents, every other 64 KiB block taken with probability 1/2).
# Each run starts with the caches dropped; commands rotate within a run.
# Time is the wall time of the whole command or pipeline; peak RSS is
# each process's (/usr/bin/time -f %M), the larger side for a pipeline.
# After each run the destination's copied ranges are compared with the
# source's (first, middle and last extent).
set -euo pipefail

runs=5
dir=/var/tmp/dmrepl-bench-stream
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
	*) echo "bench/stream.sh: unknown option $1" >&2; exit 2 ;;
	esac
done

for tool in /usr/bin/time "$dmrepl" openssl bc; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not found" >&2; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to drop caches" >&2; exit 77; }

mkdir -p "$dir"
size=$((size_mib << 20))
dst=$dir/dst

random_bytes() { openssl enc -aes-128-ctr -pass pass:"dmrepl$1" -nosalt -pbkdf2 </dev/zero 2>/dev/null || :; }

if [ "$(stat -c %s "$dir/random" 2>/dev/null || echo 0)" != "$size" ]; then
	echo "# writing $size_mib MiB of random data" >&2
	random_bytes 1 | head -c "$size" >"$dir/random"
fi
if [ "$(stat -c %s "$dir/text" 2>/dev/null || echo 0)" != "$size" ]; then
	echo "# writing $size_mib MiB of half-compressible data" >&2
	random_bytes 2 | head -c $((size / 2)) |
		perl -e 'binmode STDIN; binmode STDOUT; my $z = "\0" x 4096;
			 while (read(STDIN, my $b, 4096)) { print $b, $z }' >"$dir/text"
fi
if [ "$(stat -c %s "$dst" 2>/dev/null || echo 0)" != "$size" ]; then
	dd if=/dev/zero of="$dst" bs=1M count="$size_mib" conv=fsync status=none
fi

echo "0 $size copy" >"$dir/seq.ext"
awk -v n=$((size / 131072)) 'BEGIN { srand(4); for (i = 0; i < n; i++)
	if (rand() < 0.5) printf "%d 65536 copy\n", i * 131072 }' >"$dir/rand.ext"
rand_bytes=$(($(wc -l <"$dir/rand.ext") * 65536))

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }

# run CMD DATA PATTERN: print "seconds peak_rss_kib".
run() {
	local src=$dir/$2 ext=$dir/$3.ext t0 t1 z=
	case $1 in zstd1) z=--compress=1 ;; zstd3) z=--compress=3 ;; esac
	t0=$(now)
	if [ "$1" = copy ]; then
		/usr/bin/time -f %M -o "$dir/rss1" "$dmrepl" copy -q --extents "$ext" "$src" "$dst"
		echo 0 >"$dir/rss2"
	else
		/usr/bin/time -f %M -o "$dir/rss1" "$dmrepl" send -q --device "$src" \
			--extents "$ext" $z |
			/usr/bin/time -f %M -o "$dir/rss2" "$dmrepl" receive -q --device "$dst"
	fi
	t1=$(now)
	echo "$(echo "$t1 - $t0" | bc -l) $(cat "$dir/rss1" "$dir/rss2" | sort -n | tail -1)"
}

check() {
	local lines n off len
	lines=$(wc -l <"$dir/$2.ext")
	for n in 1 $(((lines + 1) / 2)) "$lines"; do
		read -r off len _ < <(sed -n "${n}p" "$dir/$2.ext")
		[ "$len" -gt 4194304 ] && len=4194304
		cmp -s <(dd if="$dir/$1" bs=64K skip=$((off / 65536)) count=$((len / 65536)) status=none) \
			<(dd if="$dst" bs=64K skip=$((off / 65536)) count=$((len / 65536)) status=none) ||
			{ echo "bench/stream.sh: $1 $2: destination differs at $off" >&2; exit 1; }
	done
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

cmds=(copy stream zstd1 zstd3)
declare -A times rss
for data in random text; do
	for pattern in seq rand; do
		for ((r = 0; r < runs; r++)); do
			for ((k = 0; k < ${#cmds[@]}; k++)); do
				c=${cmds[$(((k + r) % ${#cmds[@]}))]}
				drop
				read -r t m < <(run "$c" "$data" "$pattern")
				check "$data" "$pattern"
				times[$data.$pattern.$c]="${times[$data.$pattern.$c]:-} $t"
				rss[$data.$pattern.$c]="${rss[$data.$pattern.$c]:-} $m"
				echo "# $data $pattern run $r $c: $t s, $m KiB" >&2
			done
		done
	done
done

report() {
	local bytes f t m
	echo "dmrepl send | dmrepl receive against dmrepl copy: $size_mib MiB files in $dir"
	echo "($(df --output=source "$dir" | tail -1)), $runs runs each, caches dropped before every run; medians."
	echo
	printf '%-7s %-5s %-7s %9s %9s %10s %9s\n' data pattern cmd seconds MiB/s cmd/copy peak_RSS
	for data in random text; do
		for pattern in seq rand; do
			if [ "$pattern" = seq ]; then bytes=$size; else bytes=$rand_bytes; fi
			f=$(echo ${times[$data.$pattern.copy]} | tr ' ' '\n' | median)
			for c in "${cmds[@]}"; do
				t=$(echo ${times[$data.$pattern.$c]} | tr ' ' '\n' | median)
				m=$(( $(echo ${rss[$data.$pattern.$c]} | tr ' ' '\n' | sort -n | tail -1) / 1024 ))
				printf '%-7s %-5s %-7s %9.3f %9.0f %10.3f %6s MiB\n' "$data" "$pattern" "$c" "$t" \
					"$(echo "$bytes / 1048576 / $t" | bc -l)" "$(echo "$t / $f" | bc -l)" "$m"
			done
		done
	done
	echo
	echo "Target: stream (checksums on, no compression) cmd/copy <= 1.10."
}

report | tee ${out:+"$out"}
