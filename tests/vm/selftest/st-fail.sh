#!/bin/sh
# Harness self-test: fails with exit status 1.
echo "about to fail on purpose"
exit 1
