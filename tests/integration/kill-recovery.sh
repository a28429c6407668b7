#!/bin/sh
# dmrepl-timeout: 600
# A dmrepl killed at any moment leaves nothing that needs an operator.
# Two pools whose metadata devices are slowed by dm-delay (3 ms per I/O),
# so that every metadata commit, and with it each reserve and release
# message, takes long enough for a kill to land inside it:
#
# 1. Each window of the metadata snapshot's protocol, hit exactly with
#    DMREPL_TEST_KILL_AT: killed after its record and before the message,
#    with the message done and before its record, for reserve and for
#    release. The next run succeeds and says what it did.
# 2. ls, delta, send, receive, replicate, verify and replicas, each
#    SIGKILLed at a random moment (seeded: DMREPL_TEST_SEED) from 0 ms to
#    the end of its uninterrupted run, KILL_ROUNDS rounds in all. After
#    every kill the next dmrepl command on each pool succeeds with no step
#    in between; then no metadata snapshot is held, no dmrepl device is
#    left, and the first replica is intact.
# 3. A snapshot reserved by hand (dmsetup) with a reader holding the
#    metadata device open is never released, whatever record a killed
#    dmrepl left; without a reader, the documented behaviour: a record
#    that says NONE leaves it alone, one that says RESERVING releases it.
# 4. How long the windows are: the reserve record to the message, and
#    the release message to its record (doc/benchmarks.md).
# 5. dmrepl recover --pool: nothing left at the end, also as JSON.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin delay
dmt_require losetup blockdev sha256sum awk usleep dmrepl thin_dump

KILL_ROUNDS=${DMREPL_KILL_ROUNDS:-105}
BLOCK=128				# sectors: 64 KiB
VOL_MIB=16
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
DELAY_MS=3
STATE=$DMT_TMP/state
DMREPL_LOCK_DIR=$DMT_TMP/locks
export DMREPL_LOCK_DIR
SRC=$(dmt_name src)
DST=$(dmt_name dst)

# slow_meta NAME MIB: a metadata device behind dm-delay.
slow_meta() {
	_l=$(dmt_loop "$1-loop" "$2")
	dmt_create "$1" "0 $(dmt_sectors "$_l") delay $_l 0 $DELAY_MS"
	dmt_dev "$1"
}

dmt_pool src "$(slow_meta src-meta 8)" "$(dmt_loop src-data 96)" "$BLOCK"
dmt_pool dst "$(slow_meta dst-meta 8)" "$(dmt_loop dst-data 96)" "$BLOCK"
SRC_META=$(dmt_dev src-meta)
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)

thin_sha() { dmt_thin_sha "$1" "$2" "$VOL_SECTORS" cache; }

nothing_held() {
	dmt_assert_eq - "$(dmt_pool_held_root src)" "$1: no source metadata snapshot held"
	dmt_assert_eq - "$(dmt_pool_held_root dst)" "$1: no destination metadata snapshot held"
}

# next_runs WHAT CMD: the next dmrepl command on each pool (CMD: ls, or
# recover) succeeds at once; their messages go to $DMT_TMP/next.err.
next_runs() {
	for _p in "$SRC" "$DST"; do
		_rc=0
		if [ "$2" = recover ]; then
			dmrepl recover --pool "$_p" --state-dir "$STATE" > "$DMT_TMP/next1.out" \
				2> "$DMT_TMP/next1.err" || _rc=$?
			cat "$DMT_TMP/next1.out" >> "$DMT_TMP/recover.out"
		else
			dmrepl ls --pool "$_p" > /dev/null 2> "$DMT_TMP/next1.err" || _rc=$?
		fi
		cat "$DMT_TMP/next1.err" >> "$DMT_TMP/next.err"
		if [ "$_rc" != 0 ]; then
			cat "$DMT_TMP/next1.err" >&2
			dmt_fail "$1: the next dmrepl $2 --pool $_p failed (exit $_rc)"
		fi
	done
}

# ------------------------------------------------------------------ setup

