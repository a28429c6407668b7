#!/bin/sh
# -n/--dry-run on the host (files, streams): before the subcommand and
# among its options; copy -n writes nothing and creates no DST; send -n
# writes no stream; receive -n checks a whole stream, reports what it
# carries and writes nothing, and fails on a damaged one as receive does;
# the commands that only read take -n. And send --json: its JSON goes to
# stderr while stdout carries the stream, to stdout with --output FILE.
# The pool forms (snapshot, recover, send and receive on live pools) are
# tested against the kernel (tests/integration/stream-chain.sh,
# lvm-pool.sh).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

# only NAME FILE PATTERN: FILE has exactly one line, and it matches PATTERN
only() {
	if [ "$(wc -l <"$2")" -eq 1 ] && grep -q -e "$3" "$2"; then
		echo "ok   $1"
	else
		echo "FAIL $1: not one line matching '$3'"; sed 's/^/  | /' "$2"
		failures=$((failures + 1))
	fi
}

head -c 3145728 /dev/urandom >"$tmp/src" || exit 99
head -c 3145728 /dev/urandom >"$tmp/old" || exit 99
printf '%s\n' '0 8192 copy' '65536 65536 discard' '1048576 4096 copy' >"$tmp/ext"

# ---- copy ----
whole='would copy 3145728 bytes and discard 0 bytes in 1 extent'
expect "copy -n after the subcommand" 0 "^$tmp/src to $tmp/new: $whole; would create $tmp/new\$" \
	-- copy -n "$tmp/src" "$tmp/new"
check "copy -n created no DST" test ! -e "$tmp/new"
expect "copy -n before the subcommand" 0 "^$tmp/src to $tmp/new: $whole; would create" \
	-- -n copy "$tmp/src" "$tmp/new"
check "-n copy created no DST" test ! -e "$tmp/new"
expect "copy --dry-run" 0 "^$tmp/src to $tmp/new: $whole" -- copy --dry-run "$tmp/src" "$tmp/new"
check "copy --dry-run created no DST" test ! -e "$tmp/new"
cp "$tmp/old" "$tmp/dst" || exit 99
expect "copy -n onto a file" 0 "^$tmp/src to $tmp/dst: $whole\$" -- copy -n "$tmp/src" "$tmp/dst"
check "copy -n left DST as it was" cmp -s "$tmp/old" "$tmp/dst"
expect "copy -n of extents" 0 "would copy 12288 bytes and discard 65536 bytes in 3 extents\$" \
	-- copy -n -e "$tmp/ext" "$tmp/src" "$tmp/dst"
check "copy -n of extents left DST as it was" cmp -s "$tmp/old" "$tmp/dst"
expect "copy -n --json" 0 '^{"type":"result","ok":true,"dry_run":true,"extents":3,"total_bytes":77824,"copied_bytes":12288,"discarded_bytes":65536,"dst_exists":true}$' \
	-- copy -n --json -e "$tmp/ext" "$tmp/src" "$tmp/dst"
printf '%s\n' '3145216 1024 copy' >"$tmp/past"
expect "copy -n: an extent past the end" 1 "extent 3145216+1024 is past the end of $tmp/dst (3145728 bytes)" \
	-- copy -n -e "$tmp/past" "$tmp/src" "$tmp/dst"
printf '%s\n' '0 4096 copy' 'bogus' >"$tmp/badext"
expect "copy -n: a bad extents line" 1 "line 2" -- copy -n -e "$tmp/badext" "$tmp/src" "$tmp/dst"
expect "copy -n: a missing SRC" 1 "cannot open $tmp/none: No such file or directory" \
	-- copy -n "$tmp/none" "$tmp/dst"
expect "copy -n: its failure as JSON" 1 '^{"type":"result","ok":false,"error":"cannot open [^"]*none: No such file or directory","errno":"ENOENT","exit_status":1}$' \
	-- -n copy -j "$tmp/none" "$tmp/dst"
check "nothing written by any copy -n" cmp -s "$tmp/old" "$tmp/dst"

# ---- send ----
"$DMREPL" send -n --device "$tmp/src" >"$tmp/out" 2>"$tmp/err"
check "send -n: exit 0" test $? -eq 0
only "send -n: one line on stdout, no stream" "$tmp/out" \
	"^$tmp/src: the stream would carry 3145728 bytes of data and 0 bytes of discards in 1 extent; nothing sent\$"
