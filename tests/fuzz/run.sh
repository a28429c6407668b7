#!/bin/sh
# Build the metadata fuzz target with clang and libFuzzer (address and
# undefined-behaviour sanitizers), straight from the library sources,
# and run it from the seed corpus.
#
#   tests/fuzz/run.sh [SECONDS] [LIBFUZZER-OPTION...]
#
# SECONDS defaults to 30. New inputs go to $FUZZ_OUT/corpus (default
# build-fuzz/ at the top of the tree), never into the seed corpus; a
# crash leaves its input in $FUZZ_OUT and makes the exit status non-zero.
# Exit 77 when clang is missing.
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
mkdir -p "$out/corpus"
printf '#define PACKAGE_VERSION "fuzz"\n' >"$out/config.h"

"$CC" -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -D_GNU_SOURCE \
	-include "$out/config.h" -I"$out" -I"$top/lib" \
	"$here/fuzz-metadata.c" \
	"$top/lib/context.c" "$top/lib/crc32c.c" "$top/lib/metadata.c" \
	"$top/lib/btree.c" "$top/lib/thin.c" "$top/lib/delta.c" \
	-o "$out/fuzz-metadata"

# Seed images are at most 34 blocks of 4 KiB: allow up to 40.
exec "$out/fuzz-metadata" -max_total_time="$seconds" -max_len=163840 \
	-timeout=10 -rss_limit_mb=1024 -artifact_prefix="$out/" "$@" \
	"$out/corpus" "$here/corpus-metadata"
