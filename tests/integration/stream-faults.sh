#!/bin/sh
# What dmrepl receive does with streams that go wrong, between two real
# thin pools:
# - damaged streams (a flipped byte in the header, in a record header,
#   in a DATA payload, in END; a record cut out; a truncated stream; a
#   range past the volume's end, forged with stream-edit so that every
#   checksum is right): exit 1, a message saying what is wrong, nothing
#   committed, the base replica untouched; a staging device kept for a
#   resume is dropped by --abort;
# - SIGKILL of the sender or of the receiver at a random moment, then
#   resume with the token (or a plain rerun when there is none), many
#   times: every replica exact, the earlier ones untouched;
# - SIGTERM of the receiver: exit 143, the staging kept and resumable,
#   also while the stream stalls;
# - a destination pool that runs out of space: a clean error naming the
#   device, nothing kept, nothing recorded.
#
# dmrepl-timeout: 480
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev sha256sum mkfifo od awk usleep dmrepl stream-edit

RUNS=20					# kill-and-resume rounds
BLOCK=128				# sectors: 64 KiB
VOL_MIB=48
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
STATE=$DMT_TMP/state
SRC=$(dmt_name src)
DST=$(dmt_name dst)

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 192)" "$BLOCK"
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 192)" "$BLOCK"
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)


thin_sha() { dmt_thin_sha "$1" "$2" "$VOL_SECTORS" cache; }

snapshot() { dmrepl snapshot --pool "$SRC" --origin "$1"; }
thins() { dmrepl ls --pool "${1:-$DST}" --no-headers | awk '{ print $1 }'; }
replicas() { dmrepl replicas --to-pool "${1:-$DST}" --state-dir "$STATE" --no-headers; }
tokens() { dmrepl receive --pool "${1:-$DST}" --state-dir "$STATE" --resume-token; }

# replica_of SRC_ID: the id of the newest intact replica of SRC_ID in
# dst (the records of replicas deleted by hand stay, as "missing").
replica_of() {
	dmrepl replicas --to-pool "$DST" --state-dir "$STATE" --json |
		tr '{' '\n' | grep "\"src_id\":$1," | grep '"state":"ok"' |
		sed -n 's/.*"id":\([0-9]*\),.*/\1/p' | tail -n 1
}

# intact REPLICA: listed as ok (its metadata is as received).
intact() {
	replicas | awk -v id="$1" '$1 == id { print $NF }' | grep -qx ok ||
		dmt_fail "replica $1 is no longer ok: $(replicas | awk -v id="$1" '$1 == id')"
}


no_leftovers() {
	dmt_assert_eq - "$(dmt_pool_held_root src)" "$1: source metadata snapshot released"
	dmt_assert_eq - "$(dmt_pool_held_root dst)" "$1: destination metadata snapshot released"
	dmt_no_dmrepl_devices "$1"
}

# xfer SEND_ARGS...: dmrepl send ... | dmrepl receive --pool dst --json;
# returns the receiver's status, the sender's in $DMT_TMP/send.rc.
xfer() {
	echo "+ dmrepl send $* | dmrepl receive --json" >&2
	_rc=0
	{
		_s=0
		dmrepl send --pool "$SRC" "$@" -q 2> "$DMT_TMP/send.err" || _s=$?
		echo "$_s" > "$DMT_TMP/send.rc"
	} | dmrepl receive --pool "$DST" --state-dir "$STATE" --json \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	return "$_rc"
}

# received WHAT SEND_ARGS...: both ends succeed; prints the replica's id.
received() {
	_what=$1
	shift
	xfer "$@" || {
		cat "$DMT_TMP/send.err" "$DMT_TMP/err" "$DMT_TMP/out" >&2
		dmt_fail "$_what: the receive failed"
	}
	dmt_assert_eq 0 "$(cat "$DMT_TMP/send.rc")" "$_what: dmrepl send exits 0"
	_res=$(tail -n 1 "$DMT_TMP/out")
	echo "# $_res" >&2
	dmt_assert_match '*"ok":true*' "$_res" "$_what: receive reports ok"
	echo "$_res" | sed -n 's/.*"replica":\([0-9]*\).*/\1/p'
}

