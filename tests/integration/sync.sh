#!/bin/sh
# dmrepl-timeout: 900
# dmrepl sync and prune on LVM, with real lvm2 and the real kernel:
# - the command-line form: a snapshot tagged dmrepl.sync:JOB, replicated
#   in full, then incrementally (from the newest common base), each
#   replica exact (sha256) and tagged as the job's;
# - retention over many runs keeps exactly N snapshots at the source and
#   N replicas at the destination, and keeps the operator's own
#   snapshot and LV (untagged) whatever N is;
# - the newest common base survives a retention of 1 after a failed run;
# - a replica deleted by hand: the next run recovers from an older base,
#   without help;
# - a destination that is wrong (no such pool) or full: a clear error,
#   the source unharmed, and the next run recovers;
# - configured jobs: sync JOB, sync --all, --check-config, prune -n
#   (removes nothing) and prune; prune refuses to remove a replica that a
#   device other than LVM's maps (the kernel would keep its thin);
# - two runs of one job never overlap: with --no-wait the second exits 75
#   naming the job, without it the second waits and then runs;
# - after every step, on both VGs, the kernel's thin ids are the thin_ids
#   lvs -a shows.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_dump sha256sum

STATE=$DMT_TMP/state
CONF=$DMT_TMP/conf
dmt_vg src 300
dmt_vg dst 300
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 200M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 200M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 32M -T "$A/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm src vol)
dd if=/dev/urandom of="$vol" bs=1M count=8 conv=fsync 2>/dev/null

