#!/bin/sh
# dmrepl-timeout: 600
# A sync job to another host, through that host's receive-only key (dmrepl
# serve as the ssh forced command; dropbear on loopback), LVM on both
# sides, real lvm2 and the real kernel:
# - each run replicates a new snapshot through the key, incrementally after
#   the first; each replica is exact (sha256) and carries the job's tag;
# - the far side's retention: after each run keep_destination intact
#   replicas tagged as the job's stay there, the newest among them, and
#   the run's JSON names those removed; the source keeps `keep` snapshots;
# - what that retention never removes: the operator's own replica (not
#   tagged), a replica of a source the key does not name (even one tagged
#   as the job's), and a replica written to since it was received;
# - the key refuses a tag that is not a sync job's, and retention without
#   a tag;
# - after every step, on both VGs, the kernel's thin ids are the thin_ids
#   lvs -a shows.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_dump sha256sum dropbear dbclient dropbearkey

STATE=$DMT_TMP/state		# the source's
DSTATE=$DMT_TMP/dstate		# the far side's (its serve.d's)
CONF=$DMT_TMP/conf		# the source's configuration
DCONF=$DMT_TMP/dconf		# the far side's
DMREPL=$(command -v dmrepl)
dmt_vg src 300
dmt_vg dst 300
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 200M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 200M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 32M -T "$A/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm src vol)
dd if=/dev/urandom of="$vol" bs=1M count=8 conv=fsync 2>/dev/null

# The far side's key: B/pool only, streams of A's pool only.
mkdir -p "$CONF/jobs.d" "$DCONF/serve.d" "$STATE" "$DSTATE"
printf '[serve]\npools = %s/pool\nsources = *:%s*\nstate_dir = %s\n' \
	"$B" "$(dmt_lv_dm src pool)" "$DSTATE" > "$DCONF/serve.d/backup.conf"
dmt_sshd
dropbearkey -t ed25519 -f "$DMT_TMP/keys/backup" 2>/dev/null | grep '^ssh-ed25519' |
	sed "s|^|command=\"$DMREPL serve backup -c $DCONF\",no-pty,no-port-forwarding,no-agent-forwarding |" \
	>> /root/.ssh/authorized_keys
KEY="dbclient -y -i $DMT_TMP/keys/backup -p $DMT_SSH_PORT root@127.0.0.1"

JOB=far
printf '[job]\norigin = %s/vol\nto = ssh://root@127.0.0.1/%s/pool\nkeep = 2\nkeep_destination = 2\ntransport = %s\nstate_dir = %s\n' \
	"$A" "$B" "$KEY" "$STATE" > "$CONF/jobs.d/$JOB.conf"