# drop_replica ID: delete a replica and its anchor from dst by hand.
drop_replica() {
	dmt_message dst "delete $(($1 + 1))"
	dmt_message dst "delete $1"
}

# ------------------------------------------------------------------ setup

echo "+ 24 MiB of random data at 0" >&2
dd if=/dev/urandom of="$origin" bs=1M count=24 oflag=direct 2>/dev/null
B=$(snapshot 1)
t=$(dmt_now)
RB=$(received "full $B" --snap "$B" --size "$VOL_BYTES")
echo "# full stream of 24 MiB: $(awk -v a="$t" -v b="$(dmt_now)" 'BEGIN { print b - a }') s" >&2

dmt_write_blocks "$origin" 65536 B 3 4 600
dmt_discard_blocks "$origin" 65536 10
D=$(snapshot 1)
echo "+ dmrepl send --snap $D --base $B > good.st" >&2
dmrepl send --pool "$SRC" --snap "$D" --base "$B" --size "$VOL_BYTES" -q > "$DMT_TMP/good.st"
stream-edit list "$DMT_TMP/good.st" > "$DMT_TMP/records"
cat "$DMT_TMP/records" >&2
dmt_assert_eq "264 DATA" "$(head -n 1 "$DMT_TMP/records" | cut -d' ' -f1-2)" \
	"the stream's first record is DATA, at byte 264"
SIZE=$(wc -c < "$DMT_TMP/good.st")
SHA_RB=$(thin_sha dst "$RB")
dmt_assert_eq "$(thin_sha src "$B")" "$SHA_RB" "the full replica is exact"

# ------------------------------------------------------------------ damage

