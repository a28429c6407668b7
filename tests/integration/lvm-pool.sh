#!/bin/sh
# dmrepl on a thin pool that LVM manages (lvm2 in the test VM, without
# udev), through the pool's dm name: what it reads agrees with LVM's own
# view, and it leaves LVM's state as it found it.
# - dmrepl ls --pool VG-POOL-tpool lists exactly the thin_ids of the thin
#   LVs that `lvs -a` shows;
# - dmrepl delta between two LVM thin snapshots equals thin_delta on the
#   same held root;
# - after each command, the thin ids in the kernel's metadata (thin_dump
#   through a held root) are the thin_ids lvs shows (dmt_lvm_invariant),
#   no metadata snapshot is held, and vgck finds nothing wrong;
# - dmrepl recover on the LVM pool finds nothing to do;
# - what would create or delete a thin device in the LVM pool by raw id is
#   refused before anything is written, with the LVM way to do it (dmrepl
#   snapshot --pool --origin ID); a replication or a stream into it makes
#   an LV through LVM, even when the pool is named by its dm name;
# - a replication out of the LVM pool into a raw pool is exact;
# - LVM names: --pool VG/POOL, --snap/--base/--snap1/--snap2 VG/LV, the
#   pool following from the LV and the size from LVM (no --size): ls,
#   delta, replicate, send | receive, verify, each exact; wrong names get
#   a clear error.
# Replicas as LVs, in depth: lvm-dest.sh.
# dmrepl-timeout: 420
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_delta thin_dump awk

dmt_vg vg 256
VG=$(dmt_name vg)
dmt_lvm lvcreate -qq -y --type thin-pool -L 128M --chunksize 64k -n pool "$VG"
dmt_lvm lvcreate -qq -y -V 64M -T "$VG/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm vg vol)
[ -b "$vol" ] || dmt_fail "$vol did not appear"
POOL=$(dmt_lv_dm vg pool)-tpool
META=/dev/mapper/$(dmt_lv_dm vg pool)_tmeta
dmsetup table "$POOL" | grep -q ' thin-pool ' || dmt_fail "$POOL is not the thin-pool device"

echo "+ 16 MiB of data, snapshot, 2 MiB more, snapshot" >&2
dd if=/dev/urandom of="$vol" bs=1M count=16 oflag=direct 2>/dev/null
dmt_lvm lvcreate -qq -y -s -n snap1 "$VG/vol"
dd if=/dev/urandom of="$vol" bs=64K count=32 seek=100 oflag=direct conv=notrunc 2>/dev/null
dmt_lvm lvcreate -qq -y -s -n snap2 "$VG/vol"
dmt_lvm_invariant vg pool "after lvcreate"

thin_id() { lvm lvs --noheadings -o thin_id "$VG/$1" < /dev/null | tr -d ' '; }
ID1=$(thin_id snap1)
ID2=$(thin_id snap2)
echo "# LVM gave snap1 thin id $ID1, snap2 $ID2" >&2

# after CMD: what every dmrepl command must leave on the LVM pool.
after() {
	dmt_lvm_invariant vg pool "after $1"
	dmt_assert_eq - "$(dmsetup status "$POOL" | awk '{ print $7 }')" "after $1: no metadata snapshot held"
	lvm vgck "$VG" < /dev/null 2> "$DMT_TMP/vgck" || { cat "$DMT_TMP/vgck" >&2; dmt_fail "after $1: vgck"; }
	dmt_assert_eq "" "$(grep -v '^ *$' "$DMT_TMP/vgck" || :)" "after $1: vgck says nothing"
}

got=$(dmrepl ls --pool "$POOL" --no-headers | awk '{ print $1 }' | sort -n | tr '\n' ' ')
dmt_assert_eq "$(dmt_lvm_thin_ids vg pool | tr '\n' ' ')" "$got" "dmrepl ls lists the thin LVs' ids"
after "dmrepl ls"

got=$(dmrepl delta --pool "$POOL" --snap1 "$ID1" --snap2 "$ID2" --format=xml)
after "dmrepl delta"
dmsetup message "$POOL" 0 reserve_metadata_snap
blockdev --flushbufs "$META"   # thin_delta reads through the page cache
want=$(thin_delta -m --snap1 "$ID1" --snap2 "$ID2" "$META")
dmsetup message "$POOL" 0 release_metadata_snap
# thin_delta reports the held copy's data size (0); dmrepl the live pool's.
strip_size() { sed 's/ nr_data_blocks="[0-9]*"//'; }
dmt_assert_text_eq "$(echo "$want" | strip_size)" "$(echo "$got" | strip_size)" \
	"dmrepl delta between LVM snapshots equals thin_delta"
dmt_assert_match '*<different begin="100" length="32"/>*' "$got" "the 32 rewritten blocks differ"

