#!/bin/bash
# Benchmark `dmrepl delta` against thin_delta on kernel-written metadata with
# 1,000,000 and 2,000,000 mapped blocks (issue 3).
#
# Usage: bench/delta.sh [--runs N] [--cache all|image|warm] [--dmrepl PATH]
#                       [--out FILE]
#
#   --runs N       timed runs of each command per case (default 7)
#   --cache all    drop the whole page cache before every run (default;
#                  programs and libraries are read from disk too)
#           image  evict only the metadata image from the page cache
#           warm   drop nothing (one warm-up run of each command first)
#   --dmrepl PATH  the dmrepl to measure (default build/tools/dmrepl)
#   --out FILE     also write the report to FILE
#                  (default build/bench-results/delta-MODE.txt)
#
# Makes the metadata images first if they are not cached (bench/mkimages.sh,
# about 20 minutes in the test VM, once).  For each case it checks that
# `dmrepl delta --format=xml` prints exactly what thin_delta prints and that
# the extents copy exactly the blocks that were changed, then times
#   extents   dmrepl delta --format=extents   (the replication path)
#   direct    the same with O_DIRECT reads, as `dmrepl delta --pool` reads
#             a live pool (bench/direct-preload.c; thin_delta always
#             reads with O_DIRECT)
#   xml       dmrepl delta --format=xml       (thin_delta's output)
#   thin_delta
# in turn, N runs each, the order rotating from run to run, output to
# /dev/null.  Peak RSS comes from one more run of each under /usr/bin/time.
# It prints medians, thin_delta/dmrepl ratios and whether the targets, taken
# on `extents`, are met:
#   scattered 1% change: dmrepl >= 5x faster than thin_delta
#   clustered 1% change: >= 50x faster
#   dmrepl peak RSS < 16 MiB
#   clustered change on the doubled volume: < 1.3x the time on the base one
# Exit status: 0 all targets met, 1 a target missed, 2 usage error, 99 the
# benchmark could not run (or an output was wrong).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/.." && pwd)
prog=${0##*/}

runs=7 cache=all dmrepl="$srcdir/build/tools/dmrepl" out=""
BLOCK_BYTES=65536
BASE_BLOCKS=1000000
CLUSTERED_BLOCKS=10000   # 4 x 2500, the same ranges on both volumes

# Cases: name, image, snap1, snap2, blocks the change rewrote.
CASES=(
	"scattered base.meta 2 3 $((BASE_BLOCKS / 100))"
	"clustered base.meta 3 4 $CLUSTERED_BLOCKS"
	"scattered-2x double.meta 2 3 $((2 * BASE_BLOCKS / 100))"
	"clustered-2x double.meta 3 4 $CLUSTERED_BLOCKS"
)
TOOLS=(extents direct xml thin_delta)

die() { echo "$prog: error: $*" >&2; exit 99; }
usage_error() { echo "$prog: $* (see --help)" >&2; exit 2; }

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--runs) runs=${2:?}; shift 2 ;;
		--cache) cache=${2:?}; shift 2 ;;
		--dmrepl) dmrepl=$(realpath "${2:?}"); shift 2 ;;
		--out) out=${2:?}; shift 2 ;;
		-h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
		*) usage_error "unknown argument '$1'" ;;
		esac
	done
	[[ $runs =~ ^[1-9][0-9]*$ ]] || usage_error "--runs needs a positive number"
	case $cache in all|image|warm) ;; *) usage_error "--cache must be all, image or warm" ;; esac
	out=${out:-$srcdir/build/bench-results/delta-$cache.txt}
}

check_tools() {
	[ -x "$dmrepl" ] || die "$dmrepl not found: build it (cd build && make -j2)"
	command -v thin_delta >/dev/null || die "thin_delta not found (apt-get install thin-provisioning-tools)"
	[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
	if [ "$cache" = all ] && ! (sync && echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then
		die "cannot write /proc/sys/vm/drop_caches here: use --cache image or --cache warm"
	fi
}

build_preload() {
	gcc -O2 -Wall -Wextra -shared -fPIC -o "$work/direct-preload.so" \
		"$here/direct-preload.c" -ldl || die "cannot compile bench/direct-preload.c"
}

# tool_cmd TOOL IMAGE SNAP1 SNAP2: set CMD to the command line of TOOL and
# PRELOAD to what it runs with in LD_PRELOAD.
tool_cmd() {
	PRELOAD=""
	case $1 in
	extents) CMD=("$dmrepl" delta --format=extents --snap1 "$3" --snap2 "$4" "$2") ;;
	direct)
		CMD=("$dmrepl" delta --format=extents --snap1 "$3" --snap2 "$4" "$2")
		PRELOAD=$work/direct-preload.so
		;;
	xml) CMD=("$dmrepl" delta --format=xml --snap1 "$3" --snap2 "$4" "$2") ;;
	thin_delta) CMD=(thin_delta --snap1 "$3" --snap2 "$4" "$2") ;;
	esac
}

