#!/bin/sh
# What replication refuses, and what it leaves behind when it fails:
# - an incremental whose base has no replica, whose base replica was
#   written to, or whose base id was deleted and reused in the source;
# - a snapshot whose size cannot be known;
# - SIGKILL in the middle of a copy: nothing is recorded as a replica,
#   and a rerun cleans up and completes;
# - a destination pool that runs out of space: a clean error, no replica,
#   no device, no metadata snapshot left reserved.
#
# dmrepl-timeout: 400
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev sha256sum dmrepl

BLOCK=128
VOL_SECTORS=$((48 * 2048))
VOL_BYTES=$((48 * 1048576))
STATE=$DMT_TMP/state

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 128)" "$BLOCK"
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 128)" "$BLOCK"
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)
dst_state=$STATE/$(dmt_name dst)

dd if=/dev/urandom of="$origin" bs=1M count=20 oflag=direct 2>/dev/null
S1=$(dmrepl snapshot --pool "$(dmt_name src)" --origin 1)

# rep ARGS...: dmrepl replicate from src; stderr in $DMT_TMP/err.
rep() {
	echo "+ dmrepl replicate $*" >&2
	dmrepl replicate --pool "$(dmt_name src)" --state-dir "$STATE" "$@" \
		2> "$DMT_TMP/err"
}

# refused WHAT PATTERN ARGS...: replicate must fail with a message.
refused() {
	_what=$1 _pat=$2
	shift 2
	if rep "$@"; then
		dmt_fail "$_what: replicate $* succeeded"
	fi
	cat "$DMT_TMP/err" >&2
	dmt_assert_match "$_pat" "$(cat "$DMT_TMP/err")" "$_what: the message"
	dmt_assert_eq - "$(dmt_pool_held_root src)" "$_what: source metadata snapshot released"
	dmt_assert_eq - "$(dmt_pool_held_root dst)" "$_what: destination metadata snapshot released"
	dmt_assert_eq "" "$(dmt_dmrepl_devices)" "$_what: no dmrepl devices left"
}

replicas() {
	dmrepl replicas --to-pool "$(dmt_name "${1:-dst}")" --state-dir "$STATE" --no-headers
}

thin_sha() { dmt_thin_sha "$1" "$2" "$VOL_SECTORS"; }

refused "no size" "*size of thin $S1*--size*" --snap "$S1" --to-pool "$(dmt_name dst)"
rep --snap "$S1" --size "$VOL_BYTES" --to-pool "$(dmt_name dst)" > "$DMT_TMP/out" ||
	{ cat "$DMT_TMP/err" >&2; dmt_fail "full replication of $S1"; }
R1=$(sed -n 's/.* as thin \([0-9]*\) of .*/\1/p' "$DMT_TMP/out")
dmt_assert_match "[0-9]*" "$R1" "the replica's id is printed"

dmt_write_blocks "$origin" 65536 B 1 2 3
S2=$(dmrepl snapshot --pool "$(dmt_name src)" --origin 1)

refused "missing base" "*holds no replica of thin 99 of*" \
	--snap "$S2" --base 99 --to-pool "$(dmt_name dst)"

# The base's replica is written to on the destination.
dmt_create w "0 $VOL_SECTORS thin $(dmt_dev dst) $R1"
dmt_write_blocks "$(dmt_dev w)" 65536 X 7
dmt_remove w
dmt_assert_match "*$R1 *modified" "$(replicas)" "replicas shows $R1 as modified"
refused "written base replica" "*thin $R1, the replica of thin $S1 of*was written to since it was received*" \
	--snap "$S2" --base "$S1" --to-pool "$(dmt_name dst)"

# --full (force_full_copy) still works, and starts a new chain.
rep --snap "$S2" --base "$S1" --full --to-pool "$(dmt_name dst)" >/dev/null ||
	{ cat "$DMT_TMP/err" >&2; dmt_fail "full replication of $S2"; }

# The base id is deleted and reused in the source.
dmt_message src "delete $S2"
dmt_write_blocks "$origin" 65536 C 4
dmt_snap src origin "$S2" 1
S3=$(dmrepl snapshot --pool "$(dmt_name src)" --origin 1)
refused "reused base id" "*thin $S2 of*is not the snapshot that thin*deleted and its id reused*" \
	--snap "$S3" --base "$S2" --to-pool "$(dmt_name dst)"

# SIGKILL in the middle of a copy (slowed down to 4 MiB/s).
before=$(replicas | wc -l)
echo "+ dmrepl replicate --snap $S3 --full --bwlimit 4M & (killed)" >&2
# Not through rep(): $! must be dmrepl itself, not a subshell.
dmrepl replicate --pool "$(dmt_name src)" --state-dir "$STATE" --snap "$S3" \
	--full --size "$VOL_BYTES" --bwlimit 4M --to-pool "$(dmt_name dst)" \
	2> "$DMT_TMP/err" &
