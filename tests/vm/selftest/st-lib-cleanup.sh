#!/bin/sh
# Harness self-test: builds a pool and thin volumes with lib.sh, leaves the
# volumes AND the pool suspended and fails.  lib.sh's trap must resume them
# in order (the pool first: a thin device resumed over a suspended pool
# blocks for ever; "a0" sorts before "pool" on purpose) and remove all of
# it, so the harness reports only "exit 1", not a timeout or leaked devices.
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
set -eu
# In the VM, tests/integration/lib.sh sits next to every test.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
meta=$(dmt_loop meta 4)
data=$(dmt_loop data 16)
dmt_pool pool "$meta" "$data" 128
dmt_thin pool vol 0 8192
dmt_thin pool a0 1 8192
dmt_reserve_metadata_snap pool
dmt_run dmt_dmsetup suspend "$(dmt_name vol)"
dmt_run dmt_dmsetup suspend "$(dmt_name a0)"
dmt_run dmt_dmsetup suspend "$(dmt_name pool)"
dmt_fail "failing on purpose with suspended volumes and pool"
