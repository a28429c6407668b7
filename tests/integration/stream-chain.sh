#!/bin/sh
# dmrepl send | dmrepl receive between two real thin pools: a full
# stream, an incremental (overwrites, new blocks, whole and partial
# discards, a block overwritten with zeroes), a chain of three
# snapshots in one pipe (--chain), each replica checked byte for byte
# (sha256 against its source snapshot) and for thinness. Then what
# receive refuses before writing anything: a replay of a stream it
# already holds, a stream whose base it holds no replica of, and one
# whose base replica was written to on the destination. And -n on live
# pools: snapshot, send, receive and recover change nothing.
#
# It runs twice: into a destination pool with the source's block size
# (64 KiB), plain; and into one with 1 MiB blocks, with --compress and
# --detect-zeroes.
#
# dmrepl-timeout: 400
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev blkdiscard sha256sum dmrepl

SRC_BLOCK=128				# sectors: 64 KiB
VOL_MIB=48
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
STATE=$DMT_TMP/state
SRC=$(dmt_name src)

src_meta=$(dmt_loop src-meta 8)
src_data=$(dmt_loop src-data 160)
dmt_pool src "$src_meta" "$src_data" "$SRC_BLOCK"
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)

thins() { dmrepl ls --pool "$(dmt_name "$1")" --no-headers; }

snapshot() {
	dmrepl snapshot --pool "$SRC" --origin "$1"
}

# replica_of DST SRC_ID: the id of the intact replica of SRC_ID, from
# dmrepl replicas --json.
replica_of() {
	dmrepl replicas --to-pool "$(dmt_name "$1")" --state-dir "$STATE" --json |
		tr '{' '\n' | grep "\"src_id\":$2," | grep '"state":"ok"' |
		sed -n 's/.*"id":\([0-9]*\),.*/\1/p' | tail -n 1
}

replicas() {
	dmrepl replicas --to-pool "$(dmt_name "$1")" --state-dir "$STATE" --no-headers
}

# xfer DST SEND_ARGS...: dmrepl send ... | dmrepl receive --pool DST --json.
# The receiver's status is returned; the sender's is in $DMT_TMP/send.rc.
# Output: $DMT_TMP/out (receive's JSON), $DMT_TMP/send.err, $DMT_TMP/err.
xfer() {
	_dst=$1
	shift
	echo "+ dmrepl send --pool src $* | dmrepl receive --pool $_dst --json" >&2
	_rc=0
	{
		_s=0
		dmrepl send --pool "$SRC" "$@" -q 2> "$DMT_TMP/send.err" || _s=$?
		echo "$_s" > "$DMT_TMP/send.rc"
	} | dmrepl receive --pool "$(dmt_name "$_dst")" --state-dir "$STATE" --json \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	return "$_rc"
}

# received DST SEND_ARGS...: xfer must succeed on both ends; prints the
# replica's id from receive's result line.
received() {
	_dst=$1
	xfer "$@" || {
		cat "$DMT_TMP/send.err" "$DMT_TMP/err" "$DMT_TMP/out" >&2
		dmt_fail "receive into $_dst failed: send $*"
	}
	cat "$DMT_TMP/err" >&2
	dmt_assert_eq 0 "$(cat "$DMT_TMP/send.rc")" "dmrepl send $* exits 0"
	dmt_json_capture receive "$DMT_TMP/out" 0
	_res=$(tail -n 1 "$DMT_TMP/out")
	echo "# $_res" >&2
	dmt_assert_match '*"type":"result","ok":true*' "$_res" "receive reports ok"
	echo "$_res" | sed -n 's/.*"replica":\([0-9]*\).*/\1/p'
}

# refused WHAT DST PATTERN SEND_ARGS...: receive exits 1 with a message
# matching PATTERN and changes nothing in DST.
refused() {
	_what=$1 _dst=$2 _pat=$3
	shift 3
	_thins=$(thins "$_dst")
	_reps=$(replicas "$_dst")
	_rc=0
	xfer "$_dst" "$@" || _rc=$?
	cat "$DMT_TMP/err" >&2
	dmt_json_capture receive "$DMT_TMP/out" "$_rc"
	dmt_assert_eq 1 "$_rc" "$_what: receive exits 1"
	dmt_assert_match "$_pat" "$(cat "$DMT_TMP/err")" "$_what: the message"
	dmt_assert_match '*"ok":false*' "$(tail -n 1 "$DMT_TMP/out")" "$_what: result ok false"
	dmt_assert_text_eq "$_thins" "$(thins "$_dst")" "$_what: no thin device created or deleted in $_dst"
	dmt_assert_text_eq "$_reps" "$(replicas "$_dst")" "$_what: replicas of $_dst unchanged"
	dmt_assert_eq "" "$(dmrepl receive --pool "$(dmt_name "$_dst")" --state-dir "$STATE" \
		--resume-token)" "$_what: nothing left to resume"
	no_leftovers "$_dst"
}

