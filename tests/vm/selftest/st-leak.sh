#!/bin/sh
# Harness self-test: exits 0 but leaves a device-mapper device behind; the
# harness must fail it (and remove the device).
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
set -eu
DM_DISABLE_UDEV=1 dmsetup create --noudevsync "${DMREPL_TEST_PREFIX}leak" --table "0 8 zero"
echo "created ${DMREPL_TEST_PREFIX}leak and did not remove it"
