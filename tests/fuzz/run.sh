#!/bin/sh
# Build the fuzz targets with clang and libFuzzer (address and
# undefined-behaviour sanitizers), straight from the library sources,
# and run each from its seed corpus:
#   fuzz-metadata  the thin-pool metadata reader and delta walk
#   fuzz-extents   the extents-list line parser (dmrepl copy --extents)
#   fuzz-lineage   the lineage records of the state directory
#   fuzz-lock      the per-pool lock record (metadata snapshot ownership)
#   fuzz-lvm       lvs' JSON answer (LVM names)
#   fuzz-stream    the replication stream reader (send/receive)
#   fuzz-conf      the sync jobs' configuration files (libinih)
#   fuzz-words     dmrepl serve's reading of SSH_ORIGINAL_COMMAND
#
#   tests/fuzz/run.sh [SECONDS] [LIBFUZZER-OPTION...]
#
# SECONDS (default 30) is split: half for the metadata reader, the rest
# shared by the extents, lineage, lock, lvs, stream and configuration
# parsers, at least one second
# each. New inputs go to $FUZZ_OUT/corpus, $FUZZ_OUT/corpus-extents and
# so on (default build-fuzz/ at the top of the tree), never into the seed
# corpora; a crash leaves its input in $FUZZ_OUT and makes the exit
# status non-zero. Exit 77 when clang is missing.
set -eu

seconds=${1:-30}
[ $# -gt 0 ] && shift
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CC=${FUZZ_CC:-clang}
out=${FUZZ_OUT:-$top/build-fuzz}

if ! command -v "$CC" >/dev/null 2>&1; then
	echo "SKIP: $CC not found (install clang and libclang-rt-dev)"
	exit 77
fi
mkdir -p "$out/corpus" "$out/corpus-extents" "$out/corpus-lineage" \
	"$out/corpus-lock" "$out/corpus-lvm" "$out/corpus-stream" "$out/corpus-conf" "$out/corpus-words"
printf '#define PACKAGE_VERSION "fuzz"\n' >"$out/config.h"

build() {	# TARGET SOURCES...
	target=$1
	shift
	"$CC" -g -O1 -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -D_GNU_SOURCE \
		-include "$out/config.h" -I"$out" -I"$top/lib" \
		"$here/$target.c" "$@" -o "$out/$target"
}

build fuzz-metadata "$top/lib/context.c" "$top/lib/crc32c.c" \
	"$top/lib/metadata.c" "$top/lib/btree.c" "$top/lib/thin.c" \
	"$top/lib/delta.c" "$top/lib/readahead.c" -luring
build fuzz-extents "$top/lib/context.c" "$top/lib/extents.c"
build fuzz-lineage "$top/lib/context.c" "$top/lib/lineage.c" "$top/lib/lock.c" \
	"$top/lib/sizes.c" "$top/lib/lvm.c" "$top/lib/dm.c" -ljson-c -ldevmapper
build fuzz-lock "$top/lib/context.c" "$top/lib/lock.c"
build fuzz-lvm "$top/lib/context.c" "$top/lib/lvm.c" "$top/lib/dm.c" -ljson-c -ldevmapper
build fuzz-stream "$top/lib/context.c" "$top/lib/stream.c" "$top/lib/ratelimit.c" \
	-lzstd -lxxhash
build fuzz-words "$top/tools/parse.c"
build fuzz-conf "$top/tools/conf.c" "$top/tools/parse.c" "$top/lib/context.c" \
	"$top/lib/lvm.c" "$top/lib/dm.c" -I"$top/tools" -linih -ljson-c -ldevmapper

md_seconds=$((seconds / 2))
[ "$md_seconds" -ge 1 ] || md_seconds=1
ext_seconds=$(((seconds - md_seconds) / 7))
[ "$ext_seconds" -ge 1 ] || ext_seconds=1
lin_seconds=$(((seconds - md_seconds) / 7))
[ "$lin_seconds" -ge 1 ] || lin_seconds=1
lock_seconds=$(((seconds - md_seconds) / 7))
[ "$lock_seconds" -ge 1 ] || lock_seconds=1
lvm_seconds=$(((seconds - md_seconds) / 7))
[ "$lvm_seconds" -ge 1 ] || lvm_seconds=1
conf_seconds=$(((seconds - md_seconds) / 7))
[ "$conf_seconds" -ge 1 ] || conf_seconds=1
words_seconds=$(((seconds - md_seconds) / 7))
[ "$words_seconds" -ge 1 ] || words_seconds=1
stream_seconds=$((seconds - md_seconds - ext_seconds - lin_seconds - lock_seconds - lvm_seconds - conf_seconds - words_seconds))
[ "$stream_seconds" -ge 1 ] || stream_seconds=1

# Seed images are at most 34 blocks of 4 KiB: allow up to 40.
"$out/fuzz-metadata" -max_total_time="$md_seconds" -max_len=163840 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/" "$@" \
	"$out/corpus" "$here/corpus-metadata"

"$out/fuzz-extents" -max_total_time="$ext_seconds" -max_len=4096 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/extents-" "$@" \
	"$out/corpus-extents" "$here/corpus-extents"

"$out/fuzz-lineage" -max_total_time="$lin_seconds" -max_len=4096 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/lineage-" "$@" \
	"$out/corpus-lineage" "$here/corpus-lineage"

"$out/fuzz-lock" -max_total_time="$lock_seconds" -max_len=512 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/lock-" "$@" \
	"$out/corpus-lock" "$here/corpus-lock"

"$out/fuzz-lvm" -max_total_time="$lvm_seconds" -max_len=4096 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/lvm-" "$@" \
	"$out/corpus-lvm" "$here/corpus-lvm"

"$out/fuzz-conf" -max_total_time="$conf_seconds" -max_len=4096 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/conf-" "$@" \
	"$out/corpus-conf" "$here/corpus-conf"

"$out/fuzz-words" -max_total_time="$words_seconds" -max_len=1024 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/words-" "$@" \
	"$out/corpus-words" "$here/corpus-words"

# Seed streams are under 10 KiB; 64 KiB leaves room for a few records.
exec "$out/fuzz-stream" -max_total_time="$stream_seconds" -max_len=65536 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/stream-" "$@" \
	"$out/corpus-stream" "$here/corpus-stream"
