#!/bin/sh
# Harness self-test: exits 0 but a kernel-style WARNING appears on the console
# while it runs (injected through /dev/kmsg); the harness must fail it.
[ "${DMREPL_IN_VM:-}" = 1 ] || { echo "dmt: SKIP: only runs in the test VM"; exit 77; }
echo "WARNING: CPU: 0 PID: $$ at selftest (injected by st-kmsg-warning)" > /dev/kmsg
exit 0