echo "+ 12 MiB of random data" >&2
dd if=/dev/urandom of="$origin" bs=1M count=12 oflag=direct 2>/dev/null
S1=$(dmrepl snapshot --pool "$SRC" --origin 1)
dd if=/dev/urandom of="$origin" bs=64K count=24 seek=40 oflag=direct conv=notrunc 2>/dev/null
dd if=/dev/urandom of="$origin" bs=1M count=2 seek=13 oflag=direct conv=notrunc 2>/dev/null
S2=$(dmrepl snapshot --pool "$SRC" --origin 1)
echo "# snapshots $S1 and $S2" >&2

dmt_run dmrepl replicate --pool "$SRC" --snap "$S1" --size "$VOL_BYTES" \
	--to-pool "$DST" --state-dir "$STATE" -q
R1=$(dmrepl replicas --to-pool "$DST" --state-dir "$STATE" --json |
	sed -n 's/.*"id":\([0-9]*\),.*/\1/p' | head -n 1)
SHA_R1=$(thin_sha dst "$R1")
dmt_assert_eq "$(thin_sha src "$S1")" "$SHA_R1" "the first replica is exact"
# A source is HOST:POOL in streams and local replicas alike: the receive
# rounds build on the replica the local replicate made.
dmrepl send --pool "$SRC" --snap "$S2" --base "$S1" --size "$VOL_BYTES" -q \
	> "$DMT_TMP/s2.stream"

# The commands, by number. run_cmd N starts command N in the background
# ($pid); its output goes to $DMT_TMP/cmd.out and cmd.err.
NCMDS=7
cmd_name() {
	case $1 in
	0) echo ls ;; 1) echo delta ;; 2) echo send ;; 3) echo receive ;;
	4) echo replicate ;; 5) echo verify ;; 6) echo replicas ;;
	esac
}
run_cmd() {
	case $1 in
	0) exec dmrepl ls --pool "$SRC" ;;
	1) exec dmrepl delta --pool "$SRC" --snap1 "$S1" --snap2 "$S2" ;;
	2) exec dmrepl send --pool "$SRC" --snap "$S2" --base "$S1" --size "$VOL_BYTES" -q ;;
	3) exec dmrepl receive --pool "$DST" --state-dir "$STATE" -q < "$DMT_TMP/s2.stream" ;;
	4) exec dmrepl replicate --pool "$SRC" --snap "$S2" --base "$S1" --size "$VOL_BYTES" \
		--to-pool "$DST" --state-dir "$STATE" -q ;;
	5) exec dmrepl verify --pool "$SRC" --snap "$S1" --to-pool "$DST" --state-dir "$STATE" ;;
	6) exec dmrepl replicas --to-pool "$DST" --state-dir "$STATE" ;;
	esac > "$DMT_TMP/cmd.out" 2> "$DMT_TMP/cmd.err" &
	pid=$!
}

# After a receive or a replicate of S2: drop what it left, so that the
# next one has the same work to do (a replica is deleted by hand, with
# its anchor; a resumable staging is aborted).
reset_dst() {
	dmrepl receive --pool "$DST" --state-dir "$STATE" --abort -q > /dev/null ||
		dmt_fail "receive --abort"
	for _r in $(dmrepl replicas --to-pool "$DST" --state-dir "$STATE" --json |
		tr '{' '\n' | grep "\"src_id\":$S2," | grep '"state":"ok"' |
		sed -n 's/.*"id":\([0-9]*\),.*/\1/p'); do
		dmt_message dst "delete $((_r + 1))"
		dmt_message dst "delete $_r"
	done
}

# ------------------------------------------------- 1. each window, exactly