out=$(dmrepl recover --pool "$POOL" --json)
echo "# $out" >&2
printf '%s\n' "$out" | dmt_json_capture recover - 0
dmt_assert_eq '{"type":"result","ok":true,"pool":"'"$POOL"'","devices_removed":0,"metadata_snapshot_released":false,"metadata_snapshot_ok":true,"resumable":[]}' \
	"$out" "dmrepl recover: nothing to do on the LVM pool"
after "dmrepl recover"

# refused WHAT EXPECT CMD...: exit 1, saying EXPECT; LVM's state unchanged.
refused() {
	_what=$1 _expect=$2 _want_rc=${REFUSED_RC:-1}
	shift 2
	_lvs=$(lvm lvs -a --noheadings -o lv_name,thin_id "$VG" < /dev/null)
	_rc=0
	"$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	dmt_assert_eq "$_want_rc" "$_rc" "$_what: exit status"
	dmt_assert_match "*$_expect*" "$(cat "$DMT_TMP/err")" "$_what: the message"
	dmt_assert_eq "$_lvs" "$(lvm lvs -a --noheadings -o lv_name,thin_id "$VG" < /dev/null)" \
		"$_what: the LVs are as they were"
	after "$_what"
}

VOL_ID=$(thin_id vol)
refused "dmrepl snapshot on the LVM pool" \
	"pool $POOL is LVM's ($VG/pool): dmrepl does not snapshot thin $VOL_ID behind LVM's back*dmrepl snapshot --origin $VG/LV*is $VOL_ID" \
	dmrepl snapshot --pool "$POOL" --origin "$VOL_ID"

# A raw pool next to it, with a snapshot to replicate.
dmt_pool raw "$(dmt_loop raw-meta 8)" "$(dmt_loop raw-data 96)" 128
RAW=$(dmt_name raw)
dmt_thin raw rawvol 1 131072
dd if=/dev/urandom of="$(dmt_dev rawvol)" bs=1M count=4 oflag=direct 2>/dev/null
RS=$(dmrepl snapshot --pool "$RAW" --origin 1)
STATE=$DMT_TMP/state
# Into the LVM pool, even named by its dm name: LVM creates the replica,
# an LV named POOL_ID after the raw source.
out=$(dmrepl replicate --pool "$RAW" --snap "$RS" --size 67108864 --to-pool "$POOL" --state-dir "$STATE")
echo "# $out" >&2
dmt_assert_match "*replicated as $VG/${RAW}_$RS (thin *" "$out" "a raw pool's snapshot replicates into LVM as an LV"
after "a replication into the LVM pool by its dm name"
dmrepl send --pool "$RAW" --snap "$RS" --size 67108864 -q > "$DMT_TMP/rs.stream"
dmt_lvm lvremove -qq -y "$VG/${RAW}_$RS"
out=$(dmrepl receive --pool "$POOL" --state-dir "$STATE" < "$DMT_TMP/rs.stream")
dmt_assert_match "*received as $VG/${RAW}_$RS (thin *" "$out" "a stream received into the LVM pool is an LV"
after "a stream received into the LVM pool"
dmt_lvm lvremove -qq -y "$VG/${RAW}_$RS"
after "lvremove of the replica"

# Out of the LVM pool, by thin id: LVM's snapshot, replicated exactly.
dmt_run dmrepl replicate --pool "$POOL" --snap "$ID2" --size 67108864 \
	--to-pool "$RAW" --state-dir "$STATE" -q
after "a replication out of the LVM pool"
dmrepl replicas --to-pool "$RAW" --state-dir "$STATE" --json > "$DMT_TMP/replicas" ||
	dmt_fail "dmrepl replicas --json"
dmt_json_capture replicas "$DMT_TMP/replicas" 0
R=$(sed -n 's/.*"id":\([0-9]*\),.*/\1/p' "$DMT_TMP/replicas" | head -n 1)
dmt_lvm lvchange -qq -ay -K "$VG/snap2"
want_sha=$(sha256sum < "/dev/mapper/$(dmt_lv_dm vg snap2)" | cut -d' ' -f1)
dmt_lvm lvchange -qq -an "$VG/snap2"
dmt_assert_eq "$want_sha" "$(dmt_thin_sha raw "$R" 131072)" "the replica of LVM's snap2 is exact"

# ---- by LVM names
got=$(dmrepl ls --pool "$VG/pool" --no-headers | awk '{ print $1 }' | sort -n | tr '\n' ' ')
dmt_assert_eq "$(dmt_lvm_thin_ids vg pool | tr '\n' ' ')" "$got" "dmrepl ls --pool VG/POOL"
after "dmrepl ls --pool VG/POOL"
# Each thin LV by its LVM name, as lvs has it.
lvs_names=$(lvm lvs --noheadings -o thin_id,vg_name,lv_name -S "pool_lv=pool" "$VG" < /dev/null |
	awk '{ print $1, $2 "/" $3 }' | sort -n)
