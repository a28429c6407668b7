#!/bin/sh
# dmrepl send and receive on files (--device): round trips raw and with
# zstd, at a --bwlimit, extents with unaligned edges and discards (the receiver's
# source-less copy path), a damaged and a truncated stream, resume tokens
# that are malformed or for another stream, and usage errors. The pool
# forms are tested against the real kernel (tests/integration/stream-*).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

# stream NAME SEND-ARGS -- RECEIVE-ARGS: a pipe, both sides must succeed.
stream() {
	name=$1
	shift
	send_args=
	while [ "$1" != -- ]; do send_args="$send_args $1"; shift; done
	shift
	# shellcheck disable=SC2086
	if "$DMREPL" send -q $send_args 2>"$tmp/send.err" |
		"$DMREPL" receive -q "$@" 2>"$tmp/recv.err"; then
		echo "ok   $name"
	else
		echo "FAIL $name"; cat "$tmp/send.err" "$tmp/recv.err" | sed 's/^/  | /'
		failures=$((failures + 1))
	fi
}

head -c 3145728 /dev/urandom >"$tmp/src" || exit 99
head -c 3145728 /dev/urandom >"$tmp/old" || exit 99

expect "send help"            0 '^Usage:'                  -- send --help
expect "receive help"         0 '^Usage:'                  -- receive --help
expect "send: pool or device" 2 'one of --pool and --device' -- send --snap 1
expect "send: chain needs base" 2 '--chain needs --base'   -- send --pool p --snap 2 --chain
expect "send: bad token"      2 'not a resume token'       -- send --pool p --resume dmrepl1-2-full-0-0-0
expect "send: bad level"      2 '--compress: 40 is out of range: give 1 to 19$'                    -- send --device x --compress=40
expect "receive: one target"  2 'one of --pool and --device' -- receive
expect "receive: token needs pool" 2 'go with --pool'       -- receive --device x --resume-token

# Whole files, raw and compressed.
cp "$tmp/old" "$tmp/dst"
stream "whole file, raw" --device "$tmp/src" -- --device "$tmp/dst"
check "whole file equal" cmp -s "$tmp/src" "$tmp/dst"
cp "$tmp/old" "$tmp/dst"
stream "whole file, zstd" --device "$tmp/src" --compress=1 -- --device "$tmp/dst"
check "zstd file equal" cmp -s "$tmp/src" "$tmp/dst"

# --bwlimit holds the stream to its rate: 3 MiB at 1 MiB/s (a bucket of
# 50 ms) cannot take less than ~2.9 s; unlimited it takes a fraction of one.
cp "$tmp/old" "$tmp/dst"
t0=$(date +%s%N)
stream "whole file, --bwlimit 1M" --device "$tmp/src" --bwlimit 1M -- --device "$tmp/dst"
ms=$((($(date +%s%N) - t0) / 1000000))
check "bwlimit 1M: 3 MiB took ${ms} ms (at least 2800)" [ "$ms" -ge 2800 ]
check "bwlimit file equal" cmp -s "$tmp/src" "$tmp/dst"

# Extents: unaligned edges, a discard (a hole punched in the file reads
# as zeroes), detected zeroes; against the same edits made with dd.
cp "$tmp/old" "$tmp/dst" && cp "$tmp/old" "$tmp/want" || exit 99
dd if=/dev/zero of="$tmp/src" bs=4096 seek=400 count=16 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$tmp/want" bs=4096 seek=400 count=16 conv=notrunc 2>/dev/null
printf '%s\n' '512 7680 copy' '20480 65536 discard' '1048576 1049088 copy' \
	'2621440 65536 copy' >"$tmp/ext"
dd if="$tmp/src" of="$tmp/want" bs=512 skip=1 seek=1 count=15 conv=notrunc 2>/dev/null
dd if=/dev/zero of="$tmp/want" bs=4096 seek=5 count=16 conv=notrunc 2>/dev/null
dd if="$tmp/src" of="$tmp/want" bs=512 skip=2048 seek=2048 count=2049 conv=notrunc 2>/dev/null
dd if="$tmp/src" of="$tmp/want" bs=65536 skip=40 seek=40 count=1 conv=notrunc 2>/dev/null
stream "extents" --device "$tmp/src" --extents "$tmp/ext" --detect-zeroes -- --device "$tmp/dst"
check "extents applied exactly" cmp -s "$tmp/want" "$tmp/dst"

# A saved stream, damaged: refused with the record named.
"$DMREPL" send -q --device "$tmp/src" --extents "$tmp/ext" >"$tmp/s" || exit 99
size=$(wc -c <"$tmp/s")
cp "$tmp/s" "$tmp/bad"
# Change the byte, whatever it was (random data: writing a fixed one
# would change nothing once in 256 runs).
pos=$((264 + 40 + 100))
old=$(dd if="$tmp/s" bs=1 skip=$pos count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "\\$(printf %o $(((old + 1) % 256)))" |
	dd of="$tmp/bad" bs=1 seek=$pos conv=notrunc 2>/dev/null
cmp -s "$tmp/s" "$tmp/bad" && { echo "FAIL the damage changed nothing"; exit 99; }
cp "$tmp/old" "$tmp/dst"
expect "damaged payload"      1 'record 0 at byte 264: checksum mismatch' \
	-- receive -q --device "$tmp/dst" <"$tmp/bad"
check "damaged payload wrote nothing" cmp -s "$tmp/old" "$tmp/dst"
head -c $((size - 20)) "$tmp/s" >"$tmp/cut"
expect "truncated stream"     1 'stream ended early' -- receive -q --device "$tmp/dst" <"$tmp/cut"
head -c 100 "$tmp/s" >"$tmp/cut"
expect "truncated header"     1 'ended early in its header' -- receive -q --device "$tmp/dst" <"$tmp/cut"
expect "not a stream"         1 'magic'                -- receive -q --device "$tmp/dst" <"$tmp/ext"

expect_done
