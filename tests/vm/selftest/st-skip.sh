#!/bin/sh
# Harness self-test: is skipped (exit status 77).
echo "dmt: SKIP: selftest skips on purpose"
exit 77
