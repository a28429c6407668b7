#!/bin/sh
# dmrepl verify --pool SRC --snap ID --to-pool DST: a snapshot against
# its replica, found in the destination's lineage records.
#
#  1. Right after replication: equal over the snapshot's mapped extents
#     (the default) and --whole; the JSON result names the replica.
#  2. A block written into the replica by hand, where the snapshot maps
#     data: exit 1, the range reported (1 MiB chunks, and exact with
#     --chunk-size), and a warning that the replica was written to. A
#     block written where the snapshot maps nothing is seen by --whole
#     only.
#  3. A snapshot with no replica, and a source id deleted and reused:
#     exit 3 with a message that says so.
#  4. SIGTERM during a long --whole comparison: exit 143.
# After each command: no dmrepl-* device left, and no metadata snapshot
# held in either pool.
#
# dmrepl-timeout: 300
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev dmrepl

BLOCK_BYTES=65536
VOL_MIB=48
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
MiB=1048576
STATE=$DMT_TMP/state

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 96)" $((BLOCK_BYTES / 512))
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 96)" $((BLOCK_BYTES / 512))
dmt_thin src origin 1 "$VOL_SECTORS"
SRC=$(dmt_name src) DST=$(dmt_name dst)

# 8 MiB of random data and two blocks far out: 130 mapped blocks.
dd if=/dev/urandom of="$(dmt_dev origin)" bs=1M count=8 oflag=direct 2>/dev/null
dmt_write_blocks "$(dmt_dev origin)" $BLOCK_BYTES a 500 700
MAPPED_BYTES=$((130 * BLOCK_BYTES))
S1=$(dmrepl snapshot --pool "$SRC" --origin 1)
dmrepl replicate --pool "$SRC" --snap "$S1" --to-pool "$DST" --size "$VOL_BYTES" \
	--state-dir "$STATE" --json > "$DMT_TMP/rep"
dmt_json_capture replicate "$DMT_TMP/rep" 0
R1=$(tail -n 1 "$DMT_TMP/rep" | sed -n 's/.*"replica":\([0-9]*\).*/\1/p')
[ -n "$R1" ] || dmt_fail "no replica id in: $(cat "$DMT_TMP/rep")"

# nothing_left WHAT: no device of dmrepl's own, no held metadata snapshot.
nothing_left() {
	dmt_assert_eq "" "$(dmt_dmrepl_devices)" "$1: no dmrepl devices left"
	dmt_assert_eq - "$(dmt_pool_held_root src)" "$1: source metadata snapshot released"
	dmt_assert_eq - "$(dmt_pool_held_root dst)" "$1: destination metadata snapshot released"
}

# run_verify EXPECTED_RC ARGS...: dmrepl verify --pool ... ARGS, output in $out.
run_verify() {
	_want=$1
	shift
	echo "+ dmrepl verify --pool $SRC --to-pool $DST $*" >&2
	_rc=0
	dmrepl verify --pool "$SRC" --to-pool "$DST" --state-dir "$STATE" "$@" \
		> "$DMT_TMP/verify.out" 2> "$DMT_TMP/verify.err" || _rc=$?
	out=$(cat "$DMT_TMP/verify.out" "$DMT_TMP/verify.err")
	case " $* " in
	*" --json "*) dmt_json_capture verify "$DMT_TMP/verify.out" "$_rc" ;;
	esac
	printf '%s\n' "$out" | sed 's/^/  | /' >&2
	dmt_assert_eq "$_want" "$_rc" "exit status of dmrepl verify $*"
	nothing_left "verify $*"
}

has() {
	printf '%s\n' "$out" | grep -qxF -e "$1" || dmt_fail "$2: no line '$1'"
}

contains() {
	printf '%s\n' "$out" | grep -qF -e "$1" || dmt_fail "$2: no '$1'"
}

L1="thin $S1 of $SRC" L2="thin $R1 of $DST"

echo "## 1. equal right after replication"
run_verify 0 --snap "$S1"
has "$L1 and $L2 are equal: $MAPPED_BYTES bytes compared" "mapped extents"
run_verify 0 --snap "$S1" --whole
has "$L1 and $L2 are equal: $VOL_BYTES bytes compared" "whole"
run_verify 0 --snap "$S1" --json -q
contains "\"equal\":true,\"compared_bytes\":$MAPPED_BYTES," "JSON result"
contains "\"src_pool\":\"$(hostname):$SRC\",\"snap\":$S1,\"replica\":$R1,\"size_bytes\":$VOL_BYTES}" "JSON names the replica"

echo "## 2. the replica written to by hand"
dmt_create w "0 $VOL_SECTORS thin $(dmt_dev dst) $R1"
dmt_write_blocks "$(dmt_dev w)" $BLOCK_BYTES x 3 760
dmt_remove w
run_verify 1 --snap "$S1"
has "$L1 and $L2 differ: $MiB of $MAPPED_BYTES bytes compared, in 1 range" "summary"
has "  offset 0 length $MiB" "the 1 MiB chunk holding block 3"
contains "was written to since it was received" "warning"
run_verify 1 --snap "$S1" --chunk-size $BLOCK_BYTES
has "  offset $((3 * BLOCK_BYTES)) length $BLOCK_BYTES" "exactly block 3"
# Block 760 is not mapped in the snapshot: only --whole sees it.
run_verify 1 --snap "$S1" --whole --chunk-size $BLOCK_BYTES
has "$L1 and $L2 differ: $((2 * BLOCK_BYTES)) of $VOL_BYTES bytes compared, in 2 ranges" "whole: two ranges"
has "  offset $((760 * BLOCK_BYTES)) length $BLOCK_BYTES" "whole: block 760"
run_verify 1 --snap "$S1" --json -q --chunk-size $BLOCK_BYTES
contains "\"mismatches\":[{\"offset_bytes\":$((3 * BLOCK_BYTES)),\"length_bytes\":$BLOCK_BYTES}]," "JSON mismatch"

echo "## 3. no replica; the source id reused"
S2=$(dmrepl snapshot --pool "$SRC" --origin 1)
run_verify 3 --snap "$S2"
contains "$DST holds no replica of thin $S2 of $SRC" "no replica"
run_verify 3 --snap "$S2" --json -q
contains '{"type":"result","ok":false,' "JSON: a failed result"
dmt_message src "delete $S1"
dmt_write_blocks "$(dmt_dev origin)" $BLOCK_BYTES b 5
dmrepl snapshot --pool "$SRC" --origin 1 --id "$S1" >/dev/null
run_verify 3 --snap "$S1"
contains "thin $S1 of $SRC is not the snapshot that thin $R1 of $DST replicates" "source id reused"

echo "## 4. SIGTERM during a long comparison"
dmt_message src "delete $S1"
S3=$(dmrepl snapshot --pool "$SRC" --origin 1)
dmrepl replicate --pool "$SRC" --snap "$S3" --to-pool "$DST" --size "$VOL_BYTES" \
	--state-dir "$STATE" -q
# 16 GiB, nearly all unmapped: seconds of reading zeroes.
dmrepl verify --pool "$SRC" --snap "$S3" --to-pool "$DST" --state-dir "$STATE" \
	--whole --size 16G -q > "$DMT_TMP/out" 2>&1 &
pid=$!
sleep 2
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
sed 's/^/  | /' "$DMT_TMP/out" >&2
dmt_assert_eq 143 "$rc" "exit status after SIGTERM"
grep -q 'interrupted by signal 15' "$DMT_TMP/out" || dmt_fail "SIGTERM: no message"
nothing_left "after SIGTERM"
