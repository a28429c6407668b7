#!/bin/sh
# dmrepl-timeout: 600
# Harness self-test: hangs longer than the whole VM may run; the host must
# stop qemu at --vm-timeout and report the test as failed.
echo "sleeping longer than the VM may run"
sleep 600
