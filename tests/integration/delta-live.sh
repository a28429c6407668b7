#!/bin/sh
# The library's delta on metadata written by the kernel, where snapshots
# really share btree nodes with their origin: every ordered pair of three
# devices, read through a held metadata snapshot of the live pool, must
# print what thin_delta -m prints, and an extent walk must read fewer
# metadata blocks than a walk that reports same runs.
#
# Layout (64 KiB blocks): the origin (0) maps blocks 0-11999, so its tree
# has two levels (about 50 leaves). Snapshot 1 is taken, then the origin
# rewrites blocks 5 and 1000-1002, discards 1500-1599 and maps
# 13000-13099; snapshot 2 is taken, then the origin rewrites block 7. The
# data device is a zero target: only the metadata matters here.
#
# dmrepl-timeout: 300
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev blkdiscard thin_delta delta-dump dmrepl

BLOCK_SECTORS=128
BLOCK_BYTES=$((BLOCK_SECTORS * 512))
THIN_SECTORS=$((16384 * BLOCK_SECTORS))

meta=$(dmt_loop meta 16)
dmt_create data "0 $((32768 * BLOCK_SECTORS)) zero"
dmt_pool pool "$meta" "$(dmt_dev data)" "$BLOCK_SECTORS"
dmt_thin pool origin 0 "$THIN_SECTORS"
origin=$(dmt_dev origin)

echo "+ map origin blocks 0-11999" >&2
dd if=/dev/zero of="$origin" bs=1M count=750 oflag=direct 2>/dev/null ||
	dmt_fail "cannot write the origin"
dmt_snap pool origin 1 0
dmt_write_blocks "$origin" "$BLOCK_BYTES" B 5 1000 1001 1002
blkdiscard -o $((1500 * BLOCK_BYTES)) -l $((100 * BLOCK_BYTES)) "$origin" ||
	dmt_fail "discard failed"
dd if=/dev/zero of="$origin" bs="$BLOCK_BYTES" seek=13000 count=100 \
	oflag=direct conv=notrunc 2>/dev/null || dmt_fail "cannot write blocks 13000-13099"
dmt_snap pool origin 2 0
dmt_write_blocks "$origin" "$BLOCK_BYTES" C 7

dmt_reserve_metadata_snap pool
# thin_delta reads through the page cache, which the kernel's writes bypass.
blockdev --flushbufs "$meta"

# thin_delta -m prints nr_data_blocks="0": it reads the superblock copy of
# the snapshot, whose space maps the kernel zeroes. The library reports
# the live pool's size, so delta-dump's output is compared without that
# attribute; dmrepl delta prints what thin_delta prints, and is compared
# whole.
strip_size() { sed 's/ nr_data_blocks="[0-9]*"//'; }

for a in 0 1 2; do
	for b in 0 1 2; do
		want=$(thin_delta -m --snap1 "$a" --snap2 "$b" "$meta" | strip_size) ||
			dmt_fail "thin_delta -m --snap1 $a --snap2 $b failed"
		got=$(delta-dump -m "$meta" "$a" "$b" | strip_size) ||
			dmt_fail "delta-dump -m $a $b failed"
		dmt_assert_text_eq "$want" "$got" "delta $a -> $b equals thin_delta -m"
		want=$(thin_delta -m --snap1 "$a" --snap2 "$b" "$meta")
		got=$(dmrepl delta -m --format=xml --snap1 "$a" --snap2 "$b" "$meta") ||
			dmt_fail "dmrepl delta -m --snap1 $a --snap2 $b failed"
		dmt_assert_text_eq "$want" "$got" "dmrepl delta $a -> $b equals thin_delta -m"
	done
done
echo "every pair matches thin_delta -m"
thin_delta -m --snap1 1 --snap2 0 "$meta"

# Metadata blocks read by a walk: delta-dump OPTIONS A B.
reads() {
	DMREPL_LOG=debug delta-dump -m "$@" 2>&1 >/dev/null |
		sed -n 's/.* after \([0-9]*\) block reads.*/\1/p'
}
runs=$(reads "$meta" 1 0)
extents=$(reads -e "$meta" 1 0)
echo "metadata blocks read, snapshot 1 -> origin: $runs with same runs, $extents for extents"
[ -n "$runs" ] && [ -n "$extents" ] || dmt_fail "no block counts in the debug log"
[ "$extents" -lt $((runs / 2)) ] ||
	dmt_fail "the extent walk read $extents blocks, not fewer than half of $runs"

dmt_release_metadata_snap pool