dmt_assert_text_eq "$lvs_names" \
	"$(dmrepl ls --pool "$VG/pool" --noheadings -o id,lv | awk '{ print $1, $2 }' | sort -n)" \
	"dmrepl ls -o id,lv names each thin LV as lvs does"
dmt_assert_match "*ID*LV*MAPPED*" "$(dmrepl ls --pool "$VG/pool" | head -n 1)" \
	"an LVM pool's listing shows the LV column by default"
dmt_run dmrepl ls --pool "$VG/pool" --json > "$DMT_TMP/ls"
dmt_json_capture ls "$DMT_TMP/ls" 0
got=$(dmrepl delta --snap1 "$VG/snap1" --snap2 "$VG/snap2" --format=xml)
# (the replications into the pool since moved its time and transaction)
strip_tx() { sed 's/ time="[0-9]*" transaction="[0-9]*"//'; }
dmt_assert_text_eq "$(echo "$want" | strip_size | strip_tx)" "$(echo "$got" | strip_size | strip_tx)" \
	"dmrepl delta --snap1 VG/LV --snap2 VG/LV (the pool from the LVs)"
after "dmrepl delta by names"

# the snapshot again, into a second raw pool, by name and without --size
dmt_pool raw2 "$(dmt_loop raw2-meta 8)" "$(dmt_loop raw2-data 96)" 128
RAW2=$(dmt_name raw2)
dmt_run dmrepl replicate --snap "$VG/snap2" --to-pool "$RAW2" --state-dir "$STATE" -q
after "dmrepl replicate --snap VG/LV"
R2=$(dmrepl replicas --to-pool "$RAW2" --state-dir "$STATE" --json |
	sed -n 's/.*"id":\([0-9]*\),.*/\1/p' | head -n 1)
dmt_assert_eq "$want_sha" "$(dmt_thin_sha raw2 "$R2" 131072)" "replicate --snap VG/LV is exact"
rc=0
dmrepl verify --snap "$VG/snap2" --to-pool "$RAW2" --state-dir "$STATE" -q || rc=$?
dmt_assert_eq 0 "$rc" "dmrepl verify --snap VG/LV: equal"
after "dmrepl verify by name"

# send | receive: snap1 in full, then snap2 from it, by names
dmt_pool raw3 "$(dmt_loop raw3-meta 8)" "$(dmt_loop raw3-data 96)" 128
RAW3=$(dmt_name raw3)
dmrepl send --snap "$VG/snap1" -q | dmrepl receive --pool "$RAW3" --state-dir "$STATE" -q ||
	dmt_fail "send --snap VG/snap1 | receive"
dmrepl send --snap "$VG/snap2" --base "$VG/snap1" -q |
	dmrepl receive --pool "$RAW3" --state-dir "$STATE" --json > "$DMT_TMP/recv" ||
	dmt_fail "send --snap VG/snap2 --base VG/snap1 | receive"
dmt_json_capture receive "$DMT_TMP/recv" 0
R3=$(sed -n 's/.*"replica":\([0-9]*\).*/\1/p' "$DMT_TMP/recv")
dmt_assert_eq "$want_sha" "$(dmt_thin_sha raw3 "$R3" 131072)" "send --snap VG/LV --base VG/LV | receive is exact"
after "send | receive by names"

# wrong names: a clear error, nothing done
refused "--snap of a missing LV" "no such" \
	dmrepl replicate --snap "$VG/nope" --to-pool "$RAW2" --state-dir "$STATE"
refused "--snap of a pool" "not a thin volume (its type is thin-pool)" \
	dmrepl send --snap "$VG/pool"
refused "--pool of a thin volume" "$VG/vol is not a thin pool" \
	dmrepl ls --pool "$VG/vol"
REFUSED_RC=2
refused "dmrepl snapshot --origin VG/LV --id" "LVM picks the id" \
	dmrepl snapshot --origin "$VG/vol" --id 77
REFUSED_RC=1
refused "dmrepl snapshot --origin of a missing LV" "no such" \
	dmrepl snapshot --origin "$VG/nope"
refused "dmrepl snapshot --origin of a missing LV, --json" "no such" \
	dmrepl snapshot --origin "$VG/nope" --json
dmt_json_capture snapshot "$DMT_TMP/out" 1
refused "dmrepl snapshot --origin VG/LV --name of a taken name" "lvcreate -s failed*already exists" \
	dmrepl snapshot --origin "$VG/vol" --name snap2

# LVM goes on working as before.
dmt_lvm lvcreate -qq -y -V 16M -T "$VG/pool" -n fresh
fresh=/dev/mapper/$(dmt_lv_dm vg fresh)
dmt_assert_eq "$(head -c 16777216 /dev/zero | sha256sum)" "$(sha256sum < "$fresh")" \
	"a new LV reads zeroes"
dmt_lvm lvremove -qq -y "$VG/snap1"
after "lvcreate and lvremove"