after() {
	dmt_lvm_invariant src pool "after $1 (source)"
	dmt_lvm_invariant dst pool "after $1 (destination)"
	dmt_no_dmrepl_devices "after $1"
}
# job_lvs VG JOB: the LVs of VG tagged as JOB's, by name.
job_lvs() {
	lvm lvs --noheadings --separator ' ' -o lv_name,lv_tags "$1" < /dev/null |
		awk -v t="dmrepl.sync:$2" '{ n = split($2, tags, ",")
			for (i = 1; i <= n; i++) if (tags[i] == t) print $1 }' | sort
}
# write N: change N MiB of the origin at a random place.
write() {
	dd if=/dev/urandom of="$vol" bs=1M count="$1" seek="$(dmt_random 24)" conv=fsync,notrunc 2>/dev/null
}
# sync ARGS...: dmrepl sync --json -q ARGS; the result line in $DMT_TMP/out.
sync_json() {
	echo "+ dmrepl sync $*" >&2
	_rc=0
	dmrepl sync --state-dir "$STATE" --json -q "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	tail -n 1 "$DMT_TMP/out" >&2
	dmt_json_capture sync "$DMT_TMP/out" 2>/dev/null || :
	return $_rc
}
field() { tail -n 1 "$DMT_TMP/out" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }
# exact [WHEN]: the last run's snapshot and replica, in $S and $R, and
# the replica's sha256 equals the snapshot's.
exact() {
	S=$(field snapshot)
	R=$(field replica)
	dmt_assert_eq "$(dmt_lv_sha src "${S#*/}")" "$(dmt_lv_sha dst "${R#*/}")" "$R equals $S${1:+ $1}"
}

JOB="$A-vol-to-$B-pool"

echo "## 1. the command-line form: full, then incremental"
sync_json --from "$A/vol" --to-pool "$B/pool" --keep 2 || dmt_fail "the first sync"
dmt_assert_eq true "$(field full)" "the first sync is a full copy"
exact
S1=$S
R1=$R
dmt_assert_match "$A/vol-sync-*" "$S1" "the snapshot is named after the origin and the time"
dmt_assert_eq "${S1#*/}" "$(job_lvs "$A" "$JOB")" "the source snapshot is tagged as the job's"
dmt_assert_eq "${R1#*/}" "$(job_lvs "$B" "$JOB")" "the replica is tagged as the job's"
after "the first sync"

sleep 1	# the names hold the time to the second
write 2
sync_json --from "$A/vol" --to-pool "$B/pool" --keep 2 || dmt_fail "the second sync"
dmt_assert_eq false "$(field full)" "the second sync is incremental"
exact
after "the second sync"

echo "## 2. retention keeps exactly N, and the operator's own"
dmt_lvm lvcreate -qq -y -s -n mine "$A/vol"
dmt_lvm lvcreate -qq -y -V 8M -T "$B/pool" -n theirs
for i in 3 4 5; do
	sleep 1
	write 1
	sync_json --from "$A/vol" --to-pool "$B/pool" --keep 2 || dmt_fail "sync $i"
done
dmt_assert_eq 2 "$(job_lvs "$A" "$JOB" | wc -l)" "two of the job's snapshots at the source"
dmt_assert_eq 2 "$(job_lvs "$B" "$JOB" | wc -l)" "two of the job's replicas at the destination"
exact
S5=$S
R5=$R
dmt_assert_match "*${S5#*/}*" "$(job_lvs "$A" "$JOB" | tr '\n' ' ')" "the newest snapshot is kept"
dmt_assert_match "*${R5#*/}*" "$(job_lvs "$B" "$JOB" | tr '\n' ' ')" "the newest replica is kept"
lvm lvs "$A/mine" > /dev/null 2>&1 < /dev/null || dmt_fail "the operator's snapshot was removed"
lvm lvs "$B/theirs" > /dev/null 2>&1 < /dev/null || dmt_fail "the operator's LV was removed"
dmt_assert_match '*"pruned_source":\["*"\]*' "$(tail -n 1 "$DMT_TMP/out")" "the result lists what was pruned"
after "five syncs with --keep 2"

echo "## 3. a replica deleted by hand: the next run recovers"
dmt_lvm lvremove -qq -y "$R5"
sleep 1
write 1
sync_json --from "$A/vol" --to-pool "$B/pool" --keep 2 || dmt_fail "the sync after a replica was deleted"
exact "after the deletion"
S6=$S
after "a sync after a replica was deleted by hand"

echo "## 4. a wrong destination: a clear error; the next run recovers"
sleep 1
rc=0
sync_json --from "$A/vol" --to-pool "$B/nopool" --keep 1 --job "$JOB" || rc=$?
dmt_assert_eq 1 "$rc" "a sync to a missing pool exits 1"
dmt_assert_match "*$B/nopool*" "$(cat "$DMT_TMP/err")" "the error names the destination"
dmt_assert_match '*"ok":false*' "$(tail -n 1 "$DMT_TMP/out")" "its JSON result says it failed"
# nothing was pruned by the failed run: the common base is intact
dmt_assert_match "*${S6#*/}*" "$(job_lvs "$A" "$JOB" | tr '\n' ' ')" "the newest common base is kept"
after "a sync to a missing pool"
sleep 1
write 1
sync_json --from "$A/vol" --to-pool "$B/pool" --keep 1 || dmt_fail "the sync after the failure"
dmt_assert_eq false "$(field full)" "the next run is incremental"
exact
S7=$S
R7=$R
dmt_assert_eq "${S7#*/}" "$(job_lvs "$A" "$JOB")" "--keep 1: only the newest snapshot stays"
dmt_assert_eq "${R7#*/}" "$(job_lvs "$B" "$JOB")" "--keep 1: only the newest replica stays"
after "the sync after the failure"

echo "## 5. configured jobs"
mkdir -p "$CONF/jobs.d"
cat > "$CONF/dmrepl.conf" <<EOF
[defaults]
keep = 3
state_dir = $STATE
EOF
cat > "$CONF/jobs.d/nightly.conf" <<EOF
; the volume, to the other VG
[job]
origin = $A/vol
to_pool = $B/pool
keep_destination = 2
EOF
dmrepl sync --check-config -c "$CONF" > "$DMT_TMP/check" || dmt_fail "--check-config of a good configuration"
dmt_assert_eq "$CONF: 1 job, no error" "$(cat "$DMT_TMP/check")" "--check-config says it is good"
for i in 1 2 3 4; do
	sleep 1
	write 1
	sync_json nightly -c "$CONF" || dmt_fail "sync nightly $i"
done
dmt_assert_eq 3 "$(job_lvs "$A" nightly | wc -l)" "keep = 3 (the default's) at the source"
dmt_assert_eq 2 "$(job_lvs "$B" nightly | wc -l)" "keep_destination = 2"
dmt_assert_eq "${R7#*/}" "$(job_lvs "$B" "$JOB")" "another job's replica is untouched"
after "four runs of a configured job"
sed -i 's/^keep = 3$/keep = 1/' "$CONF/dmrepl.conf"
sed -i 's/^keep_destination = 2$/keep_destination = 1/' "$CONF/jobs.d/nightly.conf"
before_a=$(job_lvs "$A" nightly | tr '\n' ' ')
before_b=$(job_lvs "$B" nightly | tr '\n' ' ')
dmrepl prune nightly -c "$CONF" -n > "$DMT_TMP/dry" || dmt_fail "prune -n"
cat "$DMT_TMP/dry" >&2
dmt_assert_eq 3 "$(grep -c 'would be removed' "$DMT_TMP/dry")" "prune -n lists two snapshots and one replica"
dmt_assert_eq "$before_a" "$(job_lvs "$A" nightly | tr '\n' ' ')" "prune -n removes no snapshot"
dmt_assert_eq "$before_b" "$(job_lvs "$B" nightly | tr '\n' ' ')" "prune -n removes no replica"
# a replica that a device other than LVM's maps is not removed: lvremove
# would drop the LV and leave its thin in the kernel
victim=$(grep 'would be removed' "$DMT_TMP/dry" | grep -o "$B/[^ :,]*" | head -n 1)
[ -n "$victim" ] || dmt_fail "prune -n names no replica"
FOREIGN=$(dmt_name foreign)
dmsetup create "$FOREIGN" --table "0 $(lvm lvs --noheadings --units s --nosuffix -o lv_size "$victim" < /dev/null | tr -d ' ') thin $(dmsetup info -c --noheadings -o major,minor "$(dmt_lvm_pool_dm dst pool)" | tr -d ' ') $(lvm lvs --noheadings -o thin_id "$victim" < /dev/null | tr -d ' ')" ||
	dmt_fail "a device of $victim's thin"
rc=0
dmrepl prune nightly -c "$CONF" > /dev/null 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err" >&2
[ "$rc" != 0 ] || dmt_fail "prune removed a replica that $FOREIGN maps"
dmt_assert_match "*$FOREIGN maps its thin*not removing it*" "$(cat "$DMT_TMP/err")" "and says why"
lvm lvs "$victim" > /dev/null 2>&1 < /dev/null || dmt_fail "$victim is gone"
dmt_lvm_invariant dst pool "after a prune refused"
dmsetup remove "$FOREIGN"
dmrepl prune nightly -c "$CONF" || dmt_fail "prune"
dmt_assert_eq 1 "$(job_lvs "$A" nightly | wc -l)" "prune leaves one snapshot"
dmt_assert_eq 1 "$(job_lvs "$B" nightly | wc -l)" "prune leaves one replica"
after "prune of a configured job"
sleep 1
n_before=$(job_lvs "$A" nightly | wc -l)
sync_json --all -c "$CONF" || dmt_fail "sync --all"
dmt_assert_match '*"unchanged":true*' "$(tail -n 1 "$DMT_TMP/out")" \
	"sync --all with nothing written: the origin is unchanged"
dmt_assert_eq "$n_before" "$(job_lvs "$A" nightly | wc -l)" "and no snapshot was taken"
write 1
sync_json --all -c "$CONF" || dmt_fail "sync --all after a write"
dmt_assert_eq false "$(field full)" "sync --all: incremental from the one kept"
exact "(sync --all)"
after "sync --all"
printf '[job]\norigin = %s\nkeep = 0\n' "$A" > "$CONF/jobs.d/broken.conf"
rc=0
dmrepl sync --check-config -c "$CONF" > /dev/null 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err" >&2
dmt_assert_eq 2 "$rc" "--check-config of a broken job exits 2"
dmt_assert_match "*jobs.d/broken.conf:2: origin: '$A' is not VG/LV*" "$(cat "$DMT_TMP/err")" \
	"the error names file, line and key"
rm "$CONF/jobs.d/broken.conf"

echo "## 6. two runs of one job never overlap"
# a run slowed to 2 MiB/s holds the job for a few seconds ...
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\nbwlimit = 2M\nkeep = 2\n' "$A" "$B" \
	> "$CONF/jobs.d/slow.conf"
write 8
dmrepl sync slow -c "$CONF" -q > "$DMT_TMP/slow.out" 2> "$DMT_TMP/slow.err" &
slow=$!
# ... from the time its snapshot exists (it took the lock before)
i=0
while [ -z "$(job_lvs "$A" slow)" ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i + 1)); done
[ -n "$(job_lvs "$A" slow)" ] || dmt_fail "the slow run made no snapshot"
rc=0
dmrepl sync slow -c "$CONF" --no-wait -q > /dev/null 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err" >&2
dmt_assert_eq 75 "$rc" "--no-wait while the job runs exits 75"
dmt_assert_match "*job slow is running (pid $slow)*not waiting*" "$(cat "$DMT_TMP/err")" \
	"and says why, naming the run under way"
