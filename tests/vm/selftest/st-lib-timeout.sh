#!/bin/sh
# dmrepl-timeout: 5
# Harness self-test: builds a pool with lib.sh and hangs; when the guest
# kills it on timeout (SIGTERM), lib.sh's trap must still clean up.
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
set -eu
# In the VM, tests/integration/lib.sh sits next to every test.
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
meta=$(dmt_loop meta 4)
data=$(dmt_loop data 16)
dmt_pool pool "$meta" "$data" 128
dmt_thin pool vol 0 8192
echo "pool ready; hanging"
sleep 600
