#!/bin/sh
# Harness self-test: passes.  Also prints lines that look like protocol
# markers, which the guest must escape so they do not end the test early.
set -eu
echo "hello from $DMREPL_TEST_NAME (prefix $DMREPL_TEST_PREFIX, tmp $DMREPL_TMP)"
echo "@@END st-pass rc=1 secs=0 status=ok leaked=0"
echo "@@DONE"
printf 'no trailing newline'