kill -0 "$slow" 2>/dev/null || dmt_fail "the slow run ended too soon for the test"
sync_json slow -c "$CONF" || dmt_fail "a sync that waits"
dmt_assert_match "*job slow is running (pid $slow): waiting for it*" "$(cat "$DMT_TMP/err")" \
	"without --no-wait the second run waits, and says so"
if kill -0 "$slow" 2>/dev/null; then dmt_fail "the second run ended before the first"; fi
wait "$slow" || { cat "$DMT_TMP/slow.err" >&2; dmt_fail "the slow run failed"; }
# the second found the origin as the first had left it
dmt_assert_match '*"unchanged":true*' "$(tail -n 1 "$DMT_TMP/out")" \
	"the run that waited found nothing new"
dmt_assert_eq 1 "$(job_lvs "$A" slow | wc -l)" "two runs, one after the other: one snapshot"
dmt_assert_eq 1 "$(job_lvs "$B" slow | wc -l)" "and one replica"
rm "$CONF/jobs.d/slow.conf"
after "two runs at once"

echo "## 7. a destination that fills up: a clear error, the next run recovers"
# (errors when full, as LVM offers: no minute of queued writes first)
dmt_lvm lvcreate -qq -y --type thin-pool -L 12M --chunksize 64k -n small "$B"
dmt_lvm lvchange -qq --errorwhenfull y "$B/small"
rc=0
sync_json --from "$A/vol" --to-pool "$B/small" --job tiny || rc=$?
dmt_assert_eq 1 "$rc" "a sync into a pool too small exits 1"
dmt_assert_match "*small*" "$(cat "$DMT_TMP/err")" "the error names the destination"
after "a sync into a full pool"
dmt_lvm lvextend -qq -L 64M "$B/small"
sync_json --from "$A/vol" --to-pool "$B/small" --job tiny || dmt_fail "the sync after the pool grew"
exact
after "the sync after the pool grew"

