#!/bin/sh
# The JSON Schemas of doc/schema against real --json outputs: every
# subcommand that runs on this host (metadata images, plain files), on
# success and on failure (a bad option, a missing file, damaged metadata,
# SIGINT, and the pool commands, which fail here without a dm kernel).
# tests/tool/json-validate.py checks each output: every line valid against
# the subcommand's schema, progress lines first, exactly one result, last,
# whose "ok" and "exit_status" agree with the exit status. Needs
# python3-jsonschema (a test-only dependency); without it the test skips.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"
schemas=${top_srcdir:-.}/doc/schema
validate=${top_srcdir:-.}/tests/tool/json-validate.py
fixtures=${FIXTURES:-tests/fixtures}

python=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
	if "$p" -c 'import jsonschema' 2>/dev/null; then python=$p; break; fi
done
if [ -z "$python" ]; then
	echo "SKIP: no python3 with jsonschema (Debian: apt-get install python3-jsonschema)"
	exit 77
fi
[ -f "$fixtures/small.bin" ] ||
	{ echo "SKIP: no metadata images (thin_restore missing)"; exit 77; }

n=0
# json_run NAME COMMAND RC ARGS...: dmrepl ARGS exits RC ("-": any), and
# its standard output validates against COMMAND's schema.
json_run() {
	name=$1 cmd=$2 want=$3
	shift 3
	n=$((n + 1))
	"$DMREPL" "$@" >"$tmp/out.$n" 2>"$tmp/err.$n" </dev/null
	json_check "$name" "$cmd" "$want" $?
}

# json_check NAME COMMAND WANT RC: validate $tmp/out.$n, the output of a
# run that exited RC, which must be WANT unless that is "-".
json_check() {
	if [ "$3" != - ] && [ "$4" -ne "$3" ]; then
		echo "FAIL $1: exit $4, expected $3"
		sed 's/^/  | /' "$tmp/out.$n" "$tmp/err.$n"
		failures=$((failures + 1)); return
	fi
	if ! "$python" "$validate" --exit-status "$4" "$schemas" "$2" "$tmp/out.$n" \
		>"$tmp/why" 2>&1; then
		echo "FAIL $1: not valid against $2.schema.json"
		sed 's/^/  | /' "$tmp/why"; sed 's/^/  > /' "$tmp/out.$n"
		failures=$((failures + 1)); return
	fi
	echo "ok   $1 ($(wc -l <"$tmp/out.$n") line(s), exit $4)"
}

# rejects NAME COMMAND PATTERN: the validator refuses $tmp/wrong, saying
# PATTERN: proof that it can fail.
rejects() {
	"$python" "$validate" --exit-status "${status:-0}" "$schemas" "$2" "$tmp/wrong" \
		>"$tmp/why" 2>&1
	rc=$?
	if [ "$rc" -ne 1 ] || ! grep -q -e "$3" "$tmp/why"; then
		echo "FAIL $1: the validator exited $rc, expected 1 and '$3'"
		sed 's/^/  | /' "$tmp/why"
		failures=$((failures + 1)); return
	fi
	echo "ok   $1"
}

