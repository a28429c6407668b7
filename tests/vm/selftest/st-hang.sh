#!/bin/sh
# dmrepl-timeout: 3
# Harness self-test: hangs past its 3 s timeout; the guest must kill it.
echo "sleeping forever"
sleep 600
