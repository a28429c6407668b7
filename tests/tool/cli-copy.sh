#!/bin/sh
# dmrepl copy on files: whole copies, extents lists from a file and from
# stdin, bad lines named by number, usage errors, --json, the failing
# destination, and SIGINT.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

head -c 3145728 /dev/urandom >"$tmp/src" && head -c 100 /dev/urandom >>"$tmp/src" || exit 99
head -c 3145828 /dev/urandom >"$tmp/old" || exit 99

expect "help"                 0 '^Usage:'                 -- copy --help
expect "no operands"          2 'expected SRC and DST'    -- copy
expect "bad engine"           2 "unknown engine 'x'"      -- copy --engine=x a b
expect "bad io size"          2 'io-size'                 -- copy --io-size 1000 a b
expect "bad queue depth"      2 'queue-depth'             -- copy --queue-depth 0 a b
expect "bad bwlimit"          2 'bwlimit'                 -- copy --bwlimit 10Q a b
expect "bad ionice"           2 'ionice'                  -- copy --ionice 9 a b
expect "missing source"       1 "$tmp/nothere"            -- copy "$tmp/nothere" "$tmp/x"

for engine in uring aio sync; do
	rm -f "$tmp/dst"
	expect "whole copy ($engine)" 0 "info: engine $engine, queue depth 32, 64 KiB I/Os" \
		-- -v copy -q --engine=$engine --io-size 64K "$tmp/src" "$tmp/dst"
	check "whole copy equal ($engine)" cmp -s "$tmp/src" "$tmp/dst"
done

# An extents list, against the same edits made with dd.
cp "$tmp/old" "$tmp/dst" && cp "$tmp/old" "$tmp/want" || exit 99
printf '%s\n' '4096 8192 copy' '20000 3 discard' '' '65536 1048576 copy' \
	'2097152 65536 discard' '3145700 128 copy' >"$tmp/ext"
dd if="$tmp/src" of="$tmp/want" bs=1 skip=4096 seek=4096 count=8192 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$tmp/want" bs=1 seek=20000 count=3 conv=notrunc 2>/dev/null
dd if="$tmp/src" of="$tmp/want" bs=65536 skip=1 seek=1 count=16 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$tmp/want" bs=65536 seek=32 count=1 conv=notrunc 2>/dev/null
dd if="$tmp/src" of="$tmp/want" bs=1 skip=3145700 seek=3145700 count=128 conv=notrunc 2>/dev/null
expect "extents file"         0 'engine uring, queue depth 32, 1 MiB I/Os' -- -v copy --extents "$tmp/ext" "$tmp/src" "$tmp/dst"
check "extents file result" cmp -s "$tmp/want" "$tmp/dst"

cp "$tmp/old" "$tmp/dst" || exit 99
"$DMREPL" copy --extents - "$tmp/src" "$tmp/dst" <"$tmp/ext" >"$tmp/out" 2>&1
check "extents on stdin" cmp -s "$tmp/want" "$tmp/dst"

printf '0 4096 copy\n4096 x copy\n' >"$tmp/bad"
cp "$tmp/old" "$tmp/dst" || exit 99
expect "bad line named"       1 'bad, line 2: expected a length' -- copy --extents "$tmp/bad" "$tmp/src" "$tmp/dst"
check "bad list copies nothing" cmp -s "$tmp/old" "$tmp/dst"
printf '3145000 10000 copy\n' >"$tmp/past"
expect "extent past the end"  1 'past the end'            -- copy --extents "$tmp/past" "$tmp/src" "$tmp/dst"
expect "failing destination"  1 'write /dev/full at offset [0-9]* (.*No space left' -- copy --engine=sync "$tmp/src" /dev/full

expect "json result"          0 '"type":"result","ok":true,"exit_status":0,"engine":"sync"' \
	-- copy --json --engine=sync --extents "$tmp/ext" "$tmp/src" "$tmp/dst"
expect "json copied bytes"    0 '"copied_bytes":1056896,' \
	-- copy --json --extents "$tmp/ext" "$tmp/src" "$tmp/dst"
expect "json failure"         1 '"ok":false,"error":"write /dev/full at offset [0-9]* ([0-9]* bytes): No space left on device","errno":"ENOSPC","exit_status":1' \
	-- copy --json --engine=uring "$tmp/src" /dev/full

# SIGINT cancels: 128 + 2.
"$DMREPL" copy -q --bwlimit 512K "$tmp/src" "$tmp/dst" 2>"$tmp/err" &
pid=$!
sleep 1
kill -INT "$pid"
wait "$pid"
rc=$?
check "SIGINT exits 130 (got $rc)" [ "$rc" -eq 130 ]
check "SIGINT message" grep -q 'interrupted by signal 2' "$tmp/err"

expect_done