# window POINT EXPECT: a dmrepl ls killed at POINT; the next ls succeeds
# and its messages match EXPECT ("" for none).
window() {
	echo "+ DMREPL_TEST_KILL_AT=$1 dmrepl ls --pool $SRC" >&2
	_rc=0
	DMREPL_TEST_KILL_AT=$1 dmrepl ls --pool "$SRC" > /dev/null 2>&1 || _rc=$?
	dmt_assert_eq 137 "$_rc" "killed at $1"
	case $1 in
	reserve-sent|release-recorded)
		[ "$(dmt_pool_held_root src)" != - ] ||
			dmt_fail "killed at $1: the kernel should hold a root" ;;
	*)
		dmt_assert_eq - "$(dmt_pool_held_root src)" "killed at $1: nothing held" ;;
	esac
	echo "# record: $(cat "$DMREPL_LOCK_DIR/$SRC.lock")" >&2
	_rc=0
	dmrepl ls --pool "$SRC" > /dev/null 2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	dmt_assert_eq 0 "$_rc" "the run after a kill at $1"
	if [ -n "$2" ]; then
		dmt_assert_match "*$2*" "$(cat "$DMT_TMP/err")" "after a kill at $1: the warning"
	else
		dmt_assert_eq "" "$(cat "$DMT_TMP/err")" "after a kill at $1: nothing to say"
	fi
	nothing_held "after a kill at $1"
}

window reserve-recorded ""
window reserve-sent "releasing the metadata snapshot (root block *) that dmrepl pid * left when it was killed while reserving it"
window release-recorded "killed while releasing it"
window release-sent ""

# And the other commands' devices: a sender killed once it has mapped
# its view of the snapshot leaves it mapped; the next run removes it.
# (It blocks on a pipe that nobody reads.)
echo "+ dmrepl send | sleep (the sender killed once it mapped its view)" >&2
dmrepl send --pool "$SRC" --snap "$S2" --base "$S1" --size "$VOL_BYTES" -q \
	2> /dev/null | sleep 120 &
