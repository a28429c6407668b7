#!/bin/sh
# dmrepl-timeout: 900
# SIGKILL to dmrepl while it replicates INTO a pool that LVM manages, at
# random moments (seeded: DMREPL_TEST_SEED), ROUNDS times: odd rounds kill
# a local replicate, even rounds kill the receive of send | receive.
# After every kill:
# - the kernel's thin ids in the destination pool are exactly the
#   thin_ids lvs shows (only LVM created or deleted thin devices there);
# - an LVM user creates a volume in the destination pool and fills it;
# then the replication runs again (the same way) and:
# - its replica is exact, an LV named after its source, with its anchor;
# - every user volume made so far still holds what its user wrote;
# - no metadata snapshot is held, no dmrepl device is left, the
#   invariant holds; at the end no staging LV is left and vgck is quiet.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_dump sha256sum awk usleep mkfifo

# 8 rounds in the suite (CI's time): each run draws other moments
# (tests/vm/repeat runs it again and again); in host mode
# DMREPL_KILL_ROUNDS_LVM=N runs more
ROUNDS=${DMREPL_KILL_ROUNDS_LVM:-8}
STATE=$DMT_TMP/state

dmt_vg src 200
dmt_vg dst 240
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 200M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 64M -T "$A/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm src vol)
dd if=/dev/urandom of="$vol" bs=1M count=16 oflag=direct 2>/dev/null


# run_replicate SNAP; run_receive SNAP BASE (in the background): into
# $B/pool, incremental (the base picked, or given).
run_replicate() {
	dmrepl replicate --snap "$A/$1" --to-pool "$B/pool" --state-dir "$STATE" -q \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err"
}
run_receive() {
	rm -f "$DMT_TMP/fifo"
	mkfifo "$DMT_TMP/fifo"
	dmrepl send --snap "$A/$1" --base "$A/$2" -q > "$DMT_TMP/fifo" 2> "$DMT_TMP/send.err" &
	spid=$!
	dmrepl receive --to-pool "$B/pool" --state-dir "$STATE" -q < "$DMT_TMP/fifo" \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err" &
	rpid=$!
}

# The time of an uninterrupted replication into LVM: the kill delays' range.
dmt_lvm lvcreate -qq -y -s -n r0 "$A/vol"
t=$(dmt_now)
run_replicate r0 || { cat "$DMT_TMP/err" >&2; dmt_fail "the first replication"; }
MAX=$(awk -v a="$t" -v b="$(dmt_now)" 'BEGIN { printf "%d", (b - a) * 1000 + 10 }')
echo "# a replication into LVM takes $MAX ms" >&2

i=1 killed=0 users=""
while [ "$i" -le "$ROUNDS" ]; do
	dd if=/dev/urandom of="$vol" bs=64K count=16 seek=$(dmt_random 1000) \
		oflag=direct conv=notrunc 2>/dev/null
	dmt_lvm lvcreate -qq -y -s -n "r$i" "$A/vol"
	ms=$(dmt_random "$MAX")
	if [ $((i % 2)) = 1 ]; then
		how=replicate
		echo "+ round $i: dmrepl replicate --snap $A/r$i --to-pool $B/pool, kill -9 after $ms ms" >&2
		dmrepl replicate --snap "$A/r$i" --to-pool "$B/pool" --state-dir "$STATE" -q \
			> "$DMT_TMP/out" 2> "$DMT_TMP/err" &
		pid=$!
		usleep $((ms * 1000))
		kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
		wait "$pid" 2>/dev/null || :
	else
		how=receive
		echo "+ round $i: dmrepl send --snap $A/r$i | dmrepl receive, kill -9 of receive after $ms ms" >&2
		run_receive "r$i" "r$((i - 1))"
		usleep $((ms * 1000))
		kill -9 "$rpid" 2>/dev/null && killed=$((killed + 1))
		wait "$rpid" 2>/dev/null || :
		wait "$spid" 2>/dev/null || :
	fi
	dmt_lvm_invariant dst pool "round $i, after the kill of $how"

	# an LVM user goes on in the destination pool
	dmt_lvm lvcreate -qq -y -V 4M -T "$B/pool" -n "user$i"
	u=/dev/mapper/$(dmt_lv_dm dst "user$i")
	dmt_assert_eq "$(head -c 4194304 /dev/zero | sha256sum)" "$(sha256sum < "$u")" \
		"round $i: the user's new volume reads zeroes"
	head -c 65536 /dev/urandom > "$DMT_TMP/user$i"
	dd if="$DMT_TMP/user$i" of="$u" bs=64K count=1 oflag=direct 2>/dev/null
	users="$users $i"

	# the replication again, the same way: it finishes, exact
	if [ "$how" = replicate ]; then
		run_replicate "r$i" || { cat "$DMT_TMP/err" >&2; dmt_fail "round $i: the rerun failed"; }
	else
		run_receive "r$i" "r$((i - 1))"
		rc=0
		wait "$rpid" || rc=$?
		wait "$spid" || :
		# killed as it finished: the replica is there, and a replay is refused
		if [ "$rc" != 0 ] && ! grep -q "already holds thin .* the stream was received before" "$DMT_TMP/err"; then
			cat "$DMT_TMP/err" "$DMT_TMP/send.err" >&2
			dmt_fail "round $i: the rerun's receive failed"
		fi
	fi
	dmt_assert_eq "$(dmt_lv_sha src "r$i")" "$(dmt_lv_sha dst "r$i")" "round $i: the replica $B/r$i is exact"
	lvm lvs --noheadings --separator , -o lv_name,origin,lv_tags "$B" < /dev/null |
		tr -d ' ' > "$DMT_TMP/lvs"
	grep -q "^r$i,[^,]*,dmrepl\.replica:" "$DMT_TMP/lvs" ||
		{ cat "$DMT_TMP/lvs" >&2; dmt_fail "round $i: $B/r$i carries its record"; }
	grep -q "^r${i}_dmrepl_anchor,r$i,dmrepl\.anchor\$" "$DMT_TMP/lvs" ||
		{ cat "$DMT_TMP/lvs" >&2; dmt_fail "round $i: $B/r$i has its anchor"; }
	for k in $users; do
		dmt_assert_eq "$(sha256sum < "$DMT_TMP/user$k")" \
			"$(head -c 65536 "/dev/mapper/$(dmt_lv_dm dst "user$k")" | sha256sum)" \
			"round $i: user$k holds what its user wrote"
	done
	for p in "$(dmt_lvm_pool_dm src pool)" "$(dmt_lvm_pool_dm dst pool)"; do
		dmt_assert_eq - "$(dmsetup status "$p" | awk '{ print $7 }')" \
			"round $i: no metadata snapshot held on $p"
	done
	dmt_no_dmrepl_devices "round $i"
	dmt_lvm_invariant dst pool "round $i, after the rerun"
	i=$((i + 1))
done
echo "# $ROUNDS rounds, $killed killed before they finished" >&2
[ "$killed" -ge 1 ] || dmt_fail "no round killed dmrepl before it finished: nothing was tested"
dmt_assert_eq "" "$(lvm lvs --noheadings -o lv_name "$B" < /dev/null | grep _dmrepl_staging || :)" \
	"no staging LV is left"
lvm vgck "$B" < /dev/null > "$DMT_TMP/vgck" 2>&1 || { cat "$DMT_TMP/vgck" >&2; dmt_fail "vgck"; }
dmt_assert_eq "" "$(grep -v '^ *$' "$DMT_TMP/vgck" || :)" "vgck says nothing"
echo "ok"
