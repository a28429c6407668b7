#!/bin/sh
# The JSON contract on failure: a --json run that fails ends with exactly
# one result object on standard output, {"type":"result","ok":false,...},
# whose "error" is the message standard error shows, whatever failed (a
# bad option, a missing file, damaged metadata, a pool that cannot be
# reached); a partial object is never printed.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

# json_fails NAME RC ARGS...: dmrepl ARGS exits RC; stdout is one line,
# a failed result with that exit status, whose error is stderr's message.
json_fails() {
	name=$1 want=$2
	shift 2
	"$DMREPL" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	msg=$(sed -n '1s/^dmrepl[^:]*: \(error: \)\{0,1\}//p' "$tmp/err")
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL $name: exit $rc, expected $want"; sed 's/^/  | /' "$tmp/out" "$tmp/err"
		failures=$((failures + 1)); return
	fi
	if [ "$(wc -l <"$tmp/out")" -ne 1 ] ||
	   ! grep -q "^{\"type\":\"result\",\"ok\":false,\"error\":\"" "$tmp/out" ||
	   ! grep -q "\"exit_status\":$want[,}]" "$tmp/out" ||
	   ! grep -qF "\"error\":\"$msg\"" "$tmp/out"; then
		echo "FAIL $name: not one failed result with stderr's message"
		echo "  stderr's: $msg"; sed 's/^/  | /' "$tmp/out"
		failures=$((failures + 1)); return
	fi
	echo "ok   $name"
}

cp "${FIXTURES:-tests/fixtures}/small.bin" "$tmp/bad.bin"
printf '\377' | dd of="$tmp/bad.bin" bs=1 seek=100 conv=notrunc 2>/dev/null

json_fails "ls: damaged metadata"        1 ls --json "$tmp/bad.bin"
json_fails "delta: damaged metadata"     1 delta --json --base 1 --snap 2 "$tmp/bad.bin"
json_fails "delta: a missing file"       1 delta --format json --base 1 --snap 2 "$tmp/none" --json
json_fails "verify: a missing file"      1 verify --json "$tmp/none" "$tmp/bad.bin"
json_fails "verify -j"                   1 verify -j "$tmp/none" "$tmp/bad.bin"
expect "copy -j"                 1 '^{"type":"result","ok":false' -- copy -j "$tmp/none" "$tmp/dst"
json_fails "replicas: no state"          1 replicas --to-pool dmrepl-test-no-such-pool --state-dir "$tmp/none" --json
json_fails "recover: no pool"            1 recover --pool dmrepl-test-no-such-pool --json
json_fails "replicate: a bad option"     2 replicate --json --queue-depth 0 --pool p --snap 1 --to-pool q
json_fails "snapshot: a bad id"          2 snapshot -j --pool p --origin x
expect "usage: errno EINVAL"       2 '"errno":"EINVAL","exit_status":2}$' -- replicate --json --queue-depth 0 --pool p --snap 1 --to-pool q
expect "ls: errno"                1 '"errno":"EBADMSG","exit_status":1}$' -- ls --json "$tmp/bad.bin"
expect "verify: errno"            1 '"errno":"ENOENT","exit_status":1}$' -- verify -j "$tmp/none" "$tmp/bad.bin"
expect "copy: its own result, with errno" 1 '"ok":false,"error":"cannot open [^"]*none: No such file or directory","errno":"ENOENT"' -- copy --json "$tmp/none" "$tmp/dst"
check "copy: one object" test "$("$DMREPL" copy --json "$tmp/none" "$tmp/dst" 2>/dev/null | wc -l)" -eq 1

expect_done
