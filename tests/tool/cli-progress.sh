#!/bin/sh
# The progress bar on a terminal (script(1) gives the commands a pseudo-
# terminal): in `dmrepl send | dmrepl receive`, where both ends share the
# terminal, exactly one of them draws its bar, and the stream arrives
# whole. After a copy, a one-line summary, on a terminal only.
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

# After a long command, on a terminal: one line of what moved, and how fast.
truncate -s 0 "$tmp/dst2" || exit 99
script -qec "\"$DMREPL\" copy \"$tmp/src\" \"$tmp/dst2\"" "$tmp/typescript2" >/dev/null 2>&1
check "copy: the summary on a terminal" grep -q 'copied 3.00 MiB, discarded 0 B, zeroed 0 B in [0-9.]* s ([0-9.]* [KMG]*i*B/s)' "$tmp/typescript2"
check "copy: the copy is exact" cmp -s "$tmp/src" "$tmp/dst2"
rm -f "$tmp/dst2"
"$DMREPL" copy "$tmp/src" "$tmp/dst2" >"$tmp/out" 2>"$tmp/err"
check "copy: no summary off a terminal" test ! -s "$tmp/err"
check "copy: nothing on stdout" test ! -s "$tmp/out"

expect_done