sleeper=$!
i=0
until view=$(dmt_dmrepl_devices | tr ' ' '\n' | awk -v s="-src-$S2" \
	'substr($1, length($1) - length(s) + 1) == s { print $1 }') &&
	[ -n "$view" ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || dmt_fail "the sender did not map its view"
	usleep 20000
done
pid=${view#dmrepl-}
pid=${pid%%-*}
kill -9 "$pid"
kill "$sleeper"
wait "$sleeper" 2>/dev/null || :
dmt_run dmrepl ls --pool "$SRC" > /dev/null 2> "$DMT_TMP/err"
dmt_assert_match "*removed dmrepl-$pid-src-$S2, left by a dmrepl process that was killed*" \
	"$(cat "$DMT_TMP/err")" "the next run removed the killed sender's view"
dmt_no_dmrepl_devices "after the killed sender"

# ------------------------------------------------------- 2. random kills

# Each command's uninterrupted time, the range of its kill delays.
c=0
while [ "$c" -lt "$NCMDS" ]; do
	t=$(dmt_now)
	run_cmd "$c"
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" = 0 ] || { cat "$DMT_TMP/cmd.err" >&2; dmt_fail "$(cmd_name "$c") failed (exit $rc)"; }
	ms=$(awk -v a="$t" -v b="$(dmt_now)" 'BEGIN { printf "%d", (b - a) * 1000 + 10 }')
	eval "dur_$c=$ms"
	echo "# $(cmd_name "$c"): $ms ms uninterrupted" >&2
	[ "$c" = 3 ] && reset_dst
	[ "$c" = 4 ] && reset_dst
	c=$((c + 1))
done

: > "$DMT_TMP/next.err"
: > "$DMT_TMP/recover.out"
killed=0 finished=0
i=1
while [ "$i" -le "$KILL_ROUNDS" ]; do
	c=$(dmt_random "$NCMDS")
	eval "max=\$dur_$c"
	ms=$(dmt_random "$max")
	echo "+ round $i at $(dmt_elapsed) s: $(cmd_name "$c"), kill -9 after $ms of $max ms" >&2
	run_cmd "$c"
	usleep $((ms * 1000))
	if kill -9 "$pid" 2>/dev/null; then killed=$((killed + 1)); fi
	rc=0
	wait "$pid" 2>/dev/null || rc=$?
	[ "$rc" = 137 ] || finished=$((finished + 1))
	# every third round, dmrepl recover is that next command
	next=ls
	[ $((i % 3)) = 0 ] && next=recover
	next_runs "round $i ($(cmd_name "$c"), $ms ms)" "$next"
	nothing_held "round $i"
	dmt_no_dmrepl_devices "round $i"
	if [ "$c" = 3 ] || [ "$c" = 4 ]; then reset_dst; fi
	if [ $((i % 15)) = 0 ]; then
		dmt_assert_eq "$SHA_R1" "$(thin_sha dst "$R1")" "round $i: the first replica is unchanged"
	fi
	i=$((i + 1))
done
released=$(grep -c "releasing the metadata snapshot" "$DMT_TMP/next.err" || :)
removed=$(grep -c "removed dmrepl-" "$DMT_TMP/next.err" || :)
echo "# $KILL_ROUNDS rounds in $(dmt_elapsed) s: $killed killed, $finished finished first; the next runs released $released left snapshots and removed $removed left devices" >&2
sed 's/^/#   /' "$DMT_TMP/next.err" | sort | uniq -c | sort -rn | head -20 >&2
# With enough rounds, both kinds of leftover must have been met.
if [ "$KILL_ROUNDS" -ge 50 ]; then
	[ "$released" -ge 1 ] || dmt_fail "no kill left a metadata snapshot held: the kills missed the window"
	[ "$removed" -ge 1 ] || dmt_fail "no kill left a device mapped"
fi
dmt_assert_eq 0 "$(grep -c "error" "$DMT_TMP/next.err" || :)" "no next run reported an error"
echo "# what recover said:" >&2
sed 's/^[^:]*: //; s/[0-9][0-9]* device/N device/' "$DMT_TMP/recover.out" | sort | uniq -c >&2
dmt_assert_eq $((KILL_ROUNDS / 3 * 2)) "$(grep -c '^pool .*: .*; [0-9]* devices\{0,1\} removed' "$DMT_TMP/recover.out")" \
	"recover reported on both pools each time it ran"

# Replication still works, exactly.
dmt_run dmrepl replicate --pool "$SRC" --snap "$S2" --base "$S1" --size "$VOL_BYTES" \
	--to-pool "$DST" --state-dir "$STATE"
dmrepl replicas --to-pool "$DST" --state-dir "$STATE" >&2
R2=$(dmrepl replicas --to-pool "$DST" --state-dir "$STATE" --json | tr '{' '\n' |
	grep "\"src_id\":$S2," | grep '"state":"ok"' | sed -n 's/.*"id":\([0-9]*\),.*/\1/p' | tail -n 1)
dmt_assert_eq "$(thin_sha src "$S2")" "$(thin_sha dst "$R2")" "a replication after the kills is exact"
dmt_assert_eq "$SHA_R1" "$(thin_sha dst "$R1")" "the first replica is unchanged"

# ------------------------------------- 3. reserved by hand, with a reader

# refused WHAT EXPECT: dmrepl ls fails, says EXPECT, leaves the root held.
refused() {
	_held=$(dmt_pool_held_root src)
	_rc=0
	dmrepl ls --pool "$SRC" > /dev/null 2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	dmt_assert_eq 1 "$_rc" "$1: refused"
	dmt_assert_match "*$2*" "$(cat "$DMT_TMP/err")" "$1: the message"
	dmt_assert_eq "$_held" "$(dmt_pool_held_root src)" "$1: the snapshot is still held"
}

dmt_reserve_metadata_snap src
sleep 3600 < "$SRC_META" &
reader=$!
trap '_rc=$?; kill "$reader" 2>/dev/null || :; (exit $_rc); dmt__on_exit' EXIT
usleep 200000
refused "reserved by hand, a reader" "is open: pid $reader (sleep)"
# A dmrepl killed after its RESERVING record: still never released.
rc=0
DMREPL_TEST_KILL_AT=reserve-recorded dmrepl ls --pool "$SRC" > /dev/null 2>&1 || rc=$?
dmt_assert_eq 1 "$rc" "a run finding the held root is refused before it records anything"
dmt_release_metadata_snap src
DMREPL_TEST_KILL_AT=reserve-recorded dmrepl ls --pool "$SRC" > /dev/null 2>&1 || :
dmt_assert_match "*state=reserving*" "$(cat "$DMREPL_LOCK_DIR/$SRC.lock")" "a RESERVING record is left"
dmt_reserve_metadata_snap src
refused "a RESERVING record, reserved by hand, a reader" "is open: pid $reader (sleep)"
refused "again" "is open: pid $reader (sleep)"
thin_dump -m "$SRC_META" > /dev/null 2>&1 || dmt_fail "thin_dump -m cannot read the held root"
kill "$reader"
wait "$reader" 2>/dev/null || :
# Without a reader: the documented behaviour (doc/architecture.md).
rc=0
dmrepl ls --pool "$SRC" > /dev/null 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err" >&2
dmt_assert_eq 0 "$rc" "a RESERVING record, no reader: the run goes on"
dmt_assert_match "*killed while reserving it*" "$(cat "$DMT_TMP/err")" "and says it released the root"
dmt_reserve_metadata_snap src
refused "a NONE record, reserved by hand, no reader" "another tool"
rc=0
dmrepl recover --pool "$SRC" > /dev/null 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err" >&2
dmt_assert_eq 1 "$rc" "recover with another tool's snapshot: exit 1"
dmt_assert_match "*by another tool; release it with: dmsetup message $SRC 0 release_metadata_snap*" \
	"$(cat "$DMT_TMP/err")" "recover says how to release it"
dmt_release_metadata_snap src
nothing_held "after the hand-held snapshots"

# ------------------------------------------------- 4. the windows' length

: > "$DMT_TMP/win"
n=0
while [ "$n" -lt 20 ]; do
	DMREPL_LOG=debug dmrepl ls --pool "$SRC" 2>&1 > /dev/null | grep "window" >> "$DMT_TMP/win" || :
	n=$((n + 1))
done
awk '
	/reserve window/ { for (i = 1; i <= NF; i++) if ($i == "us") r[nr++] = $(i - 1)
		for (i = 1; i <= NF; i++) if ($i == "ms") m[nm++] = $(i - 1) }
	/release window/ { for (i = 1; i <= NF; i++) if ($i == "us") c[nc++] = $(i - 1)
		for (i = 1; i <= NF; i++) if ($i == "ms,") l[nl++] = $(i - 1) }
	function stat(a, n, what,   i, j, t) {
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		printf "# %s: min %s, median %s, max %s (%d runs)\n", what, a[0], a[int(n / 2)], a[n - 1], n
	}
	END {
		stat(r, nr, "reserve: record to message (us)")
		stat(m, nm, "reserve: the message itself (ms)")
		stat(l, nl, "release: the message itself (ms)")
		stat(c, nc, "release: message to record (us)")
	}' "$DMT_TMP/win" >&2
dmt_assert_eq 40 "$(grep -c window "$DMT_TMP/win")" "every run logged both windows"

# ------------------------------------------------------------ 5. recover

for p in "$SRC" "$DST"; do
	out=$(dmrepl recover --pool "$p" --state-dir "$STATE" --json) ||
		dmt_fail "dmrepl recover --pool $p"
	echo "# $out" >&2
	printf '%s\n' "$out" | dmt_json_capture recover - 0
	dmt_assert_match '*"devices_removed":0*"metadata_snapshot_released":false*"metadata_snapshot_ok":true*' \
		"$out" "recover --pool $p: nothing left"
done
nothing_held "at the end"
dmt_no_dmrepl_devices "at the end"
dmt_assert_eq "" "$(find "$STATE" -name 'staging-*')" "no staging record left at the end"
dmt_assert_eq 0 "$(dmrepl receive --pool "$DST" --state-dir "$STATE" --resume-token | grep -c . || :)" \
	"no resumable receive left at the end"