# No metadata snapshot held, no dmrepl device left.
no_leftovers() {
	dmt_assert_eq - "$(dmt_pool_held_root src)" "source metadata snapshot released"
	dmt_assert_eq - "$(dmt_pool_held_root "$1")" "destination metadata snapshot released"
	dmt_assert_eq "" "$(dmt_dmrepl_devices)" "no dmrepl devices left"
}

# check DST SNAP REPLICA BLOCK_RATIO: equal bytes, and the replica stays thin.
check() {
	dmt_assert_eq "$3" "$(replica_of "$1" "$2")" "dmrepl replicas names $3 as the replica of $2"
	dmt_check_replica "$1" "$2" "$3" "$4" "$VOL_SECTORS" cache
}

# dry_runs DST R2: -n changes nothing on live pools (snapshot, send,
# receive, recover), and says what it would do; R2 is the replica of S2.
dry_runs() {
	_dst=$1 _r2=$2
	_src_thins=$(thins src) _thins=$(thins "$_dst") _reps=$(replicas "$_dst")

	_out=$(dmrepl snapshot -n --pool "$SRC" --origin 1)
	dmt_assert_eq "would create thin $((S6 + 1)) in $SRC, a snapshot of thin 1 (1 active device of it suspended meanwhile); nothing created" \
		"$_out" "snapshot -n names the id it would take"
	_out=$(dmrepl -n snapshot --pool "$SRC" --origin 1 --id 77 --json)
	dmt_assert_match '{"type":"result","ok":true,"dry_run":true,"pool":"'"$SRC"'","origin":1,"id":77,"active_devices":1}' \
		"$_out" "-n snapshot --json"
	_rc=0
	dmrepl snapshot -n --pool "$SRC" --origin 99 2> "$DMT_TMP/err" || _rc=$?
	dmt_assert_eq 1 "$_rc" "snapshot -n of a missing origin exits 1"
	dmt_assert_match "*no thin 99 to snapshot*" "$(cat "$DMT_TMP/err")" "snapshot -n: the missing origin named"
	_rc=0
	dmrepl snapshot -n --pool "$SRC" --origin 1 --id "$S2" 2> "$DMT_TMP/err" || _rc=$?
	dmt_assert_eq 1 "$_rc" "snapshot -n onto a taken id exits 1"
	dmt_assert_match "*thin $S2 exists already*" "$(cat "$DMT_TMP/err")" "snapshot -n: the taken id named"
	dmt_assert_text_eq "$_src_thins" "$(thins src)" "snapshot -n created nothing in the source"

	_out=$(dmrepl send -n --pool "$SRC" --snap "$S2" --base "$S1" --size "$VOL_BYTES")
	dmt_assert_match "thin $S2 of $SRC: the stream would carry * bytes of data and * bytes of discards in * extents, from thin $S1; nothing sent" \
		"$_out" "send -n says what the stream would carry"
	_out=$(dmrepl -n send --pool "$SRC" --snap "$S1" --size "$VOL_BYTES" --json)
	dmt_assert_match '{"type":"result","ok":true,"dry_run":true,"pool":"'"$SRC"'","snap":'"$S1"',"streams":1,"size_bytes":'"$VOL_BYTES"',*' \
		"$_out" "send -n --json: the result on stdout"
	no_leftovers "$_dst"

	# receive -n: a stream the pool can take, and one it cannot
	dmrepl send -q --pool "$SRC" --snap "$S3" --base "$S2" --size "$VOL_BYTES" \
		> "$DMT_TMP/s3.stream"
	_out=$(dmrepl receive -n --pool "$(dmt_name "$_dst")" --state-dir "$STATE" \
		< "$DMT_TMP/s3.stream")
	dmt_assert_match "thin $S3 of *src, incremental: * records, * bytes of data, * discarded, * zeroed; $(dmt_name "$_dst") holds its base, as thin $_r2; checked whole, nothing written" \
		"$_out" "receive -n into the pool: what it carries, and its base"
	_out=$(dmrepl receive -n --json --pool "$(dmt_name "$_dst")" --state-dir "$STATE" \
		< "$DMT_TMP/s3.stream" | tail -n 1)
	dmt_assert_match '{"type":"result","ok":true,"dry_run":true,"dst_pool":"*","streams":1,*"snap":'"$S3"',"full":false,"base_replica":'"$_r2"',"resumed":false,*' \
		"$_out" "receive -n --json into the pool"
	dmrepl send -q --pool "$SRC" --snap "$S4" --base "$S3" --size "$VOL_BYTES" \
		> "$DMT_TMP/s4.stream"
	_rc=0
	dmrepl receive -n --pool "$(dmt_name "$_dst")" --state-dir "$STATE" \
		< "$DMT_TMP/s4.stream" 2> "$DMT_TMP/err" || _rc=$?
	dmt_assert_eq 1 "$_rc" "receive -n of a stream whose base is not held exits 1"
	dmt_assert_match "*holds no replica of the stream's base (thin $S3,*" \
		"$(cat "$DMT_TMP/err")" "receive -n: the missing base named"
	dmt_assert_text_eq "$_thins" "$(thins "$_dst")" "receive -n created no thin in $_dst"
	dmt_assert_text_eq "$_reps" "$(replicas "$_dst")" "receive -n recorded no replica in $_dst"
	dmt_assert_eq "" "$(dmrepl receive --pool "$(dmt_name "$_dst")" --state-dir "$STATE" \
		--resume-token)" "receive -n left nothing to resume"
	no_leftovers "$_dst"

	# recover -n: a device a killed dmrepl left. Its owner lives while the
	# device is made, as a dmrepl would: a dead owner's device without a
	# table yet is any pool's to sweep (a test alongside could take it).
	sleep 600 &
	_ghost=$!
	dmt_dmsetup create "dmrepl-$_ghost-src-1" --table \
		"0 $VOL_SECTORS thin $(dmt_dev src) 1"
	kill "$_ghost"
	wait "$_ghost" 2>/dev/null || :
	_out=$(dmrepl recover -n --pool "$SRC")
	dmt_assert_eq "pool $SRC: no metadata snapshot left held; 1 device would be removed; nothing changed" \
		"$_out" "recover -n says what it would remove"
	dmt_assert_eq "dmrepl-$_ghost-src-1 " "$(dmt_dmrepl_devices)" \
		"recover -n removed nothing"
	_out=$(dmrepl -n recover --pool "$SRC" --json)
	dmt_assert_match '{"type":"result","ok":true,"dry_run":true,"pool":"'"$SRC"'","devices_removed":1,*' \
		"$_out" "-n recover --json"
	_out=$(dmrepl recover --pool "$SRC")
	dmt_assert_match "pool $SRC: no metadata snapshot left held; 1 device removed*" \
		"$_out" "recover then removes it"
	_out=$(dmrepl recover -n --pool "$(dmt_name "$_dst")" --state-dir "$STATE")
	dmt_assert_eq "pool $(dmt_name "$_dst"): no metadata snapshot left held; 0 devices would be removed; 0 unfinished replications would be deleted; nothing changed" \
		"$_out" "recover -n on the destination"
	dmt_assert_text_eq "$_src_thins" "$(thins src)" "no dry run changed the source"
	no_leftovers "$_dst"
}