# uncache IMAGE: before a run, forget what --cache says to forget.
uncache() {
	case $cache in
	all) echo 3 > /proc/sys/vm/drop_caches ;;
	image) dd if="$1" iflag=nocache count=0 status=none ;;
	esac
}

# verify NAME IMAGE SNAP1 SNAP2 CHANGED: the outputs are right, or exit 99.
verify() {
	local name=$1 img=$2 s1=$3 s2=$4 changed=$5 tmp=$work/$1 got k
	tool_cmd xml "$img" "$s1" "$s2"
	"${CMD[@]}" > "$tmp.dmrepl.xml" || die "$name: ${CMD[*]} failed"
	tool_cmd thin_delta "$img" "$s1" "$s2"
	"${CMD[@]}" > "$tmp.thin_delta.xml" || die "$name: ${CMD[*]} failed"
	if ! cmp -s "$tmp.thin_delta.xml" "$tmp.dmrepl.xml"; then
		diff -u "$tmp.thin_delta.xml" "$tmp.dmrepl.xml" | head -n 20 >&2
		die "$name: dmrepl's xml differs from thin_delta's (diff above)"
	fi
	for k in extents direct; do
		tool_cmd "$k" "$img" "$s1" "$s2"
		LD_PRELOAD=$PRELOAD "${CMD[@]}" > "$tmp.$k" || die "$name: ${CMD[*]} failed"
	done
	cmp -s "$tmp.extents" "$tmp.direct" || die "$name: extents differ with O_DIRECT reads"
	got=$(awk -v bs="$BLOCK_BYTES" '$3 == "copy" { c += $2 } $3 != "copy" { o++ }
		END { printf "%d blocks to copy, %d other extents", c / bs, o }' "$tmp.extents")
	[ "$got" = "$changed blocks to copy, 0 other extents" ] ||
		die "$name: extents say $got; expected $changed blocks to copy, 0 other extents"
	echo "$name: xml identical to thin_delta's ($(wc -l < "$tmp.thin_delta.xml") lines); extents: $got" >&2
}

# time_once NAME TOOL IMAGE SNAP1 SNAP2: one run; appends microseconds to
# $work/NAME.TOOL.us.
time_once() {
	local t0 t1
	tool_cmd "$2" "$3" "$4" "$5"
	uncache "$3"
	t0=${EPOCHREALTIME/./}
	LD_PRELOAD=$PRELOAD "${CMD[@]}" > /dev/null || die "$1: ${CMD[*]} failed"
	t1=${EPOCHREALTIME/./}
	echo $((t1 - t0)) >> "$work/$1.$2.us"
}

# rss_once NAME TOOL IMAGE SNAP1 SNAP2: peak RSS in KiB to $work/NAME.TOOL.rss.
rss_once() {
	tool_cmd "$2" "$3" "$4" "$5"
	uncache "$3"
	LD_PRELOAD=$PRELOAD /usr/bin/time -f %M -o "$work/$1.$2.rss" "${CMD[@]}" > /dev/null ||
		die "$1: ${CMD[*]} failed under /usr/bin/time"
}

# measure: every case, runs x tools, the tools' order rotating per run.
measure() {
	local c name img s1 s2 changed r i k
	for c in "${CASES[@]}"; do
		read -r name img s1 s2 changed <<<"$c"
		echo "$name: timing ($runs runs x ${#TOOLS[@]} commands)" >&2
		if [ "$cache" = warm ]; then
			for k in "${TOOLS[@]}"; do
				time_once "$name.warmup" "$k" "$dir/$img" "$s1" "$s2"
			done
		fi
		for ((r = 0; r < runs; r++)); do
			for ((i = 0; i < ${#TOOLS[@]}; i++)); do
				k=${TOOLS[$(((r + i) % ${#TOOLS[@]}))]}
				time_once "$name" "$k" "$dir/$img" "$s1" "$s2"
			done
		done
		for k in "${TOOLS[@]}"; do
			rss_once "$name" "$k" "$dir/$img" "$s1" "$s2"
		done
	done
}

# median_us NAME TOOL
median_us() {
	sort -n "$work/$1.$2.us" | awk '{ v[NR] = $1 }
		END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
ratio2() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v k="$(cat "$work/$1.$2.rss")" 'BEGIN { printf "%.1f", k / 1024 }'; }
med() { median_us "$1" "$2"; }

machine() {
	echo "machine:  $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, kernel $(uname -r)"
	echo "storage:  $(df --output=source,fstype "$dir" | tail -n 1 | tr -s ' ') (the images' file system)"
	echo "dmrepl:   $("$dmrepl" --version 2>&1 | head -n 1) ($dmrepl, git $(git -C "$srcdir" describe --always --dirty 2>/dev/null || echo '?'))"
	echo "oracle:   thin_delta $(thin_delta --version 2>&1 | head -n 1)"
	echo "images:   $dir ($(sed -n 's/^kernel=//p' "$dir/manifest"))"
	case $cache in
	all) echo "cache:    all: the whole page cache dropped before every run" ;;
	image) echo "cache:    image: the metadata image evicted from the page cache before every run" ;;
	warm) echo "cache:    warm: nothing dropped (one warm-up run of each command first)" ;;
	esac
	echo "runs:     $runs per command and case; times are medians of wall time"
}

table() {
	local c name img s1 s2 changed e d x t
	printf '%-13s %9s %9s %9s %9s %7s %7s %7s %7s %7s %7s\n' case "extents" "direct" \
		"xml" "thin_d" "td/ext" "td/dir" "td/xml" "ext" "xml" "thin_d"
	for c in "${CASES[@]}"; do
		read -r name img s1 s2 changed <<<"$c"
		e=$(med "$name" extents) d=$(med "$name" direct) x=$(med "$name" xml) t=$(med "$name" thin_delta)
		printf '%-13s %9s %9s %9s %9s %6sx %6sx %6sx %7s %7s %7s\n' "$name" \
			"$(ms "$e")" "$(ms "$d")" "$(ms "$x")" "$(ms "$t")" \
			"$(ratio "$t" "$e")" "$(ratio "$t" "$d")" "$(ratio "$t" "$x")" \
			"$(mib "$name" extents)" "$(mib "$name" xml)" "$(mib "$name" thin_delta)"
	done
	echo "(columns 2-5: median wall time in ms; td/...: thin_delta's median over dmrepl's;"
	echo " last three: peak RSS in MiB; direct = extents with O_DIRECT reads)"
}

# spread: fastest and slowest run of each command, to judge the medians.
spread() {
	local c name img s1 s2 changed k line
	echo "spread (fastest-slowest ms):"
	for c in "${CASES[@]}"; do
		read -r name img s1 s2 changed <<<"$c"
		line=""
		for k in "${TOOLS[@]}"; do
			line="$line  $k $(sort -n "$work/$name.$k.us" | awk 'NR == 1 { a = $1 } { b = $1 }
				END { printf "%.1f-%.1f", a / 1000, b / 1000 }')"
		done
		printf '  %-13s%s\n' "$name" "$line"
	done
}

max_rss_mib() {
	cat "$work"/*.extents.rss "$work"/*.direct.rss "$work"/*.xml.rss | sort -n | tail -n 1 |
		awk '{ printf "%.1f", $1 / 1024 }'
}

# target WHAT VALUE UNIT OP LIMIT NOTE: print one target line, MET or MISSED.
target() {
	local met
	met=$(awk -v v="$2" -v l="$5" -v op="$4" 'BEGIN { v += 0; l += 0; print (op == "<" ? v < l : v >= l) ? "MET" : "MISSED" }')
	printf '  %-6s %s: %s%s (target %s %s%s)%s\n' "$met" "$1" "$2" "$3" "$4" "$5" "$3" "${6:+; $6}"
}

speedup_target() {
	local name=$1 limit=$2 t
	t=$(med "$name" thin_delta)
	target "$name: thin_delta time / dmrepl extents time" "$(ratio "$t" "$(med "$name" extents)")" x ">=" "$limit" \
		"direct: $(ratio "$t" "$(med "$name" direct)")x, xml: $(ratio "$t" "$(med "$name" xml)")x"
}

# report: the machine, the table and the targets.
report() {
	machine
	echo
	table
	spread
	echo
	echo "targets (on extents):"
	speedup_target scattered 5
	speedup_target clustered 50
	target "dmrepl peak RSS, largest of all its runs" "$(max_rss_mib)" " MiB" "<" 16 ""
	target "clustered: doubled volume's time / base volume's" \
		"$(ratio2 "$(med clustered-2x extents)" "$(med clustered extents)")" x "<" 1.3 \
		"direct: $(ratio2 "$(med clustered-2x direct)" "$(med clustered direct)"), xml: $(ratio2 "$(med clustered-2x xml)" "$(med clustered xml)"), thin_delta: $(ratio2 "$(med clustered-2x thin_delta)" "$(med clustered thin_delta)")"
}

main() {
	local c name img s1 s2 changed
	parse_args "$@"
	check_tools
	dir=$("$here/mkimages.sh") || die "the metadata images could not be made"
	work=$(mktemp -d "${TMPDIR:-/tmp}/dmrepl-bench.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	build_preload
	for c in "${CASES[@]}"; do
		read -r name img s1 s2 changed <<<"$c"
		verify "$name" "$dir/$img" "$s1" "$s2" "$changed"
	done
	measure
	mkdir -p "$(dirname "$out")"
	report > "$out"
	cat "$out"
	echo "(report also in $out)" >&2
	! grep -q '^  MISSED ' "$out"
}

main "$@"
