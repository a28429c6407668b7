#!/bin/sh
# dmrepl ls and delta on metadata images: output formats, exit codes and
# the error each bad input gets (unknown ids, -m without a held snapshot,
# a missing file, something that is not metadata, a corrupted node).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
img=${FIXTURES:-tests/fixtures}/small.bin
[ -f "$img" ] || { echo "SKIP: $img not built (thin_restore missing)"; exit 77; }
. "${top_srcdir:-.}/tests/tool/expect.sh"

# errors are said once: the library's message, not a second restatement
expect_one_error() {
	n=$(wc -l <"$tmp/err")
	[ "$n" -eq 1 ] || { echo "FAIL $1: $n lines on stderr, expected 1"
		sed 's/^/  | /' "$tmp/err"; failures=$((failures + 1)); }
}

expect "ls lists devices"        0 '^ 3 '                     -- ls "$img"
expect "ls --json"               0 '"devices":\[{"id":1,'          -- ls --json "$img"
expect "ls --no-headers"         0 '^1 '                     -- ls --no-headers "$img"
expect "delta xml"               0 '^  <diff left="1" right="2">$'  -- delta --snap1 1 --snap2 2 "$img"
expect "delta json"              0 '"runs":\[{"kind":'               -- delta --format=json --snap1 1 --snap2 2 "$img"
expect "delta extents"           0 '^[0-9]* [0-9]* \(copy\|discard\)$' -- delta --format extents --snap1 1 --snap2 2 "$img"
expect "--thin1/--thin2"         0 '<diff left="2" right="1">'      -- delta --thin1 2 --thin2 1 "$img"

expect "unknown id"              1 'thin device 77 is not in the metadata' -- delta --snap1 1 --snap2 77 "$img"
expect_one_error "unknown id"
expect "-m without held root"    1 'no metadata snapshot is held'   -- delta -m --snap1 1 --snap2 2 "$img"
expect_one_error "-m without held root"
expect "ls -m without held root" 1 'reserve_metadata_snap'          -- ls -m "$img"
expect "missing file"            1 "cannot open $tmp/none"          -- ls "$tmp/none"
expect_one_error "missing file"

head -c 65536 /dev/zero >"$tmp/zero.bin"
expect "not metadata"            1 'superblock (block 0): bad magic' -- ls "$tmp/zero.bin"
expect_one_error "not metadata"

# Flip a byte inside every node block of device 1's and 2's trees: the walk
# must stop with an error naming a block, never print a wrong delta.
cp "$img" "$tmp/corrupt.bin"
blocks=$(( $(wc -c <"$img") / 4096 ))
b=1
while [ "$b" -lt "$blocks" ]; do
	printf '\377' | dd of="$tmp/corrupt.bin" bs=1 seek=$((b * 4096 + 64)) conv=notrunc 2>/dev/null
	b=$((b + 1))
done
expect "corrupt nodes"           1 'block [0-9]*.*checksum'          -- delta --snap1 1 --snap2 2 "$tmp/corrupt.bin"
expect "corrupt nodes: thin_check, same line" 1 'block [0-9]*.*checksum.*damaged: thin_check reports all of it' -- delta --snap1 1 --snap2 2 "$tmp/corrupt.bin"
expect_one_error "corrupt nodes"
cp "$img" "$tmp/badsb.bin"
printf '\377' | dd of="$tmp/badsb.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
expect "corrupt superblock"      1 'superblock (block 0): bad checksum.*thin_check' -- ls "$tmp/badsb.bin"
check "not metadata is not called damaged" sh -c "! \"$DMREPL\" ls \"$tmp/zero.bin\" 2>&1 | grep -q damaged"

expect "missing --snap2"         2 'both --base (--snap1) and --snap (--snap2) are required' -- delta --snap1 1 "$img"
expect "--base/--snap as --snap1/--snap2" 0 '<diff left="1" right="2">' -- delta --base 1 --snap 2 "$img"
expect "-b/-s"                   0 '<diff left="1" right="2">'      -- delta -b 1 -s 2 "$img"
expect "--json is --format json" 0 '^{"type":"result","ok":true,"left":1,"right":2,' -- delta --json --base 1 --snap 2 "$img"
expect "id not a number"         2 "'x1' is not a thin device id"   -- delta --snap1 x1 --snap2 2 "$img"
expect "id too large"            2 'thin ids go up to 16777215'      -- delta --snap1 16777216 --snap2 2 "$img"
expect "bad format"              2 "unknown format 'yaml'"           -- delta --format yaml --snap1 1 --snap2 2 "$img"
expect "--pool with METADATA"    2 'give no METADATA'                -- delta --pool p --snap1 1 --snap2 2 "$img"
expect "two METADATA"            2 'expected one METADATA'           -- ls "$img" "$img"
expect "delta --help"            0 '^Usage:'                          -- delta --help
expect "ls --help"               0 '^Usage:'                          -- ls --help

expect_done