# The source's history.
echo "+ fill 0-16 MiB with random data, and two blocks far out" >&2
dd if=/dev/urandom of="$origin" bs=1M count=16 oflag=direct 2>/dev/null
dmt_write_blocks "$origin" 65536 A 500 700
S1=$(snapshot 1)

dmt_write_blocks "$origin" 65536 B 3 4 100 600		# overwrites, new blocks
dmt_discard_blocks "$origin" 65536 10 11 12		# whole-block discards
blkdiscard -o $((20 * 65536 + 4096)) -l 8192 "$origin"	# partial: ignored by the pool
echo "+ overwrite block 30 with zeroes" >&2
dd if=/dev/zero of="$origin" bs=65536 seek=30 count=1 oflag=direct conv=notrunc 2>/dev/null
S2=$(snapshot 1)

dmt_write_blocks "$origin" 65536 C 0 5 650
dmt_discard_blocks "$origin" 65536 100
S3=$(snapshot 1)
dmt_write_blocks "$origin" 65536 D 200 201 202 703
dmt_discard_blocks "$origin" 65536 500
S4=$(snapshot 1)
echo "+ 2 MiB of random data at 24 MiB" >&2
dd if=/dev/urandom of="$origin" bs=1M seek=24 count=2 oflag=direct conv=notrunc 2>/dev/null
dmt_write_blocks "$origin" 65536 E 1 2 4
S5=$(snapshot 1)
dmt_write_blocks "$origin" 65536 F 7
S6=$(snapshot 1)
echo "# snapshots: S1=$S1 S2=$S2 S3=$S3 S4=$S4 S5=$S5 S6=$S6" >&2