after() {
	dmt_lvm_invariant src pool "after $1 (source)"
	dmt_lvm_invariant dst pool "after $1 (destination)"
	dmt_no_dmrepl_devices "after $1"
}
# job_lvs VG: the LVs of VG tagged as the job's, by name, on one line.
job_lvs() {
	lvm lvs --noheadings --separator ' ' -o lv_name,lv_tags "$1" < /dev/null |
		awk -v t="dmrepl.sync:$JOB" '{ n = split($2, tags, ",")
			for (i = 1; i <= n; i++) if (tags[i] == t) print $1 }' | sort | tr '\n' ' '
}
lv_exists() { lvm lvs "$1" > /dev/null 2>&1 < /dev/null; }
write() {
	dd if=/dev/urandom of="$vol" bs=1M count="$1" seek="$(dmt_random 24)" conv=fsync,notrunc 2>/dev/null
}
field() { tail -n 1 "$DMT_TMP/out" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }
# run WHAT: one run of the job; its snapshot and replica in $S and $R,
# the replica exact.
run() {
	echo "+ dmrepl sync -c $CONF $JOB ($1)" >&2
	dmrepl sync -c "$CONF" --json -q "$JOB" > "$DMT_TMP/out" 2> "$DMT_TMP/err" ||
		{ cat "$DMT_TMP/out" "$DMT_TMP/err" >&2; dmt_fail "sync $JOB: $1"; }
	cat "$DMT_TMP/err" >&2
	tail -n 1 "$DMT_TMP/out" >&2
	dmt_json_capture sync "$DMT_TMP/out"
	S=$(field snapshot)
	R=$(field replica)
	dmt_assert_match "$B/*" "$R" "$1: the replica is in $B"
	dmt_assert_eq "$(dmt_lv_sha src "${S#*/}")" "$(dmt_lv_sha dst "${R#*/}")" "$1: $R equals $S"
	after "$1"
}
pruned() { tail -n 1 "$DMT_TMP/out" | sed -n 's/.*"pruned_destination":\[\([^]]*\)\].*/\1/p' | tr -d '"'; }

echo "## 1. the first runs: full, then incremental, through the key"
run "the first run"
dmt_assert_eq true "$(field full)" "the first run is a full copy"
R1=$R
dmt_assert_eq "${R1#*/} " "$(job_lvs "$B")" "the replica carries the job's tag"
sleep 1		# snapshot names are by the second
write 2
run "the second run"
dmt_assert_eq false "$(field full)" "the second run is incremental"
R2=$R
dmt_assert_eq "" "$(pruned)" "two replicas, keep_destination 2: none removed"

echo "## 2. what the far side's retention must leave alone"
# the operator's own replica (no tag) of a snapshot of his
dmt_lvm lvcreate -qq -y -s -n mine "$A/vol"
dmrepl replicate --snap "$A/mine" --to-pool "$B/pool" --state-dir "$DSTATE" -q ||
	dmt_fail "the operator's replicate"
mine=$(lvm lvs --noheadings -o lv_name "$B" < /dev/null | awk '$1 ~ /^mine/ && $1 !~ /_dmrepl_anchor$/ { print $1 }')
[ -n "$mine" ] || dmt_fail "no replica of $A/mine in $B"
# a replica of another source, tagged as the job's: not the key's to remove
id=$(lvm lvs --noheadings -o thin_id "$A/mine" < /dev/null | tr -d ' ')
dmrepl send --pool "$(dmt_lvm_pool_dm src pool)" --snap "$id" --size 32M \
	--source-name elsewhere:pool -q > "$DMT_TMP/foreign.st" || dmt_fail "send as elsewhere:pool"
dmrepl receive --pool "$B/pool" --state-dir "$DSTATE" --tag "dmrepl.sync:$JOB" -q \
	< "$DMT_TMP/foreign.st" || dmt_fail "receive of elsewhere:pool's stream"
foreign=$(job_lvs "$B" | tr ' ' '\n' | grep -vx "${R1#*/}" | grep -vx "${R2#*/}" | head -n 1)
[ -n "$foreign" ] || dmt_fail "no tagged replica of elsewhere:pool in $B"
# the first replica, written to since (promoted by the operator, say)
dmt_lvm lvchange -qq -ay -K "$R1"
dd if=/dev/urandom of="/dev/mapper/$(dmt_lv_dm dst "${R1#*/}")" bs=64k count=1 conv=fsync 2>/dev/null
dmt_lvm lvchange -qq -an "$R1"
after "the operator's changes"

echo "## 3. more runs: the far side keeps 2 intact replicas of the job"
sleep 1
write 1
run "the third run"
R3=$R
dmt_assert_eq "" "$(pruned)" "the third run: $R1 (written to) does not count, $R2 and $R3 are 2"
sleep 1
write 1
run "the fourth run"
R4=$R
dmt_assert_eq "$R2" "$(pruned)" "the fourth run removes the oldest intact replica, and says so"
lv_exists "$R2" && dmt_fail "$R2 is still there"
for lv in "$R1" "$R3" "$R4" "$B/$mine" "$B/$foreign"; do
	lv_exists "$lv" || dmt_fail "$lv was removed"
done
dmt_assert_eq 2 "$(job_lvs "$A" | wc -w)" "the source keeps 2 snapshots"
sleep 1
write 1
run "the fifth run"
dmt_assert_eq "$R3" "$(pruned)" "the fifth run removes $R3"
for lv in "$R1" "$R4" "$R" "$B/$mine" "$B/$foreign"; do
	lv_exists "$lv" || dmt_fail "$lv was removed"
done

echo "## 4. what the key refuses"
_lvs=$(lvm lvs --noheadings -o lv_name "$B" < /dev/null | tr -d ' ' | sort | tr '\n' ' ')
rc=0
$KEY dmrepl receive --pool "$B/pool" --tag other --keep 1 < /dev/null > /dev/null 2> "$DMT_TMP/rerr" || rc=$?
cat "$DMT_TMP/rerr" >&2
dmt_assert_eq 2 "$rc" "a tag not a sync job's: refused"
dmt_assert_match "*--tag other: this key may give only a sync job's tag*" "$(cat "$DMT_TMP/rerr")" \
	"and says why"
rc=0
$KEY dmrepl receive --pool "$B/pool" --keep 1 < /dev/null > /dev/null 2> "$DMT_TMP/rerr" || rc=$?
cat "$DMT_TMP/rerr" >&2
dmt_assert_eq 2 "$rc" "retention without a tag: refused"
dmt_assert_match "*--keep goes with --tag*" "$(cat "$DMT_TMP/rerr")" "and says why"
dmt_assert_eq "$_lvs" "$(lvm lvs --noheadings -o lv_name "$B" < /dev/null | tr -d ' ' | sort | tr '\n' ' ')" \
	"the refusals removed nothing"
after "the refusals"
echo "sync-remote: ok"
