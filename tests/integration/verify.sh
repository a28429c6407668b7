#!/bin/sh
# dmrepl verify on two thin devices of a live pool (block devices, read
# with O_DIRECT):
#
#  1. Two 64 MiB thin devices with the same blocks written (and the rest
#     unmapped) are equal: exit 0, whole and over extents, the two JSON
#     digests the same.
#  2. One 64 KiB block written on one side only: exit 1, the mismatching
#     range at 1 MiB granularity by default and exactly the block with
#     --chunk-size 65536, in text and in JSON.
#  3. Unaligned extents (O_DIRECT reads widened and clipped): a range next
#     to the change is equal; a 10-byte range inside it differs, reported
#     as those 10 bytes.
#  4. The last block of the device differs too: two ranges.
#  5. Devices of different sizes: exit 1 naming both sizes.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev dmrepl

BLOCK_BYTES=65536
THIN_SECTORS=131072             # 64 MiB
THIN_BYTES=$((THIN_SECTORS * 512))
MiB=1048576

meta=$(dmt_loop meta 8)
data=$(dmt_loop data 256)
dmt_pool pool "$meta" "$data" $((BLOCK_BYTES / 512))
dmt_thin pool a 1 $THIN_SECTORS
dmt_thin pool b 2 $THIN_SECTORS
dmt_thin pool small 3 $((THIN_SECTORS / 2))
A=$(dmt_dev a) B=$(dmt_dev b)

# run_verify EXPECTED_RC ARGS...: run dmrepl verify, output in $out.
run_verify() {
	_want=$1
	shift
	echo "+ dmrepl verify $*" >&2
	_rc=0
	out=$(dmrepl verify "$@" 2>&1) || _rc=$?
	printf '%s\n' "$out" | sed 's/^/  | /' >&2
	dmt_assert_eq "$_want" "$_rc" "exit status of dmrepl verify $*"
}

# has LINE WHAT: $out holds LINE exactly.
has() {
	printf '%s\n' "$out" | grep -qxF -e "$1" || dmt_fail "$2: no line '$1'"
}

# contains TEXT WHAT: $out holds TEXT somewhere.
contains() {
	printf '%s\n' "$out" | grep -qF -e "$1" || dmt_fail "$2: no '$1'"
}

echo "## 1. equal devices"
dmt_write_blocks "$A" $BLOCK_BYTES a 0 3 100 517 1023
dmt_write_blocks "$B" $BLOCK_BYTES a 0 3 100 517 1023
run_verify 0 "$A" "$B"
has "$A and $B are equal: $THIN_BYTES bytes compared" "equal devices"
run_verify 0 --whole --json "$A" "$B"
result=$(printf '%s\n' "$out" | grep '"type":"result"')
contains '{"type":"result","ok":true,"equal":true,"compared_bytes":67108864,"mismatched_bytes":0,"nr_mismatches":0,"mismatches":[],"digest":["' \
	"JSON result of equal devices"
d1=$(echo "$result" | sed 's/.*"digest":\["\([0-9a-f]*\)","\([0-9a-f]*\)"\].*/\1/')
d2=$(echo "$result" | sed 's/.*"digest":\["\([0-9a-f]*\)","\([0-9a-f]*\)"\].*/\2/')
dmt_assert_eq "$d1" "$d2" "digests of equal devices"
dmt_assert_eq 32 "${#d1}" "digest length"
printf '0 %d copy\n%d %d discard\n' $((4 * BLOCK_BYTES)) $((100 * BLOCK_BYTES)) $MiB >"$DMT_TMP/extents"
run_verify 0 --extents "$DMT_TMP/extents" "$A" "$B"
has "$A and $B are equal: $((4 * BLOCK_BYTES + MiB)) bytes compared" "equal extents"

echo "## 2. one block differs"
dmt_write_blocks "$B" $BLOCK_BYTES b 517
run_verify 1 "$A" "$B"
has "$A and $B differ: $MiB of $THIN_BYTES bytes compared, in 1 range" "summary"
has "  offset $((517 * BLOCK_BYTES / MiB * MiB)) length $MiB" "1 MiB range around block 517"
run_verify 1 --chunk-size $BLOCK_BYTES "$A" "$B"
has "  offset $((517 * BLOCK_BYTES)) length $BLOCK_BYTES" "exactly block 517"
run_verify 1 --json --quiet --chunk-size $BLOCK_BYTES "$A" "$B"
contains "\"equal\":false," "JSON: different"
contains "\"mismatches\":[{\"offset_bytes\":$((517 * BLOCK_BYTES)),\"length_bytes\":$BLOCK_BYTES}]," \
	"JSON mismatch of block 517"
# Extents that leave block 517 out see no difference.
printf '0 %d copy\n%d %d copy\n' $((517 * BLOCK_BYTES)) $((518 * BLOCK_BYTES)) $BLOCK_BYTES >"$DMT_TMP/around"
run_verify 0 -e "$DMT_TMP/around" "$A" "$B"

echo "## 3. unaligned extents"
printf '1000 5000 copy\n%d 1000 discard\n' $((517 * BLOCK_BYTES - 1000)) >"$DMT_TMP/near"
run_verify 0 -e "$DMT_TMP/near" "$A" "$B"
has "$A and $B are equal: 6000 bytes compared" "unaligned ranges next to the change"
printf '%d 10 copy\n' $((517 * BLOCK_BYTES + 12345)) >"$DMT_TMP/inside"
run_verify 1 -e - "$A" "$B" <"$DMT_TMP/inside"
has "  offset $((517 * BLOCK_BYTES + 12345)) length 10" "10 unaligned bytes inside the change"

echo "## 4. the last block too"
dmt_write_blocks "$B" $BLOCK_BYTES c 1023
run_verify 1 --chunk-size $BLOCK_BYTES "$A" "$B"
has "$A and $B differ: $((2 * BLOCK_BYTES)) of $THIN_BYTES bytes compared, in 2 ranges" "two ranges"
has "  offset $((1023 * BLOCK_BYTES)) length $BLOCK_BYTES" "the last block"

echo "## 5. sizes differ"
run_verify 1 "$A" "$(dmt_dev small)"
has "dmrepl verify: sizes differ: $A is $THIN_BYTES bytes, $(dmt_dev small) is $((THIN_BYTES / 2)) bytes" "sizes"
