#!/bin/sh
# The Quick start's main job, also run as a test: a thin pool on a real
# kernel, a volume, a snapshot, more writes, and the snapshot's delta as
# dmrepl computes it from the live pool, checked against thin_delta.
set -eu
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require dmrepl thin_delta losetup blockdev

BLOCK_SECTORS=128                       # 64 KiB pool blocks
BLOCK_BYTES=$((BLOCK_SECTORS * 512))
VOLUME_SECTORS=$((1024 * BLOCK_SECTORS)) # a 64 MiB thin volume
VOL_ID=1
SNAP_ID=2

say() { printf '\n## %s\n' "$*"; }

say "a thin pool: 8 MiB metadata, 256 MiB data, 64 KiB blocks"
meta=$(dmt_loop meta 8)
dmt_pool pool "$meta" "$(dmt_loop data 256)" "$BLOCK_SECTORS"
dmt_dmsetup table "$(dmt_name pool)"

say "thin volume $VOL_ID (64 MiB): write blocks 0-99 and 500-509"
dmt_thin pool vol "$VOL_ID" "$VOLUME_SECTORS"
vol=$(dmt_dev vol)
dd if=/dev/urandom of="$vol" bs="$BLOCK_BYTES" count=100 oflag=direct 2>/dev/null
dd if=/dev/urandom of="$vol" bs="$BLOCK_BYTES" seek=500 count=10 oflag=direct 2>/dev/null

say "snapshot $SNAP_ID of volume $VOL_ID, taken with the volume suspended"
dmt_snap pool vol "$SNAP_ID" "$VOL_ID"

say "more writes to the volume: overwrite 10-19, new 700-703, discard 505-509"
dd if=/dev/urandom of="$vol" bs="$BLOCK_BYTES" seek=10 count=10 oflag=direct 2>/dev/null
dd if=/dev/urandom of="$vol" bs="$BLOCK_BYTES" seek=700 count=4 oflag=direct 2>/dev/null
dmt_discard_blocks "$vol" "$BLOCK_BYTES" 505 506 507 508 509

say "dmrepl ls --pool $(dmt_name pool)"
dmrepl ls --pool "$(dmt_name pool)"

say "dmrepl delta --pool $(dmt_name pool) --snap1 $SNAP_ID --snap2 $VOL_ID"
ours=$(dmrepl delta --pool "$(dmt_name pool)" --snap1 "$SNAP_ID" --snap2 "$VOL_ID")
echo "$ours"
dmt_assert_eq - "$(dmt_pool_held_root pool)" "dmrepl released the metadata snapshot"

say "the extents a replica of snapshot $SNAP_ID needs to become volume $VOL_ID"
dmrepl delta --pool "$(dmt_name pool)" --snap1 "$SNAP_ID" --snap2 "$VOL_ID" --format=extents

say "checked against thin_delta (thin-provisioning-tools) on the same metadata"
dmt_reserve_metadata_snap pool
rc=0
theirs=$(thin_delta -m --snap1 "$SNAP_ID" --snap2 "$VOL_ID" "$meta") || rc=$?
dmt_release_metadata_snap pool
dmt_assert_eq 0 "$rc" "thin_delta exit status"
dmt_assert_text_eq "$theirs" "$ours" "dmrepl delta equals thin_delta"

expected='    <same begin="0" length="10"/>
    <different begin="10" length="10"/>
    <same begin="20" length="80"/>
    <same begin="500" length="5"/>
    <left_only begin="505" length="5"/>
    <right_only begin="700" length="4"/>'
dmt_assert_text_eq "$expected" "$(echo "$ours" | grep '^    <')" "runs implied by the writes"
say "dmrepl's delta matches thin_delta and the writes: OK"