pid=$!
sleep 2
kill -9 "$pid"
wait "$pid" 2>/dev/null || :
ls "$dst_state" >&2
[ -n "$(ls "$dst_state" | grep '^staging-' || :)" ] ||
	dmt_fail "the killed replication left no staging record: it was not copying"
dmt_assert_eq "$before" "$(replicas | wc -l)" "no replica recorded by the killed run"
dmt_assert_eq - "$(dmt_pool_held_root src)" "no metadata snapshot held after SIGKILL"

rep --snap "$S3" --full --size "$VOL_BYTES" --to-pool "$(dmt_name dst)" > "$DMT_TMP/out" ||
	{ cat "$DMT_TMP/err" >&2; dmt_fail "the rerun after SIGKILL failed"; }
cat "$DMT_TMP/err" >&2
dmt_assert_match "*deleted thin *an unfinished replica of thin $S3*" "$(cat "$DMT_TMP/err")" \
	"the rerun deleted the killed run's device"
R3=$(sed -n 's/.* as thin \([0-9]*\) of .*/\1/p' "$DMT_TMP/out")
dmt_assert_eq "" "$(ls "$dst_state" | grep '^staging-' || :)" "no staging record left"
dmt_assert_eq "" "$(dmt_dmrepl_devices)" "no dmrepl devices left after the rerun"
dmt_assert_eq "$(thin_sha src "$S3")" "$(thin_sha dst "$R3")" "the rerun's replica is exact"
dmt_assert_eq $((before + 1)) "$(replicas | wc -l)" "one more replica after the rerun"

# Killed just after its replica record was written, before its staging
# record was dropped: the next run must keep the finished replica.
sed 's/^pid=0$/pid=999999/' "$dst_state/replica-$R3" > "$dst_state/staging-$R3"
# Any next run cleans up first, even one that is then refused.
rep --snap "$S3" --base 99 --to-pool "$(dmt_name dst)" > "$DMT_TMP/out" &&
	dmt_fail "a replication from a base with no replica succeeded"
dmt_assert_eq "" "$(ls "$dst_state" | grep '^staging-' || :)" "the left staging record was dropped"
dmt_assert_eq "$(thin_sha src "$S3")" "$(thin_sha dst "$R3")" \
	"the replica whose commit was cut short is kept, intact"
dmt_assert_match "*$R3*ok*" "$(replicas | grep "^ *$R3 " || :)" "it is still listed as ok"

# SIGTERM in the middle of a copy: the job is cancelled, its device
# deleted, nothing recorded, and the exit status says which signal.
before=$(replicas | wc -l)
thins=$(dmrepl ls --pool "$(dmt_name dst)" --no-headers | wc -l)
echo "+ dmrepl replicate --snap $S3 --full --bwlimit 4M & (SIGTERM)" >&2
dmrepl replicate --pool "$(dmt_name src)" --state-dir "$STATE" --snap "$S3" \
	--full --size "$VOL_BYTES" --bwlimit 4M --to-pool "$(dmt_name dst)" \
	2> "$DMT_TMP/err" &
pid=$!
sleep 2
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$DMT_TMP/err" >&2
dmt_assert_eq 143 "$rc" "exit status after SIGTERM"
dmt_assert_eq "" "$(ls "$dst_state" | grep '^staging-' || :)" "no staging record after SIGTERM"
dmt_assert_eq "$before" "$(replicas | wc -l)" "no replica recorded after SIGTERM"
dmt_assert_eq "$thins" "$(dmrepl ls --pool "$(dmt_name dst)" --no-headers | wc -l)" \
	"the cancelled replication's device was deleted"
dmt_assert_eq "" "$(dmt_dmrepl_devices)" "no dmrepl devices after SIGTERM"
dmt_assert_eq - "$(dmt_pool_held_root src)" "no metadata snapshot held after SIGTERM"
dmt_assert_eq - "$(dmt_pool_held_root dst)" "no destination metadata snapshot held after SIGTERM"

# A destination that fills up: 8 MiB of data space for 20 MiB of data.
small_data=$(dmt_loop small-data 8)
small_meta=$(dmt_loop small-meta 8)
dd if=/dev/zero of="$small_meta" bs=4096 count=1 conv=notrunc 2>/dev/null
dmt_create small "0 $(( $(dmt_sectors "$small_data") / BLOCK * BLOCK )) thin-pool $small_meta $small_data $BLOCK 0 1 error_if_no_space"
refused "full destination" "*dmrepl-*dst-*offset*" \
	--snap "$S3" --full --size "$VOL_BYTES" --to-pool "$(dmt_name small)"
dmt_assert_eq "" "$(replicas small)" "no replica recorded in the full pool"
dmt_assert_eq "" "$(dmrepl ls --pool "$(dmt_name small)" --no-headers)" \
	"the unfinished device was deleted from the full pool"
dmt_assert_eq - "$(dmt_pool_held_root small)" "no metadata snapshot held on the full pool"
