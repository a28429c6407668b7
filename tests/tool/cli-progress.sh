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

# The same after send, receive and verify; in send | receive, sharing the
# terminal, one line: the end that drew the bar.
sum3='copied 3.00 MiB, discarded 0 B, zeroed 0 B in [0-9.]* s ([0-9.]* [KMG]*i*B/s)'
count() { tr '\r' '\n' <"$1" | grep -c "$2"; }
check "send | receive: one summary on the terminal" test "$(count "$tmp/typescript" "$sum3")" -eq 1
script -qec "\"$DMREPL\" send --device \"$tmp/src\" >\"$tmp/stream\"" "$tmp/ts-send" >/dev/null 2>&1
check "send: the summary on a terminal" test "$(count "$tmp/ts-send" "$sum3")" -eq 1
truncate -s 3145728 "$tmp/dst3" || exit 99
script -qec "\"$DMREPL\" receive --device \"$tmp/dst3\" <\"$tmp/stream\"" "$tmp/ts-recv" >/dev/null 2>&1
check "receive: the summary on a terminal" test "$(count "$tmp/ts-recv" "$sum3")" -eq 1
check "receive: the stream arrived" cmp -s "$tmp/src" "$tmp/dst3"
script -qec "\"$DMREPL\" verify \"$tmp/src\" \"$tmp/dst3\"" "$tmp/ts-verify" >/dev/null 2>&1
check "verify: the summary on a terminal" grep -q 'compared 3.00 MiB, 0 B differ in [0-9.]* s ([0-9.]* [KMG]*i*B/s)' "$tmp/ts-verify"
script -qec "\"$DMREPL\" send -q --device \"$tmp/src\" >\"$tmp/stream\"" "$tmp/ts-send-q" >/dev/null 2>&1
check "send -q: no summary" test "$(count "$tmp/ts-send-q" 'copied ')" -eq 0
script -qec "\"$DMREPL\" verify -q \"$tmp/src\" \"$tmp/dst3\"" "$tmp/ts-verify-q" >/dev/null 2>&1
check "verify -q: no summary" test "$(count "$tmp/ts-verify-q" 'compared ')" -eq 0
"$DMREPL" send --device "$tmp/src" >"$tmp/stream" 2>"$tmp/err"
check "send: no summary off a terminal" test ! -s "$tmp/err"
"$DMREPL" receive --device "$tmp/dst3" <"$tmp/stream" >"$tmp/out" 2>"$tmp/err"
check "receive: no summary off a terminal" test ! -s "$tmp/err"
"$DMREPL" verify "$tmp/src" "$tmp/dst3" >"$tmp/out" 2>"$tmp/err"
check "verify: no summary off a terminal" test ! -s "$tmp/err"

expect_done
