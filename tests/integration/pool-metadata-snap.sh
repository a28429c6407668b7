#!/bin/sh
# libdmrepl against a live pool: status, the metadata snapshot that
# dmrepl_metadata_open_pool() reserves and its last unref releases, the
# per-pool lock (a second open gets -EBUSY), recovery of a snapshot left by
# a killed holder, a read-only pool, and a snapshot held by another tool (dmsetup) that must
# be refused with a message saying how to release it, and left alone.
# Runs tests/integration/dm-pool-test (pass it with --bin).
set -eu
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev dm-pool-test

BLOCK_SECTORS=128                   # 64 KiB
BLOCK_BYTES=$((BLOCK_SECTORS * 512))
THIN_SECTORS=$((256 * BLOCK_SECTORS))

# The lock files go to scratch space, not the host's /var/lib/dmrepl.
DMREPL_RUN_DIR="$DMT_TMP/run"
DMREPL_LOCK_DIR="$DMT_TMP/locks"
export DMREPL_RUN_DIR DMREPL_LOCK_DIR

# The metadata device is a dm device, as LVM's tmeta is: without udev its
# only node is devtmpfs's /dev/dm-N, which the library must find.
meta_loop=$(dmt_loop meta 8)
dmt_create meta "0 $(dmt_sectors "$meta_loop") linear $meta_loop 0"
meta=$(dmt_dev meta)
data=$(dmt_loop data 64)
dmt_pool pool "$meta" "$data" "$BLOCK_SECTORS"
dmt_thin pool thin0 0 "$THIN_SECTORS"
dmt_write_blocks "$(dmt_dev thin0)" "$BLOCK_BYTES" A 0 1 2
pool=$(dmt_name pool)

echo "+ dm-pool-test status $pool" >&2
st=$(dm-pool-test status "$pool") || dmt_fail "dm-pool-test status failed: $st"
echo "$st"
dmt_assert_match "metadata_path=/dev/dm-*" "$st" "metadata device found by its kernel name"
dmt_assert_match "*held_metadata_root=0*" "$st" "no snapshot held at start"
dmt_assert_match "*data_blocks=3/1024*" "$st" "three data blocks used"
dmt_assert_match "*read_only=0*fail=0*" "$st" "pool is healthy"

# In the VM, nothing else needs /dev: take the metadata device's node away,
# and the library must make its own in the run directory.
if [ "${DMREPL_IN_VM:-}" = 1 ]; then
	node=$(echo "$st" | sed -n 's/^metadata_path=//p')
	devno=$(cat "/sys/class/block/${node#/dev/}/dev")
	dmt_run rm "$node"
	rc=0
	st=$(dm-pool-test status "$pool") || rc=$?
	dmt_run mknod "$node" b "${devno%:*}" "${devno#*:}"
	echo "$st"
	dmt_assert_eq 0 "$rc" "dm-pool-test status without a /dev node"
	dmt_assert_match "*metadata_path=$DMREPL_RUN_DIR/blk-$devno*" "$st" "private node made"
fi

dmt_run dm-pool-test run "$pool" "$(dmt_name thin0)"
dmt_assert_eq - "$(dmt_pool_held_root pool)" "no snapshot held after run"

# Reserved by hand: refused whatever a dead dmrepl's record says, and
# never released while a reader has the metadata device open; released
# only for a RESERVING record with no reader (the documented window).
dmt_reserve_metadata_snap pool
rc=0
dm-pool-test external "$pool" || rc=$?
dmt_assert_eq 0 "$rc" "dm-pool-test external"
dmt_assert_eq - "$(dmt_pool_held_root pool)" "no snapshot held at the end"

# A read-only pool accepts no messages: refused before any reservation.
dmt_remove thin0
len=$(dmt_sectors "$data")
len=$((len / BLOCK_SECTORS * BLOCK_SECTORS))
dmt_run dmt_dmsetup reload "$pool" --table "0 $len thin-pool $meta $data $BLOCK_SECTORS 0 1 read_only"
dmt_run dmt_dmsetup resume "$pool"
dmt_run dm-pool-test readonly "$pool"
dmt_assert_eq - "$(dmt_pool_held_root pool)" "no snapshot held on the read-only pool"

# The lock files stay (never unlinked) and record no reservation.
dmt_assert_match "*state=none*" "$(cat "$DMREPL_LOCK_DIR/$pool.lock")" "lock record cleared"