check "send -n: no stream header on stdout" sh -c "! grep -q DMREPLST '$tmp/out'"
"$DMREPL" -n send --device "$tmp/src" --extents "$tmp/ext" >"$tmp/out" 2>"$tmp/err"
check "-n send: exit 0" test $? -eq 0
only "-n send: what the extents carry" "$tmp/out" \
	"would carry 12288 bytes of data and 65536 bytes of discards in 3 extents; nothing sent\$"
"$DMREPL" send -n --json --device "$tmp/src" --extents "$tmp/ext" >"$tmp/out" 2>"$tmp/err"
only "send -n --json: the result on stdout" "$tmp/out" \
	'^{"type":"result","ok":true,"dry_run":true,"device":"[^"]*src","streams":1,"size_bytes":3145728,"extents":3,"copied_bytes":12288,"discarded_bytes":65536,"zeroed_bytes":0,"milliseconds":[0-9]*}$'
check "send -n --json: nothing on stderr" test ! -s "$tmp/err"
"$DMREPL" send -n --device "$tmp/src" --output "$tmp/s.out" >/dev/null 2>&1
check "send -n --output: no file" test ! -e "$tmp/s.out"

# send --json: the stream on stdout, the JSON on stderr
"$DMREPL" send --json --device "$tmp/src" >"$tmp/s" 2>"$tmp/err"
check "send --json: exit 0" test $? -eq 0
check "send --json: stderr is JSON lines only" sh -c "! grep -qv '^{\"type\":\"' '$tmp/err'"
tail -n 1 "$tmp/err" >"$tmp/last"
only "send --json: the result last on stderr" "$tmp/last" \
	'^{"type":"result","ok":true,"device":"[^"]*src","streams":1,"size_bytes":3145728,"extents":1,"copied_bytes":3145728,"discarded_bytes":0,"zeroed_bytes":0,"records":3,"stream_bytes":[0-9]*,"milliseconds":[0-9]*}$'
cp "$tmp/old" "$tmp/dst"
"$DMREPL" receive -q --device "$tmp/dst" <"$tmp/s" 2>"$tmp/err"
check "send --json: stdout was the stream, whole" cmp -s "$tmp/src" "$tmp/dst"
# with --output FILE: the stream there, the JSON on stdout
"$DMREPL" send -j --device "$tmp/src" --output "$tmp/s2" >"$tmp/out" 2>"$tmp/err"
check "send --output: exit 0" test $? -eq 0
tail -n 1 "$tmp/out" >"$tmp/last"
only "send --output: the result last on stdout" "$tmp/last" \
	'^{"type":"result","ok":true,"device":"[^"]*src","output":"[^"]*s2","streams":1,'
check "send --output: JSON lines only on stdout" sh -c "! grep -qv '^{\"type\":\"' '$tmp/out'"
check "send --output: stderr empty" test ! -s "$tmp/err"
cp "$tmp/old" "$tmp/dst"
"$DMREPL" receive -q --device "$tmp/dst" <"$tmp/s2" 2>"$tmp/err"
check "send --output: the file is the stream" cmp -s "$tmp/src" "$tmp/dst"
# failures: the result object where the progress went
"$DMREPL" send --json --device "$tmp/none" >"$tmp/out" 2>"$tmp/err"
check "send --json failing: exit 1" test $? -eq 1
check "send --json failing: nothing on stdout" test ! -s "$tmp/out"
grep '^{' "$tmp/err" >"$tmp/last"
only "send --json failing: the failure on stderr" "$tmp/last" \
	'^{"type":"result","ok":false,"error":"cannot open [^"]*none: No such file or directory","errno":"ENOENT","exit_status":1,'
"$DMREPL" send --json --compress=40 --device "$tmp/src" >"$tmp/out" 2>"$tmp/err"
check "send --json, a bad option: exit 2" test $? -eq 2
check "send --json, a bad option: nothing on stdout" test ! -s "$tmp/out"
grep '^{' "$tmp/err" >"$tmp/last"
only "send --json, a bad option: the failure on stderr" "$tmp/last" \
	'^{"type":"result","ok":false,"error":"--compress: 40 is out of range: give 1 to 19",\("errno":"EINVAL",\)\{0,1\}"exit_status":2}$'
"$DMREPL" send --json --device "$tmp/none" --output "$tmp/s3" >"$tmp/out" 2>"$tmp/err"
check "send --output failing: exit 1" test $? -eq 1
only "send --output failing: the failure on stdout" "$tmp/out" \
	'^{"type":"result","ok":false,"error":"cannot open [^"]*none: No such file or directory","errno":"ENOENT","exit_status":1,'
