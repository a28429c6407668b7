#!/bin/sh
# dmrepl verify on files: exit codes (0 equal, 1 different or failed,
# 2 usage), the mismatching ranges it prints, --extents from a file and
# from stdin, --json, and the errors that name what is wrong. The pool
# form's usage errors and its "no replica" (exit 3); the rest of it needs
# device-mapper: tests/integration/verify-pool.sh.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

MiB=1048576

# fill FILE BYTES CHAR: a file of BYTES copies of CHAR.
fill() { head -c "$2" /dev/zero | tr '\000' "$3" >"$1"; }
# poke FILE OFFSET CHAR: overwrite one byte.
poke() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }

a=$tmp/a b=$tmp/b
fill "$a" $((3 * MiB)) a
cp "$a" "$b"

expect "help"                 0 '^Usage:'                          -- verify --help
expect "no operands"          2 'expected two files or devices'    -- verify
expect "one operand"          2 'expected two files or devices'    -- verify "$a"
expect "three operands"       2 'expected two files or devices'    -- verify "$a" "$b" "$b"
expect "--whole and --extents" 2 'exclude each other'              -- verify --whole -e x "$a" "$b"
expect "unknown option"       2 "Try 'dmrepl verify --help'"       -- verify --bogus "$a" "$b"
expect "bad --chunk-size"     2 "--chunk-size: 'big' is not a size" -- verify --chunk-size big "$a" "$b"
expect "zero --chunk-size"    2 "--chunk-size: 0 is out of range: give 512 to 64M, a multiple of 512$" -- verify --chunk-size 0 "$a" "$b"
expect "chunk size not a multiple of 512" 2 "--chunk-size: 1000 is not a multiple of 512$" -- verify --chunk-size 1000 "$a" "$b"
expect "chunk size too large" 2 "--chunk-size: 134217728 is out of range: give 512 to 64M" -- verify --chunk-size 134217728 "$a" "$b"

# The pool form: its usage errors, and a missing replica (found from the
# lineage records alone, before any device-mapper call).
expect "pool form: incomplete"   2 '--pool, --snap and --to-pool go together' -- verify --pool p --snap 1
expect "pool form: with A B"     2 '--pool takes no A and B'         -- verify --pool p --snap 1 --to-pool q "$a" "$b"
expect "pool form: --extents"    2 '--extents does not go with --pool' -- verify --pool p --snap 1 --to-pool q -e x
expect "pool form: same pool"    2 'are the same pool'               -- verify --pool p --snap 1 --to-pool p
expect "pool form: bad --snap"   2 "--snap: 'x' is not a thin device id" -- verify --pool p --snap x --to-pool q
expect "pool form: bad --size"   2 "--size: 1000 is not a multiple of 512$" -- verify --pool p --snap 1 --to-pool q --size 1000
expect "--size without --pool"   2 '--size and --state-dir go with --pool' -- verify --size 1M "$a" "$b"
expect "pool form: no replica"   3 'q holds no replica of thin 7 of p$' -- verify --pool p --snap 7 --to-pool q --state-dir "$tmp/state"

expect "equal files"          0 "are equal: 3145728 bytes compared" -- verify "$a" "$b"
check "no progress bar when stderr is not a terminal" test ! -s "$tmp/err"
expect "equal, --whole"       0 "are equal: 3145728 bytes compared" -- verify --whole "$a" "$b"

poke "$b" $((MiB + MiB / 2 + 17)) b
expect "one byte differs"     1 "differ: 1048576 of 3145728 bytes compared, in 1 range\$" -- verify "$a" "$b"
expect "its range"            1 '^  offset 1048576 length 1048576$' -- verify "$a" "$b"
expect "with 4 KiB chunks"    1 '^  offset 1572864 length 4096$'    -- verify --chunk-size 4096 "$a" "$b"
expect "chunk size with a unit" 1 '^  offset 1572864 length 4096$'  -- verify --chunk-size 4K "$a" "$b"

expect "JSON result" 1 '^{"type":"result","ok":false,"error":"not equal: 1 mismatch","exit_status":1,"equal":false,"compared_bytes":3145728,"mismatched_bytes":1048576,"nr_mismatches":1,"mismatches":\[{"offset_bytes":1048576,"length_bytes":1048576}\],"digest":\["[0-9a-f]\{32\}","[0-9a-f]\{32\}"\]}$' \
	-- verify --json "$a" "$b"
