#!/bin/sh
# The progress bar on a terminal (script(1) gives the pipeline a pseudo-
# terminal): in `dmrepl send | dmrepl receive`, where both ends share the
# terminal, exactly one of them draws its bar, and the stream arrives
# whole.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"
command -v script >/dev/null 2>&1 || { echo "SKIP: script(1) not found (bsdutils)"; exit 77; }

head -c 3145728 /dev/urandom >"$tmp/src" || exit 99
truncate -s 3145728 "$tmp/dst" || exit 99
script -qec "\"$DMREPL\" send --device \"$tmp/src\" | \"$DMREPL\" receive --device \"$tmp/dst\"" \
	"$tmp/typescript" >/dev/null 2>&1
check "the stream arrived whole" cmp -s "$tmp/src" "$tmp/dst"
# each redraw starts with a carriage return and the operation's name
tr '\r' '\n' <"$tmp/typescript" | sed -n 's/^\(send\|receive\) .*%.*/\1/p' | sort -u >"$tmp/bars"
check "a bar was drawn" test -s "$tmp/bars"
check "by one end only" test "$(wc -l <"$tmp/bars")" -eq 1
cat "$tmp/bars" | sed 's/^/  drew: /'

expect_done
