#!/bin/sh
# Harness self-test: crashes the kernel.  Only ever inside the test VM.
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
echo "crashing the kernel"
echo c > /proc/sysrq-trigger
sleep 30