check "JSON progress lines" grep -q '^{"type":"progress","what":"verify","phase":"compare","done_bytes":[0-9]*,"total_bytes":3145728,' "$tmp/out"
expect "JSON, quiet: one line" 1 '"equal":false' -- verify --json -q "$a" "$b"
check "JSON, quiet: only the result" test "$(wc -l <"$tmp/out")" -eq 1

# The digests are XXH3-128 of the whole devices, as xxh128sum prints them.
if command -v xxh128sum >/dev/null 2>&1; then
	expect "JSON digests" 1 "\"digest\":\[\"$(xxh128sum "$a" 2>/dev/null | cut -d' ' -f1)\",\"$(xxh128sum "$b" 2>/dev/null | cut -d' ' -f1)\"\]" \
		-- verify --json -q "$a" "$b"
else
	echo "skip JSON digests against xxh128sum: xxh128sum not installed"
fi

# Extents: only the listed ranges are compared, copy and discard alike.
printf '0 1048576 copy\n2097152 1048576 discard\n' >"$tmp/outside"
printf '0 1048576 copy\n\n1572860 100 discard\n' >"$tmp/inside"
expect "extents missing the change" 0 "are equal: 2097152 bytes compared" -- verify --extents "$tmp/outside" "$a" "$b"
expect "extents covering it"  1 '^  offset 1572860 length 100$'     -- verify --extents "$tmp/inside" "$a" "$b"
"$DMREPL" verify --extents - "$a" "$b" <"$tmp/inside" >"$tmp/out" 2>&1
check "extents from stdin" test $? -eq 1
check "extents from stdin: the range" grep -q '^  offset 1572860 length 100$' "$tmp/out"

printf '0 4096 copy\n4096 x copy\n' >"$tmp/bad"
expect "bad extents line"     1 "$tmp/bad:2: "                      -- verify -e "$tmp/bad" "$a" "$b"
check "bad extents line: no result" test -z "$(grep -e 'differ' -e 'are equal' "$tmp/out")"
printf '3145000 4096 copy\n' >"$tmp/past"
expect "extent past the end"  1 'past the end of'                   -- verify -e "$tmp/past" "$a" "$b"
expect "missing extents file" 1 "cannot open $tmp/none"             -- verify -e "$tmp/none" "$a" "$b"

# The last byte, in a short last chunk.
fill "$a" $((3 * MiB + 5)) a
cp "$a" "$b"
poke "$b" $((3 * MiB + 4)) z
expect "last byte differs"    1 '^  offset 3145728 length 5$'       -- verify "$a" "$b"

# Sizes must match for a whole comparison.
fill "$b" $((3 * MiB)) a
expect "sizes differ" 1 "sizes differ: $a is 3145733 bytes, $b is 3145728 bytes" -- verify "$a" "$b"
expect "missing file"         1 "cannot open $tmp/none"             -- verify "$a" "$tmp/none"
expect "a directory"          1 "$tmp: neither a regular file nor a block device" -- verify "$tmp" "$a"

# Twenty mismatching chunks: sixteen listed, and the count.
fill "$a" $((256 * 1024)) a
cp "$a" "$b"
for i in 0 2 4 6 8 10 12 14 16 18 20 22 24 26 28 30 32 34 36 38; do
	poke "$b" $((i * 4096 + 100)) q
done
expect "twenty ranges"        1 'in 20 ranges$'                     -- verify --chunk-size 4096 "$a" "$b"
check "sixteen listed" test "$(grep -c '^  offset ' "$tmp/out")" -eq 16
check "and the rest counted" grep -q '^  \.\.\. and 4 more$' "$tmp/out"
expect "JSON: sixteen kept"   1 '"nr_mismatches":20,'              -- verify --json -q --chunk-size 4096 "$a" "$b"
check "JSON: sixteen listed" test "$(grep -o '"offset_bytes"' "$tmp/out" | wc -l)" -eq 16

# SIGTERM stops a long comparison (16 GiB of holes: seconds) promptly.
truncate -s 16G "$tmp/big1" "$tmp/big2"
"$DMREPL" verify -q "$tmp/big1" "$tmp/big2" >"$tmp/out" 2>&1 &
pid=$!
sleep 1
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM: exit 143" test "$rc" -eq 143
check "SIGTERM: says so" grep -q 'interrupted by signal 15' "$tmp/out"
check "SIGTERM: no result" test -z "$(grep -e 'differ' -e 'are equal' "$tmp/out")"

expect_done