# ---- the schemas themselves
for s in "$schemas"/*.schema.json; do
	check "$(basename "$s") is JSON with its name as \$id" \
		"$python" -c 'import json, sys, os
s = json.load(open(sys.argv[1]))
sys.exit(not s["$id"].endswith("/" + os.path.basename(sys.argv[1])))' "$s"
done
for c in ls delta copy verify snapshot replicate receive replicas recover send \
	version sync prune serve migrate; do
	check "$c has a schema" test -f "$schemas/$c.schema.json"
done

# ---- ls and delta on metadata images
cp "$fixtures/small.bin" "$tmp/bad-super.bin"
printf '\377' | dd of="$tmp/bad-super.bin" bs=1 seek=100 conv=notrunc 2>/dev/null
# block 10 of small.bin is a leaf of thin 1's mapping tree: ls reads past
# it, delta finds it damaged halfway through the runs
cp "$fixtures/small.bin" "$tmp/bad-tree.bin"
printf '\377\377\377\377' | dd of="$tmp/bad-tree.bin" bs=1 seek=41024 conv=notrunc 2>/dev/null

for f in small edge deep leaves random-1; do
	[ -f "$fixtures/$f.bin" ] || continue
	json_run "ls $f"                ls 0 ls --json "$fixtures/$f.bin"
done
json_run "ls -j --no-headers"       ls 0 ls -j --no-headers "$fixtures/small.bin"
json_run "ls: a damaged tree"       ls - ls --json "$tmp/bad-tree.bin"
json_run "ls: no held snapshot"     ls 1 ls -m --json "$fixtures/small.bin"
json_run "ls: a missing file"       ls 1 ls --json "$tmp/none"
json_run "ls: damaged metadata"     ls 1 ls --json "$tmp/bad-super.bin"
json_run "ls: a bad option"         ls 2 ls --json --bogus "$fixtures/small.bin"
json_run "ls: no METADATA"          ls 2 ls --json
json_run "ls: no pool here"         ls 1 ls --json --pool dmrepl-test-no-such-pool

json_run "delta small 1 2"          delta 0 delta --json --base 1 --snap 2 "$fixtures/small.bin"
json_run "delta small 2 1 -j"       delta 0 delta -j --base 2 --snap 1 "$fixtures/small.bin"
json_run "delta --format json"      delta 0 delta --format json --snap1 1 --snap2 3 "$fixtures/small.bin"
json_run "delta --format=json"      delta 0 delta --format=json --base 1 --snap 1 "$fixtures/small.bin"
for f in edge deep; do
	json_run "delta $f 1 2"         delta 0 delta --json --base 1 --snap 2 "$fixtures/$f.bin"
done
json_run "delta: an unknown thin"   delta 1 delta --json --base 1 --snap 99 "$fixtures/small.bin"
json_run "delta: a damaged tree"    delta 1 delta --json --base 1 --snap 2 "$tmp/bad-tree.bin"
json_run "delta --format json: a damaged tree" \
                                    delta 1 delta --format json --base 1 --snap 2 "$tmp/bad-tree.bin"
json_run "delta --format json: a missing file" \
                                    delta 1 delta --format json --base 1 --snap 2 "$tmp/none"
json_run "delta: damaged metadata"  delta 1 delta --json --base 1 --snap 2 "$tmp/bad-super.bin"
json_run "delta: a bad id"          delta 2 delta --json --base x --snap 2 "$fixtures/small.bin"
json_run "delta: no --snap"         delta 2 delta --json --base 1 "$fixtures/small.bin"
json_run "delta: no held snapshot"  delta 1 delta --json -m --base 1 --snap 2 "$fixtures/small.bin"

# ---- copy and verify on files
head -c 3145728 /dev/urandom >"$tmp/src" || exit 99
printf '0 65536 copy\n1048576 1048576 discard\n2097152 4096 copy\n' >"$tmp/ext"
json_run "copy a file"              copy 0 copy --json "$tmp/src" "$tmp/dst"
json_run "copy extents, sync"       copy 0 copy --json --engine sync --extents "$tmp/ext" "$tmp/src" "$tmp/dst"
json_run "copy --detect-zeroes"     copy 0 copy -j --detect-zeroes "$fixtures/small.bin" "$tmp/dst2"
json_run "copy --dry-run"           copy 0 copy --json --dry-run "$tmp/src" "$tmp/none"
json_run "copy -n, extents"         copy 0 copy -j -n --extents "$tmp/ext" "$tmp/src" "$tmp/dst"
json_run "copy --dry-run: a missing source" copy 1 copy --json --dry-run "$tmp/none" "$tmp/dst"
json_run "copy: a missing source"   copy 1 copy --json "$tmp/none" "$tmp/dst"
json_run "copy: a full destination" copy 1 copy --json --engine sync "$tmp/src" /dev/full
printf '0 x copy\n' >"$tmp/badext"
json_run "copy: a bad extents line" copy 1 copy --json --extents "$tmp/badext" "$tmp/src" "$tmp/dst"
json_run "copy: a bad option"       copy 2 copy --json --queue-depth 0 "$tmp/src" "$tmp/dst"
json_run "copy: no DST"             copy 2 copy --json "$tmp/src"
# SIGINT: progress lines (slowed to 1 MiB/s), then a failed result, 130
n=$((n + 1))
"$DMREPL" copy --json --bwlimit 1M "$tmp/src" "$tmp/dst" >"$tmp/out.$n" 2>"$tmp/err.$n" &
pid=$!
sleep 1.5 2>/dev/null || sleep 2
kill -INT "$pid"
wait "$pid"
json_check "copy: SIGINT" copy 130 $?
check "copy: SIGINT after progress lines" grep -q '"type":"progress"' "$tmp/out.$n"

cp "$tmp/src" "$tmp/same"
cp "$tmp/src" "$tmp/other"
# one byte changed (src is random: the byte there may be any value)
b=$(dd if="$tmp/src" bs=1 skip=3000000 count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "\\$(printf %o $(( (b + 1) % 256 )))" | dd of="$tmp/other" bs=1 seek=3000000 conv=notrunc 2>/dev/null
check "other differs from src" sh -c "! cmp -s '$tmp/src' '$tmp/other'"
json_run "verify: equal"            verify 0 verify --json "$tmp/src" "$tmp/same"
json_run "verify: different"        verify 1 verify --json --whole "$tmp/src" "$tmp/other"
json_run "verify: extents"          verify 0 verify -j --extents "$tmp/ext" "$tmp/src" "$tmp/other"
json_run "verify: different chunks" verify 1 verify --json --chunk-size 4096 "$tmp/src" "$tmp/other"
json_run "verify: a missing file"   verify 1 verify --json "$tmp/none" "$tmp/src"
json_run "verify: sizes differ"     verify 1 verify --json "$tmp/src" "$fixtures/small.bin"
json_run "verify: a bad extents line" verify 1 verify --json --extents "$tmp/badext" "$tmp/src" "$tmp/same"
json_run "verify: one file"         verify 2 verify --json "$tmp/src"
json_run "verify: no pool here"     verify 3 verify --json --pool dmrepl-test-a --snap 1 \
	--to-pool dmrepl-test-b --state-dir "$tmp/state"

# ---- receive: a stream into a file; the pool side fails here
"$DMREPL" send -q --device "$tmp/src" --extents "$tmp/ext" >"$tmp/stream" 2>"$tmp/err" ||
	{ cat "$tmp/err"; exit 99; }
truncate -s 3145728 "$tmp/rdst" || exit 99
n=$((n + 1))
"$DMREPL" receive --json --device "$tmp/rdst" <"$tmp/stream" >"$tmp/out.$n" 2>"$tmp/err.$n"
json_check "receive --device" receive 0 $?
check "receive --device: progress lines" grep -q '"type":"progress"' "$tmp/out.$n"
for dst in "" "--device $tmp/rdst"; do
	n=$((n + 1))
	# shellcheck disable=SC2086
	"$DMREPL" receive --json --dry-run $dst <"$tmp/stream" >"$tmp/out.$n" 2>"$tmp/err.$n"
	json_check "receive --dry-run $dst" receive 0 $?
done
n=$((n + 1))
"$DMREPL" receive --json --dry-run --pool dmrepl-test-no-such-pool <"$tmp/stream" \
	>"$tmp/out.$n" 2>"$tmp/err.$n"
json_check "receive --dry-run: no pool here" receive 1 $?
head -c 100 "$tmp/stream" >"$tmp/cut"
n=$((n + 1))
"$DMREPL" receive --json --device "$tmp/rdst" <"$tmp/cut" >"$tmp/out.$n" 2>"$tmp/err.$n"
json_check "receive: a cut stream" receive 1 $?
n=$((n + 1))
"$DMREPL" receive --json --pool dmrepl-test-no-such-pool --state-dir "$tmp/state" \
	<"$tmp/stream" >"$tmp/out.$n" 2>"$tmp/err.$n"
json_check "receive: no pool here" receive 1 $?
json_run "receive --resume-token: no pool" receive 1 receive --json --pool dmrepl-test-no-such-pool --resume-token
json_run "receive: a bad option"    receive 2 receive --json --bogus
json_run "receive: no target"       receive 2 receive --json

# ---- the pool subcommands, which fail without device-mapper
json_run "replicate: no pool here"  replicate 1 replicate --json --pool dmrepl-test-a --snap 1 \
	--to-pool dmrepl-test-b --state-dir "$tmp/state"
json_run "replicate --dry-run: no pool here" replicate 1 replicate --json --dry-run \
	--pool dmrepl-test-a --snap 1 --to-pool dmrepl-test-b --state-dir "$tmp/state"
json_run "replicate --to: no pool here" replicate 1 replicate --json --pool dmrepl-test-a \
	--snap 1 --to ssh://localhost/dmrepl-test-b --transport false
json_run "replicate: a bad option"  replicate 2 replicate --json --queue-depth 0 --pool p --snap 1 --to-pool q
json_run "replicate: same snapshots" replicate 2 replicate --json --pool p --base 1 --snap 1 --to-pool q
json_run "snapshot: no pool here"   snapshot 1 snapshot --json --pool dmrepl-test-no-such-pool --origin 1
json_run "snapshot: a bad id"       snapshot 2 snapshot -j --pool p --origin x
json_run "replicas: no pool here"   replicas 1 replicas --json --to-pool dmrepl-test-no-such-pool \
	--state-dir "$tmp/state"
json_run "replicas: a bad option"   replicas 2 replicas --json --bogus
json_run "recover: no pool here"    recover 1 recover --json --pool dmrepl-test-no-such-pool
json_run "recover: no --pool"       recover 2 recover --json
json_run "recover --dry-run: no pool here" recover 1 recover --json -n --pool dmrepl-test-no-such-pool
json_run "snapshot --dry-run: no pool here" snapshot 1 snapshot --json -n --pool dmrepl-test-no-such-pool --origin 1
json_run "receive --dry-run --resume-token" receive 0 receive --json -n --pool dmrepl-test-no-such-pool \
	--resume-token --state-dir "$tmp/state"
# send's JSON is on standard output with --output or --dry-run (else the
# stream is)
json_run "send --output"            send 0 send --json --device "$tmp/src" --extents "$tmp/ext" \
	--output "$tmp/stream2"
json_run "send --dry-run"           send 0 send --json --dry-run --device "$tmp/src"
json_run "send: no pool here"       send 1 send --json --dry-run --pool dmrepl-test-no-such-pool --snap 1
json_run "send --output: no pool here" send 1 send --json --pool dmrepl-test-no-such-pool --snap 1 \
	--output "$tmp/stream3"
json_run "send: a bad option"       send 2 send --json --output "$tmp/stream3" --bogus

# ---- version, sync and prune (the parts a host without LVM can run)
json_run "version"                  version 0 version --json
json_run "-j version"               version 0 -j version
mkdir -p "$tmp/conf/jobs.d"
printf '[defaults]\nkeep = 3\n' >"$tmp/conf/dmrepl.conf"
printf '[job]\norigin = vg0/db\nto_pool = vg1/pool\n' >"$tmp/conf/jobs.d/db.conf"
json_run "sync --check-config"      sync 0 sync --check-config -c "$tmp/conf" --json
json_run "sync: no such job"        sync 1 sync nope -c "$tmp/conf" --json
json_run "sync: no LVM here"        sync 1 sync db -c "$tmp/conf" --json --state-dir "$tmp/st"
json_run "sync --from: no LVM here" sync 1 sync --from vg0/db --to ssh://h/vg1/pool --json --state-dir "$tmp/st"
json_run "sync: a bad option"       sync 2 sync --json --keep 0 --from a/b --to-pool c/d
json_run "prune -n: no LVM here"    prune 1 prune db -n -c "$tmp/conf" --json --state-dir "$tmp/st"
json_run "migrate: no LVM here"     migrate 1 migrate --from vg0/db --to-pool vg1/pool --json --state-dir "$tmp/st"
json_run "migrate --to: no LVM here" migrate 1 migrate --from vg0/db --to ssh://h/vg1/pool --transport "sh -c" --json --state-dir "$tmp/st"
json_run "migrate: a bad option"    migrate 2 migrate --from vg0/db --to-pool vg1/pool --max-rounds 0 --json
json_run "migrate --recover"        migrate 0 migrate --recover --json --state-dir "$tmp/st"
printf '[job]\norigin = vg0\n' >"$tmp/conf/jobs.d/bad.conf"
json_run "sync: a broken job"       sync 2 sync --check-config -c "$tmp/conf" --json
json_run "receive --abort: no pool" receive 1 receive --abort --pool dmrepl-test-no-such-pool --json
mkdir -p "$tmp/conf/serve.d"
printf '[serve]\npools = vg1/pool\nsources = db1:*\n' >"$tmp/conf/serve.d/k.conf"
rm -f "$tmp/conf/jobs.d/bad.conf"
SSH_ORIGINAL_COMMAND="dmrepl receive --pool vg2/pool --json" \
	json_run "serve: a refused pool" serve 2 serve k -c "$tmp/conf"
SSH_ORIGINAL_COMMAND="sh" json_run "serve -j: a shell"  serve 2 serve -j k -c "$tmp/conf"

# ---- the validator bites: wrong outputs are refused, with file and line
"$DMREPL" ls --json "$fixtures/small.bin" >"$tmp/ls.json" 2>/dev/null
sed 's/"mapped_blocks":[0-9]*,//' "$tmp/ls.json" >"$tmp/wrong"
rejects "refused: ls without mapped_blocks" ls "wrong:1: .*'mapped_blocks' is a required property"
sed 's/"id":1,/"id":-1,/' "$tmp/ls.json" >"$tmp/wrong"
rejects "refused: a negative id" ls "wrong:1: .*-1 is less than the minimum of 0"
cat "$tmp/ls.json" "$tmp/ls.json" >"$tmp/wrong"
rejects "refused: two results" ls "wrong:2: 2 result lines"
"$DMREPL" copy --json "$tmp/src" "$tmp/dst" >"$tmp/copy.json" 2>/dev/null
{ sed -n '$p' "$tmp/copy.json"; sed -n '1p' "$tmp/copy.json"; } >"$tmp/wrong"
rejects "refused: progress after the result" copy "wrong:2: a progress line after the result"
sed 's/"what":"copy"/"what":"verify"/' "$tmp/copy.json" >"$tmp/wrong"
rejects "refused: copy progress named verify" copy "wrong:1: .*'copy' was expected"
sed 's/"engine":"[a-z]*"/"engine":"mmap"/' "$tmp/copy.json" >"$tmp/wrong"
rejects "refused: an unknown engine" copy "at engine: 'mmap' is not one of"
sed 's/,"milliseconds"/,"extra":1,"milliseconds"/' "$tmp/copy.json" >"$tmp/wrong"
rejects "refused: an unknown field" copy "('extra' was unexpected)"
printf '{"type":"result","ok":false,"error":"x","errno":"enoent","exit_status":1}\n' >"$tmp/wrong"
rejects "refused: a bad errno" ls "wrong:1: .*does not match"
printf '{"type":"result","ok":false,"error":"x","exit_status":1}' >"$tmp/wrong"
rejects "refused: no newline" ls "wrong:1: the last line has no newline"
printf '{"type":"result","ok":false,"error":"x","exit_status":1}\n' >"$tmp/wrong"
status=2 rejects "refused: exit_status not the exit status" ls 'wrong:1: "exit_status":1, but the run exited 2'
status=0 rejects "refused: ok false, exit 0" ls 'wrong:1: "ok":false, but the run exited 0'
printf '{"type":"result","ok":true,"left":1,"right":2,"transaction_id":3,"data_block_size_sectors":128,"metadata_snap":false,"runs":[{"type":"result","ok":false,"error":"x"}\n' >"$tmp/wrong"
rejects "refused: a half object" delta "wrong:1: not JSON"
: >"$tmp/wrong"
rejects "refused: no output" ls "wrong:0: no output at all"

expect_done