# flip FILE OFFSET: invert one byte.
flip() {
	_b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	# shellcheck disable=SC2059 # an octal escape built on purpose
	printf "\\$(printf %03o $((_b ^ 255)))" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# damaged WHAT PATTERN FILE: receive refuses FILE with a message matching
# PATTERN, commits nothing, leaves the base replica as it was, and
# --abort drops whatever it kept.
damaged() {
	_what=$1 _pat=$2
	_thins=$(thins)
	_reps=$(replicas)
	echo "+ dmrepl receive < $_what" >&2
	_rc=0
	dmrepl receive --pool "$DST" --state-dir "$STATE" < "$3" > "$DMT_TMP/out" \
		2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	dmt_assert_eq 1 "$_rc" "$_what: receive exits 1"
	dmt_assert_match "$_pat" "$(cat "$DMT_TMP/err")" "$_what: the message"
	dmt_assert_text_eq "$_reps" "$(replicas)" "$_what: no replica recorded"
	no_leftovers "$_what"
	_tok=$(tokens)
	if [ -n "$_tok" ]; then
		echo "# kept to resume: $_tok" >&2
		dmt_assert_eq 1 "$(echo "$_tok" | wc -l)" "$_what: one resumable receive"
		dmt_assert_eq $(($(echo "$_thins" | wc -l) + 1)) "$(thins | wc -l)" \
			"$_what: the staging device is the only new thin"
	else
		echo "# nothing kept to resume" >&2
	fi
	_out=$(dmrepl receive --pool "$DST" --state-dir "$STATE" --abort)
	echo "$_out" >&2
	dmt_assert_match "[01] interrupted receive(s) dropped from $DST" "$_out" "$_what: --abort"
	dmt_assert_text_eq "$_thins" "$(thins)" "$_what: no thin left in dst after --abort"
	dmt_assert_eq "" "$(tokens)" "$_what: nothing to resume after --abort"
	intact "$RB"
}

cp "$DMT_TMP/good.st" "$DMT_TMP/bad.st"
flip "$DMT_TMP/bad.st" 20
damaged "a flipped byte in the header" "*header checksum mismatch*" "$DMT_TMP/bad.st"

cp "$DMT_TMP/good.st" "$DMT_TMP/bad.st"
flip "$DMT_TMP/bad.st" 274
damaged "a flipped byte in a record header" "*record 0 at byte 264: checksum mismatch*" \
	"$DMT_TMP/bad.st"

cp "$DMT_TMP/good.st" "$DMT_TMP/bad.st"
flip "$DMT_TMP/bad.st" $((264 + 40 + 100))
damaged "a flipped byte in a DATA payload" "*record 0 at byte 264: checksum mismatch (DATA *" \
	"$DMT_TMP/bad.st"

cp "$DMT_TMP/good.st" "$DMT_TMP/bad.st"
flip "$DMT_TMP/bad.st" $((SIZE - 20))
damaged "a flipped byte in END" "*checksum mismatch (END *" "$DMT_TMP/bad.st"

head -c $((SIZE / 2)) "$DMT_TMP/good.st" > "$DMT_TMP/bad.st"
damaged "a stream cut in the middle" "*stream ended early*" "$DMT_TMP/bad.st"

# Cut at the boundary before END: every record intact, END missing.
end_pos=$(awk '$2 == "END" { print $1 }' "$DMT_TMP/records")
head -c "$end_pos" "$DMT_TMP/good.st" > "$DMT_TMP/bad.st"
damaged "a stream without END" "*stream ended early after * records at byte $end_pos*" \
	"$DMT_TMP/bad.st"

# The second record cut out: a gap in the sequence numbers.
p1=$(sed -n 2p "$DMT_TMP/records" | cut -d' ' -f1)
p2=$(sed -n 3p "$DMT_TMP/records" | cut -d' ' -f1)
{ head -c "$p1" "$DMT_TMP/good.st"; tail -c +$((p2 + 1)) "$DMT_TMP/good.st"; } > "$DMT_TMP/bad.st"
damaged "a record cut out" "*sequence number 2, expected 1*" "$DMT_TMP/bad.st"

# Forged, checksums right: the volume is said to be 1 MiB, and block
# 600 (at 37.5 MiB) comes past its end.
cp "$DMT_TMP/good.st" "$DMT_TMP/bad.st"
stream-edit set "$DMT_TMP/bad.st" 24 8 1048576
stream-edit resign "$DMT_TMP/bad.st"
damaged "a range past the volume's end" "*ends past the volume size 1048576*" "$DMT_TMP/bad.st"

# Forged: the last DATA record moved to the volume's last byte.
last=$(awk '$2 == "DATA" { p = $1 } END { print p }' "$DMT_TMP/records")
cp "$DMT_TMP/good.st" "$DMT_TMP/bad.st"
stream-edit set "$DMT_TMP/bad.st" $((last + 16)) 8 $((VOL_BYTES - 512))
stream-edit resign "$DMT_TMP/bad.st"
damaged "a DATA record past the volume's end" "*DATA $((VOL_BYTES - 512))+* ends past the volume size $VOL_BYTES*" \
	"$DMT_TMP/bad.st"

head -c 4096 /dev/urandom > "$DMT_TMP/bad.st"
damaged "not a stream" "*not a dmrepl stream*" "$DMT_TMP/bad.st"

dmt_assert_eq "$SHA_RB" "$(thin_sha dst "$RB")" "after the damaged streams: the base replica is unchanged"

# The intact stream still goes in, and the replica is exact.
echo "+ dmrepl receive < good.st" >&2
dmrepl receive --pool "$DST" --state-dir "$STATE" --json < "$DMT_TMP/good.st" > "$DMT_TMP/out" ||
	dmt_fail "the intact stream was refused after the damaged ones"
RD=$(sed -n 's/.*"replica":\([0-9]*\).*/\1/p' "$DMT_TMP/out")
dmt_assert_eq "$(thin_sha src "$D")" "$(thin_sha dst "$RD")" "the intact stream's replica is exact"
SHA_RD=$(thin_sha dst "$RD")
no_leftovers "after the damaged streams"
echo "# damaged streams done at $(dmt_elapsed) s" >&2

# ------------------------------------------------------------------ kill and resume

echo "+ 24 MiB of random data at 12 MiB" >&2
dd if=/dev/urandom of="$origin" bs=1M seek=12 count=24 oflag=direct conv=notrunc 2>/dev/null
X=$(snapshot 1)
SHA_X=$(thin_sha src "$X")

# Every round sends a new snapshot of X (same data, its own identity)
# on top of D: 24 MiB of changes.
t=$(dmt_now)
X0=$(snapshot "$X")
r=$(received "uninterrupted" --snap "$X0" --base "$D" --size "$VOL_BYTES" --checkpoint 1M)
DUR=$(awk -v a="$t" -v b="$(dmt_now)" 'BEGIN { print b - a }')
echo "# an uninterrupted 24 MiB incremental takes $DUR s" >&2
dmt_assert_eq "$SHA_X" "$(thin_sha dst "$r")" "the uninterrupted replica is exact"
drop_replica "$r"
dmt_message src "delete $X0"

# random_ms SECS: a random delay in ms, up to 80 % of SECS (seeded).
random_ms() {
	dmt_random "$(awk -v m="$1" 'BEGIN { printf "%d\n", m * 800 + 1 }')"
}

resumed=0 reran=0 committed=0
i=1
while [ "$i" -le "$RUNS" ]; do
	Xi=$(snapshot "$X")
	victim=receiver
	[ $((i % 2)) = 1 ] && victim=sender
	ms=$(random_ms "$DUR")
	rm -f "$DMT_TMP/pipe"
	mkfifo "$DMT_TMP/pipe"
	echo "# round $i at $(dmt_elapsed) s" >&2
	echo "+ round $i: send --snap $Xi --base $D | receive; kill -9 the $victim after $ms ms" >&2
	dmrepl send --pool "$SRC" --snap "$Xi" --base "$D" --size "$VOL_BYTES" \
		--checkpoint 1M -q > "$DMT_TMP/pipe" 2> "$DMT_TMP/send.err" &
	spid=$!
	dmrepl receive --pool "$DST" --state-dir "$STATE" -q < "$DMT_TMP/pipe" \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err" &
	rpid=$!
	usleep $((ms * 1000))
	if [ "$victim" = sender ]; then
		kill -9 "$spid" 2>/dev/null || :
	else
		kill -9 "$rpid" 2>/dev/null || :
	fi
	src_rc=0 dst_rc=0
	wait "$spid" || src_rc=$?
	wait "$rpid" || dst_rc=$?
	echo "# sender exit $src_rc, receiver exit $dst_rc" >&2
	cat "$DMT_TMP/send.err" "$DMT_TMP/err" >&2
	# A sender killed outright leaves its read-only view of the snapshot
	# mapped; the next send must remove it (no_leftovers, below).
	view=$(dmsetup ls | awk -v p="dmrepl-$spid-src-" 'index($1, p) == 1 { print $1 }')
	[ -n "$view" ] && echo "# the killed sender left $view" >&2

	intact "$RB"
	intact "$RD"
	tok=$(tokens)
	echo "# token: ${tok:-none}" >&2
	[ "$(echo "$tok" | grep -c .)" -le 1 ] || dmt_fail "round $i: more than one resumable receive"
	if [ -n "$tok" ]; then
		r=$(received "round $i: resume" --resume "$tok" --size "$VOL_BYTES" --checkpoint 1M)
		dmt_assert_match '*"resumed":true*' "$(tail -n 1 "$DMT_TMP/out")" "round $i: resumed"
		resumed=$((resumed + 1))
	elif [ -n "$(replica_of "$Xi")" ]; then
		r=$(replica_of "$Xi")
		committed=$((committed + 1))
		if [ -n "$view" ]; then
			# Any send clears it: one with nothing to send.
			dmt_run dmrepl send --pool "$SRC" --snap "$X" --base "$Xi" --size "$VOL_BYTES" \
				-q > /dev/null
		fi
	else
		r=$(received "round $i: rerun" --snap "$Xi" --base "$D" --size "$VOL_BYTES" --checkpoint 1M)
		reran=$((reran + 1))
	fi
	dmt_assert_eq "$SHA_X" "$(thin_sha dst "$r")" "round $i: the replica of $Xi is exact"
	# Its metadata each round (intact, above), its bytes every fifth.
	[ $((i % 5)) = 0 ] &&
		dmt_assert_eq "$SHA_RD" "$(thin_sha dst "$RD")" "round $i: the base replica is unchanged"
	no_leftovers "round $i"
	dmt_assert_eq "" "$(tokens)" "round $i: nothing left to resume"
	drop_replica "$r"
	dmt_message src "delete $Xi"
	i=$((i + 1))
done
echo "# $RUNS rounds at $(dmt_elapsed) s: $resumed resumed, $reran rerun, $committed completed before the kill" >&2
dmt_assert_eq "$SHA_RB" "$(thin_sha dst "$RB")" "after the rounds: the full replica is unchanged"
[ "$resumed" -ge 1 ] || dmt_fail "no round resumed from a token: the kills came too late"

# ------------------------------------------------------------------ SIGTERM

# sigterm_receiver WHAT: the receiver ($rpid) exits 143 within 10 s.
sigterm_receiver() {
	kill -TERM "$rpid"
	_n=0
	while kill -0 "$rpid" 2>/dev/null && [ "$_n" -lt 100 ]; do
		usleep 100000
		_n=$((_n + 1))
	done
	if kill -0 "$rpid" 2>/dev/null; then
		kill -9 "$rpid"
		wait "$rpid" || :
		dmt_fail "$1: the receiver did not exit within 10 s of SIGTERM"
	fi
	_rc=0
	wait "$rpid" || _rc=$?
	cat "$DMT_TMP/err" >&2
	dmt_assert_eq 143 "$_rc" "$1: the receiver's exit status"
	dmt_assert_match "*resume with dmrepl send --resume dmrepl1-*" "$(cat "$DMT_TMP/err")" \
		"$1: the receiver names the token"
	dmt_no_dmrepl_devices "$1"
	dmt_assert_eq 1 "$(tokens | grep -c .)" "$1: one resumable receive"
}

# While data flows.
Xt=$(snapshot "$X")
rm -f "$DMT_TMP/pipe"
mkfifo "$DMT_TMP/pipe"
echo "+ send --snap $Xt --base $D | receive; SIGTERM to the receiver" >&2
dmrepl send --pool "$SRC" --snap "$Xt" --base "$D" --size "$VOL_BYTES" \
	--checkpoint 1M -q > "$DMT_TMP/pipe" 2> "$DMT_TMP/send.err" &
spid=$!
dmrepl receive --pool "$DST" --state-dir "$STATE" -q < "$DMT_TMP/pipe" \
	> "$DMT_TMP/out" 2> "$DMT_TMP/err" &
rpid=$!
usleep "$(awk -v d="$DUR" 'BEGIN { printf "%d", d * 400000 }')"
sigterm_receiver "SIGTERM while data flows"
src_rc=0
wait "$spid" || src_rc=$?
cat "$DMT_TMP/send.err" >&2
dmt_assert_eq 1 "$src_rc" "the sender fails when the receiver goes"
dmt_assert_match "*the receiver closed the stream*" "$(cat "$DMT_TMP/send.err")" \
	"the sender says the receiver went"

# The receiver killed in its commit after the anchor snapshot, before
# the replica record (made so by hand: the anchor created): the resume
# commits all the same, and leaves no stray thin.
st=$(dmrepl receive --pool "$DST" --state-dir "$STATE" --resume-token --json |
	sed -n 's/.*"staging":\([0-9]*\).*/\1/p')
[ -n "$st" ] || dmt_fail "no staging id in receive --resume-token --json"
cp "$STATE/$DST/staging-$st" "$DMT_TMP/staging.saved"
dmt_message dst "create_snap $((st + 1)) $st"
nthins=$(thins | wc -l)
r=$(received "resume after SIGTERM (anchor already made)" --resume "$(tokens)" \
	--size "$VOL_BYTES" --checkpoint 1M)
dmt_assert_eq "$st" "$r" "the staging device became the replica"
dmt_assert_eq "$nthins" "$(thins | wc -l)" "no stray thin after a commit taken up again"
dmt_assert_eq "$SHA_X" "$(thin_sha dst "$r")" "the replica resumed after SIGTERM is exact"

# Killed after the replica record, before dropping its staging record
# (made so by hand: the record put back): listing tokens, resuming and
# --abort must all leave the committed replica alone.
cp "$DMT_TMP/staging.saved" "$STATE/$DST/staging-$st"
tok=$(tokens)
echo "# token: ${tok:-none}" >&2
if [ -n "$tok" ]; then
	xfer --resume "$tok" --size "$VOL_BYTES" --checkpoint 1M || :
	cat "$DMT_TMP/err" >&2
fi
dmrepl receive --pool "$DST" --state-dir "$STATE" --abort >&2
intact "$r"
dmt_assert_eq "$SHA_X" "$(thin_sha dst "$r")" "a committed replica survives its stale staging record"
dmt_assert_eq "" "$(tokens)" "the stale staging record is gone"
no_leftovers "stale staging record"
drop_replica "$r"

dmt_message src "delete $Xt"

# ------------------------------------------------------------------ full destination

# 8 MiB of data space for 24 MiB of data.
small_data=$(dmt_loop small-data 8)
small_meta=$(dmt_loop small-meta 8)
dd if=/dev/zero of="$small_meta" bs=4096 count=1 conv=notrunc 2>/dev/null
dmt_create small "0 $(( $(dmt_sectors "$small_data") / BLOCK * BLOCK )) thin-pool $small_meta $small_data $BLOCK 0 1 error_if_no_space"
SMALL=$(dmt_name small)
echo "+ dmrepl send --snap $D | dmrepl receive --pool small" >&2
rc=0
{
	s=0
	dmrepl send --pool "$SRC" --snap "$D" --size "$VOL_BYTES" -q 2> "$DMT_TMP/send.err" || s=$?
	echo "$s" > "$DMT_TMP/send.rc"
} | dmrepl receive --pool "$SMALL" --state-dir "$STATE" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err" "$DMT_TMP/send.err" >&2
dmt_assert_eq 1 "$rc" "full destination: receive exits 1"
dmt_assert_match "*dmrepl-*-dst-*" "$(cat "$DMT_TMP/err")" "full destination: the message names the device"
dmt_assert_eq 1 "$(cat "$DMT_TMP/send.rc")" "full destination: send exits 1"
dmt_assert_eq "" "$(tokens "$SMALL")" "full destination: nothing kept to resume"
dmt_assert_eq "" "$(replicas "$SMALL")" "full destination: no replica recorded"
dmt_assert_eq "" "$(thins "$SMALL")" "full destination: the unfinished device was deleted"
dmt_assert_eq - "$(dmt_pool_held_root small)" "full destination: no metadata snapshot held"
dmt_no_dmrepl_devices "full destination"

# ------------------------------------------------------------------ SIGTERM, stalled

# While the stream stalls: the receiver waits in read() for a sender
# that sent part of the stream and then stopped (a hung connection).
Xs=$(snapshot "$X")
dmrepl send --pool "$SRC" --snap "$Xs" --base "$D" --size "$VOL_BYTES" --checkpoint 1M \
	-q > "$DMT_TMP/x.st"
rm -f "$DMT_TMP/pipe"
mkfifo "$DMT_TMP/pipe"
echo "+ receive < (half a stream, then a stall); SIGTERM to the receiver" >&2
( head -c $((8 * 1048576)) "$DMT_TMP/x.st"; exec sleep 30 ) > "$DMT_TMP/pipe" &
spid=$!
dmrepl receive --pool "$DST" --state-dir "$STATE" -q < "$DMT_TMP/pipe" \
	> "$DMT_TMP/out" 2> "$DMT_TMP/err" &
rpid=$!
usleep "$(awk -v d="$DUR" 'BEGIN { printf "%d", d * 500000 + 1000000 }')"
sigterm_receiver "SIGTERM while the stream stalls"
kill "$spid" 2>/dev/null || :
wait "$spid" 2>/dev/null || :
dmrepl receive --pool "$DST" --state-dir "$STATE" --abort >&2
rm -f "$DMT_TMP/x.st"
echo "# done at $(dmt_elapsed) s" >&2
