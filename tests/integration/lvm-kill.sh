#!/bin/sh
# dmrepl-timeout: 900
# SIGKILL to dmrepl while it replicates out of an LVM pool, at random
# moments (seeded: DMREPL_TEST_SEED), ROUNDS times. After every kill:
# - the kernel's thin ids are still exactly the thin_ids lvs shows;
# - no metadata snapshot is held once the next dmrepl command has run,
#   and no dmrepl device is left;
# - an LVM user creates a volume, fills it and reads it back: LVM's own
#   ids and data are untouched;
# then the replication is run again and its replica is exact.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_dump sha256sum awk usleep

# 8 rounds in the suite (CI's time): each run draws other moments
# (tests/vm/repeat runs it again and again); in host mode
# DMREPL_KILL_ROUNDS_LVM=N runs more
ROUNDS=${DMREPL_KILL_ROUNDS_LVM:-8}
STATE=$DMT_TMP/state

dmt_vg vg 320
VG=$(dmt_name vg)
dmt_lvm lvcreate -qq -y --type thin-pool -L 256M --chunksize 64k -n pool "$VG"
dmt_lvm lvcreate -qq -y -V 64M -T "$VG/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm vg vol)
dd if=/dev/urandom of="$vol" bs=1M count=24 oflag=direct 2>/dev/null
dmt_pool raw "$(dmt_loop raw-meta 8)" "$(dmt_loop raw-data 256)" 128
RAW=$(dmt_name raw)

# lv_sha LV: the sha256 of an LVM thin snapshot, activated for the read.
lv_sha() {
	dmt_lvm lvchange -qq -ay -K "$VG/$1"
	sha256sum < "/dev/mapper/$(dmt_lv_dm vg "$1")" | cut -d' ' -f1
	dmt_lvm lvchange -qq -an "$VG/$1"
}

# The uninterrupted time of one incremental, the range of the kill delays.
dmt_lvm lvcreate -qq -y -s -n s0 "$VG/vol"
dmt_run dmrepl replicate --snap "$VG/s0" --to-pool "$RAW" --state-dir "$STATE" -q
dd if=/dev/urandom of="$vol" bs=64K count=40 seek=200 oflag=direct conv=notrunc 2>/dev/null
dmt_lvm lvcreate -qq -y -s -n t0 "$VG/vol"
t=$(dmt_now)
dmt_run dmrepl replicate --snap "$VG/t0" --to-pool "$RAW" --state-dir "$STATE" -q
MAX=$(awk -v a="$t" -v b="$(dmt_now)" 'BEGIN { printf "%d", (b - a) * 1000 + 10 }')
echo "# an incremental out of the LVM pool takes $MAX ms" >&2

i=1 killed=0
while [ "$i" -le "$ROUNDS" ]; do
	dd if=/dev/urandom of="$vol" bs=64K count=16 seek=$(dmt_random 1000) \
		oflag=direct conv=notrunc 2>/dev/null
	dmt_lvm lvcreate -qq -y -s -n "r$i" "$VG/vol"
	ms=$(dmt_random "$MAX")
	echo "+ round $i: dmrepl replicate --snap $VG/r$i, kill -9 after $ms ms" >&2
	dmrepl replicate --snap "$VG/r$i" --to-pool "$RAW" --state-dir "$STATE" -q \
		2> "$DMT_TMP/err" &
	pid=$!
	usleep $((ms * 1000))
	kill -9 "$pid" 2>/dev/null && killed=$((killed + 1))
	wait "$pid" 2>/dev/null || :

	dmt_lvm_invariant vg pool "round $i, after the kill"
	# an LVM user goes on: a new volume, filled and read back
	dmt_lvm lvcreate -qq -y -V 8M -T "$VG/pool" -n "user$i"
	u=/dev/mapper/$(dmt_lv_dm vg "user$i")
	dmt_assert_eq "$(head -c 8388608 /dev/zero | sha256sum)" "$(sha256sum < "$u")" \
		"round $i: the user's new volume reads zeroes"
	dd if="$(dmt__pattern 65536 u)" of="$u" bs=64K count=1 oflag=direct 2>/dev/null
	dmt_assert_eq "$(sha256sum < "$(dmt__pattern 65536 u)")" "$(head -c 65536 "$u" | sha256sum)" \
		"round $i: the user's volume holds what was written"

	# the replication again: it finishes, exact
	dmrepl replicate --snap "$VG/r$i" --to-pool "$RAW" --state-dir "$STATE" --json -q \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err" || { cat "$DMT_TMP/err" >&2; dmt_fail "round $i: the rerun failed"; }
	r=$(sed -n 's/.*"replica":\([0-9]*\).*/\1/p' "$DMT_TMP/out")
	dmt_assert_eq "$(lv_sha "r$i")" "$(dmt_thin_sha raw "$r" 131072)" "round $i: the replica is exact"
	dmt_assert_eq - "$(dmsetup status "$(dmt_lv_dm vg pool)-tpool" | awk '{ print $7 }')" \
		"round $i: no metadata snapshot held on the LVM pool"
	dmt_no_dmrepl_devices "round $i"
	dmt_lvm_invariant vg pool "round $i, after the rerun"
	i=$((i + 1))
done
echo "# $ROUNDS rounds, $killed killed before they finished" >&2
[ "$killed" -ge 1 ] || dmt_fail "no round killed dmrepl before it finished: nothing was tested"
lvm vgck "$VG" < /dev/null || dmt_fail "vgck"