check "send --output failing: no file left" test ! -e "$tmp/s3"
expect "send: --output needs a name" 2 '--output: give a file name' -- send --device "$tmp/src" --output ''

# ---- receive ----
"$DMREPL" send -q --device "$tmp/src" --extents "$tmp/ext" >"$tmp/s" || exit 99
carries="thin 0 of [^ ]*src, in full: 3 records, 12288 bytes of data, 65536 discarded, 0 zeroed"
expect "receive -n: the stream alone" 0 "^$carries; checked whole, nothing written\$" -- receive -n <"$tmp/s"
expect "-n receive: the stream alone" 0 "^$carries; checked whole" -- -n receive <"$tmp/s"
cp "$tmp/old" "$tmp/dst"
expect "receive -n --device" 0 "^$carries; $tmp/dst could take it; checked whole, nothing written\$" \
	-- receive -n --device "$tmp/dst" <"$tmp/s"
check "receive -n --device wrote nothing" cmp -s "$tmp/old" "$tmp/dst"
expect "receive -n --json" 0 '^{"type":"result","ok":true,"dry_run":true,"device":"[^"]*dst","streams":1,"src_pool":"[^"]*src","snap":0,"full":true,"resumed":false,"records":3,"data_bytes":12288,"discarded_bytes":65536,"zeroed_bytes":0,"stream_bytes":[0-9]*}$' \
	-- receive -n --json --device "$tmp/dst" <"$tmp/s"
head -c 4096 "$tmp/old" >"$tmp/small"
expect "receive -n: a device too small" 1 "$tmp/small is smaller (4096 bytes) than the stream's volume (3145728 bytes)" \
	-- receive -n --device "$tmp/small" <"$tmp/s"
check "receive -n: the small device unchanged" cmp -s "$tmp/small" "$tmp/old" -n 4096
# damaged: byte 100 of record 0's payload changed, whatever it was
cp "$tmp/s" "$tmp/bad"
pos=$((264 + 40 + 100))
old=$(dd if="$tmp/s" bs=1 skip=$pos count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "\\$(printf %o $(((old + 1) % 256)))" |
	dd of="$tmp/bad" bs=1 seek=$pos conv=notrunc 2>/dev/null
cmp -s "$tmp/s" "$tmp/bad" && { echo "FAIL the damage changed nothing"; exit 99; }
expect "receive -n: a damaged stream" 1 'record 0 at byte 264: checksum mismatch' -- receive -n <"$tmp/bad"
expect "receive -n --device: a damaged stream" 1 'record 0 at byte 264: checksum mismatch' \
	-- receive -n --device "$tmp/dst" <"$tmp/bad"
check "receive -n of a damaged stream wrote nothing" cmp -s "$tmp/old" "$tmp/dst"
size=$(wc -c <"$tmp/s")
head -c $((size - 20)) "$tmp/s" >"$tmp/cut"
expect "receive -n: a truncated stream" 1 'stream ended early' -- receive -n <"$tmp/cut"
expect "receive -n --json: a truncated stream" 1 '^{"type":"result","ok":false,"error":"the stream: stream ended early[^"]*","errno":"ENODATA","exit_status":1,"dry_run":true,' \
	-- receive -n --json <"$tmp/cut"
expect "receive: a target, without -n" 2 'give one of --pool and --device (or --dry-run to check a stream alone)' -- receive <"$tmp/s"

# ---- the commands that only read ----
md=${FIXTURES:-tests/fixtures}/small.bin
"$DMREPL" ls "$md" >"$tmp/ls" 2>&1 || exit 99
expect "ls -n" 0 '' -- ls -n "$md"
check "ls -n lists as ls does" cmp -s "$tmp/ls" "$tmp/out"
expect "-n ls" 0 '' -- -n ls "$md"
check "-n ls lists as ls does" cmp -s "$tmp/ls" "$tmp/out"
expect "delta -n" 0 '' -- delta -n --snap1 1 --snap2 2 "$md"
expect "verify -n" 0 'are equal' -- verify -n "$tmp/src" "$tmp/src"
expect "-n verify" 0 'are equal' -- -n verify "$tmp/src" "$tmp/src"
expect "-n version" 0 "libdmrepl" -- -n version
expect "version -n" 0 "libdmrepl" -- version --dry-run
expect "help -n" 0 '^Usage: dmrepl' -- help -n
expect "-n --help" 0 '  -n, --dry-run ' -- -n --help
expect "replicas -n --help" 0 '^Usage:' -- replicas -n --help
expect "recover -n: usage as without" 2 '--pool is required' -- recover -n

expect_done
