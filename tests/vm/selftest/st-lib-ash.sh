#!/bin/sh
# Harness self-test: lib.sh under busybox ash, whose applets (losetup,
# blockdev, dd...) shadow the programs on PATH.  Builds a pool, a thin volume
# and a snapshot, holds and releases a metadata snapshot, and passes.
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
# shellcheck disable=SC2016 # expanded by the inner shell
exec busybox sh -c '
set -eu
# shellcheck source=tests/integration/lib.sh
. "$1"
meta=$(dmt_loop meta 4)
data=$(dmt_loop data 16)
dmt_pool pool "$meta" "$data" 128
dmt_thin pool vol 0 8192
dmt_write_blocks "$(dmt_dev vol)" 65536 X 0 3
dmt_snap pool vol 1 0
dmt_assert_blocks "$(dmt_dev vol)" 65536 X 0 3
dmt_reserve_metadata_snap pool
dmt_assert_match "[0-9]*" "$(dmt_pool_held_root pool)" "held metadata root"
dmt_release_metadata_snap pool
dmt_assert_eq - "$(dmt_pool_held_root pool)" "held metadata root after release"
echo "lib.sh works under busybox ash"
' st-lib-ash "$(dirname "$0")/lib.sh"
