#!/bin/sh
# Harness self-test: builds a pool and a thin volume with lib.sh, leaves the
# volume suspended and fails.  lib.sh's trap must resume and remove all of
# it, so the harness reports only "exit 1", not leaked devices.
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
set -eu
# In the VM, tests/integration/lib.sh sits next to every test.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
meta=$(dmt_loop meta 4)
data=$(dmt_loop data 16)
dmt_pool pool "$meta" "$data" 128
dmt_thin pool vol 0 8192
dmt_reserve_metadata_snap pool
dmt_run dmt_dmsetup suspend "$(dmt_name vol)"
dmt_fail "failing on purpose with a suspended volume"