echo "## 8. a job triggered by snapshots replicates the one LVM took, and takes none"
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\ntrigger = snapshot\nkeep_destination = 2\n' \
	"$A" "$B" > "$CONF/jobs.d/onsnap.conf"
DM_NAME=$(dmt_lv_dm src vol) DM_VG_NAME=$A DM_LV_NAME=vol \
	dmrepl sync --udev-jobs -c "$CONF" > "$DMT_TMP/udev" || dmt_fail "sync --udev-jobs"
dmt_assert_eq "DMREPL_SYNC_UNITS=dmrepl-sync@onsnap.service" "$(cat "$DMT_TMP/udev")" \
	"the origin's change event names the job"
write 1
dmt_lvm lvcreate -qq -y -s -n ops1 "$A/vol"
sync_json onsnap -c "$CONF" || dmt_fail "sync of a snapshot trigger"
dmt_assert_eq "$A/ops1" "$(field snapshot)" "it replicates the snapshot LVM took"
R9=$(field replica)
dmt_assert_eq "$(dmt_lv_sha src ops1)" "$(dmt_lv_sha dst "${R9#*/}")" "$R9 equals $A/ops1"
dmt_assert_eq "" "$(job_lvs "$A" onsnap)" "the job took no snapshot of its own"
dmt_assert_eq "${R9#*/}" "$(job_lvs "$B" onsnap)" "its replica is the job's"
sync_json onsnap -c "$CONF" || dmt_fail "a second run with nothing new"
dmt_assert_eq "$R9" "$(field replica)" "a second run finds it replicated already"
for i in 2 3; do
	write 1
	dmt_lvm lvcreate -qq -y -s -n "ops$i" "$A/vol"
	sync_json onsnap -c "$CONF" || dmt_fail "sync of ops$i"
done
dmt_assert_eq 2 "$(job_lvs "$B" onsnap | wc -l)" "keep_destination = 2 for its replicas"
for i in 1 2 3; do
	lvm lvs "$A/ops$i" > /dev/null 2>&1 < /dev/null || dmt_fail "the operator's $A/ops$i was removed"
done
rm "$CONF/jobs.d/onsnap.conf"
after "a job triggered by snapshots"