for dst_block in 128 2048; do
	ratio=$((dst_block / SRC_BLOCK))
	dst=dst$dst_block
	opts=""
	[ "$dst_block" = 2048 ] && opts="--compress --detect-zeroes"
	dmt_pool "$dst" "$(dmt_loop "$dst-meta" 8)" "$(dmt_loop "$dst-data" 160)" "$dst_block"

	# shellcheck disable=SC2086 # $opts is a list of options
	r1=$(received "$dst" --snap "$S1" --size "$VOL_BYTES" $opts)
	check "$dst" "$S1" "$r1" "$ratio"
	dmt_assert_match '*"streams":1,*"snap":'"$S1"',*"resumed":false*' \
		"$(tail -n 1 "$DMT_TMP/out")" "the result names snapshot $S1"

	# shellcheck disable=SC2086
	r2=$(received "$dst" --snap "$S2" --base "$S1" --size "$VOL_BYTES" $opts)
	check "$dst" "$S2" "$r2" "$ratio"
	dmt_assert_match '*"base_replica":'"$r1"',*' "$(tail -n 1 "$DMT_TMP/out")" \
		"the incremental $S2 is based on replica $r1"
	no_leftovers "$dst"

	if [ "$dst_block" = 128 ]; then
		dry_runs "$dst" "$r2"
	fi

	# Replays: the full and the incremental again.
	refused "replay of $S1" "$dst" "*already holds thin $S1 of *as thin $r1*" \
		--snap "$S1" --size "$VOL_BYTES"
	# shellcheck disable=SC2086
	refused "replay of $S2" "$dst" "*already holds thin $S2 of *as thin $r2*" \
		--snap "$S2" --base "$S1" --size "$VOL_BYTES" $opts

	# A base the destination does not hold: S3 was never sent.
	refused "unknown base $S3" "$dst" \
		"*holds no replica of the stream's base (thin $S3, creation time *, root *, * mapped blocks, of *src)*" \
		--snap "$S4" --base "$S3" --size "$VOL_BYTES"

	# The chain S2 -> S3 -> S4 -> S5 in one pipe.
	# shellcheck disable=SC2086
	r5=$(received "$dst" --snap "$S5" --base "$S2" --chain --size "$VOL_BYTES" $opts)
	dmt_assert_match '*"streams":3,*"snap":'"$S5"',*' "$(tail -n 1 "$DMT_TMP/out")" \
		"the chain was three streams, the last $S5"
	r3=$(replica_of "$dst" "$S3")
	r4=$(replica_of "$dst" "$S4")
	[ -n "$r3" ] || dmt_fail "the chain left no replica of $S3"
	[ -n "$r4" ] || dmt_fail "the chain left no replica of $S4"
	check "$dst" "$S3" "$r3" "$ratio"
	check "$dst" "$S4" "$r4" "$ratio"
	check "$dst" "$S5" "$r5" "$ratio"
	list=$(replicas "$dst")
	echo "$list" >&2
	dmt_assert_eq 5 "$(echo "$list" | grep -c ' ok$')" "five replicas listed as ok in $dst"
	no_leftovers "$dst"

	# A base replica written to on the destination is refused.
	dmt_create w "0 $VOL_SECTORS thin $(dmt_dev "$dst") $r5"
	dmt_write_blocks "$(dmt_dev w)" 65536 X 40
	dmt_remove w
	refused "written base replica" "$dst" "*thin $r5, the replica of thin $S5 of *was written to*" \
		--snap "$S6" --base "$S5" --size "$VOL_BYTES"
	# And the earlier replicas are as they were.
	check "$dst" "$S1" "$r1" "$ratio"
	check "$dst" "$S4" "$r4" "$ratio"

	# A replica deleted by hand (with its anchor, as dmrepl(8) says) is
	# no longer held: the same stream is received again.
	dmt_message "$dst" "delete $((r5 + 1))"
	dmt_message "$dst" "delete $r5"
	dmt_assert_match "*$r5 *missing*" "$(replicas "$dst")" "replicas shows $r5 as missing"
	# shellcheck disable=SC2086
	again=$(received "$dst" --snap "$S5" --base "$S4" --size "$VOL_BYTES" $opts)
	check "$dst" "$S5" "$again" "$ratio"
	no_leftovers "$dst"
done
