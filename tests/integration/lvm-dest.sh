#!/bin/sh
# dmrepl-timeout: 600
# Replicas as LVM volumes: dmrepl replicates LVM snapshots by their names
# into a thin pool that LVM manages, in another VG, and every replica is
# an LV that LVM created, with its lineage in LVM tags.
# - full, incremental (the base picked by itself), send --chain | receive,
#   send | receive, replicate --to ssh://HOST/VG/POOL: each replica's
#   sha256 equals its snapshot's, and it is named after it;
# - after every step: the kernel's thin ids in both pools are the
#   thin_ids lvs shows (dmt_lvm_invariant), no metadata snapshot is held,
#   no dmrepl device is left, vgck is quiet, and a new LV that an LVM user
#   creates in the destination pool reads zeroes;
# - replicas are inactive with activation skip; each has one anchor LV;
#   dmrepl replicas lists them with their LV names;
# - lvremove of a replica: the next replication builds on an older one,
#   says so, and deletes the orphaned anchor; lvremove of an anchor: that
#   replica is no longer a base;
# - vgchange -an/-ay, vgcfgbackup/vgcfgrestore, vgexport/vgimport: the
#   lineage travels with the VG (the next replication is incremental);
# - thin_check of the destination pool's metadata is clean at the end;
# - dmrepl snapshot --origin VG/LV makes an LVM snapshot (LVM picks the id).
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_dump thin_check awk sha256sum dropbear dbclient dropbearkey

STATE=$DMT_TMP/state
dmt_vg src 200
dmt_vg dst 200
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 64M -T "$A/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm src vol)

# lv_sha VG LV: sha256 of an LV (activated for the read, as LVM users do).
lv_sha() {
	_act=$(lvm lvs --noheadings -o lv_active "$1/$2" < /dev/null | tr -d ' ')
	[ -n "$_act" ] || lvm lvchange -qq -ay -K "$1/$2" < /dev/null || dmt_fail "lvchange -ay $1/$2"
	_dm=/dev/mapper/$(echo "$1" | sed 's/-/--/g')-$(echo "$2" | sed 's/-/--/g')
	sha256sum < "$_dm" | cut -d' ' -f1
	[ -n "$_act" ] || lvm lvchange -qq -an "$1/$2" < /dev/null || dmt_fail "lvchange -an $1/$2"
}
zero_n=0
# after WHAT: what every step must leave on both VGs.
after() {
	dmt_lvm_invariant src pool "after $1 (source)"
	dmt_lvm_invariant dst pool "after $1 (destination)"
	for _p in "$(dmt_lvm_pool_dm src pool)" "$(dmt_lvm_pool_dm dst pool)"; do
		dmt_assert_eq - "$(dmsetup status "$_p" | awk '{ print $7 }')" "after $1: no metadata snapshot held on $_p"
	done
	dmt_no_dmrepl_devices "after $1"
	for _vg in "$A" "$B"; do
		lvm vgck "$_vg" < /dev/null > "$DMT_TMP/vgck" 2>&1 || { cat "$DMT_TMP/vgck" >&2; dmt_fail "after $1: vgck $_vg"; }
		dmt_assert_eq "" "$(grep -v '^ *$' "$DMT_TMP/vgck" || :)" "after $1: vgck $_vg says nothing"
	done
	# an LVM user's new volume in the destination pool is empty
	zero_n=$((zero_n + 1))
	dmt_lvm lvcreate -qq -y -V 8M -T "$B/pool" -n "user$zero_n"
	dmt_assert_eq "$(head -c 8388608 /dev/zero | sha256sum | cut -d' ' -f1)" \
		"$(lv_sha "$B" "user$zero_n")" "after $1: a new LV in the destination reads zeroes"
	dmt_lvm lvremove -qq -y "$B/user$zero_n"
	dmt_lvm_invariant dst pool "after $1 and an LVM user's lvcreate/lvremove"
}
# same SNAP [REPLICA]: the replica of $A/SNAP in $B is exact.
same() {
	dmt_assert_eq "$(lv_sha "$A" "$1")" "$(lv_sha "$B" "${2:-$1}")" "$B/${2:-$1} equals $A/$1"
}
# tagged LV: what dmrepl tagged it (replica, staging, anchor), or "".
tagged() {
	lvm lvs --noheadings -o lv_tags "$B/$1" < /dev/null |
		sed -n 's/.*dmrepl\.\(replica\|staging\|anchor\).*/\1/p'
}
# rep ARGS: dmrepl replicate -v ARGS; its output in out, its messages in err.
rep() {
	echo "+ dmrepl replicate $*" >&2
	_rc=0
	dmrepl -v replicate --state-dir "$STATE" "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	grep -v '"type":"progress"' "$DMT_TMP/out" >&2 || :
	grep -v 'WARNING: Sum of all thin' "$DMT_TMP/err" >&2 || :
	[ "$_rc" = 0 ] || dmt_fail "dmrepl replicate $* failed (exit $_rc)"
}
write() { dd if=/dev/urandom of="$vol" bs=64K count="$2" seek="$1" oflag=direct conv=notrunc 2>/dev/null; }

echo "+ 16 MiB, snapshot 1 (dmrepl snapshot --origin VG/LV: LVM makes it)" >&2
write 0 256
out=$(dmrepl snapshot --origin "$A/vol" --name snap1)
dmt_assert_eq "$A/snap1" "$out" "dmrepl snapshot --origin VG/LV --name prints VG/NAME"
after "dmrepl snapshot --origin VG/LV"

rep --snap "$A/snap1" --to-pool "$B/pool"
dmt_assert_match "*replicated as $B/snap1 (thin *" "$(cat "$DMT_TMP/out")" "a full copy, named after its source"
dmt_assert_match "*(full)*" "$(cat "$DMT_TMP/out")" "it says full"
same snap1
dmt_assert_eq replica "$(tagged snap1)" "snap1 carries the replica record"
dmt_assert_eq anchor "$(tagged snap1_dmrepl_anchor)" "its anchor is an LV with dmrepl's anchor tag"
dmt_assert_eq "snap1" "$(lvm lvs --noheadings -o origin "$B/snap1_dmrepl_anchor" < /dev/null | tr -d ' ')" \
	"the anchor is a snapshot of the replica"
dmt_assert_eq "" "$(lvm lvs --noheadings -o lv_active "$B/snap1" < /dev/null | tr -d ' ')" "the replica is inactive"
dmt_assert_match "*k" "$(lvm lvs --noheadings -o lv_attr "$B/snap1" < /dev/null | tr -d ' ')" "activation skip is set"
after "a full replication into LVM"

echo "+ 2 MiB more, snapshot 2: incremental, by itself" >&2
write 100 32
dmt_lvm lvcreate -qq -y -s -n snap2 "$A/vol"
rep --snap "$A/snap2" --to-pool "$B/pool" --json
dmt_assert_match '*"replica_lv":"'"$B"'/snap2"*"full":false*' "$(tail -n 1 "$DMT_TMP/out")" "incremental, JSON names the LV"
dmt_assert_match '*"copied_bytes":2097152,*' "$(tail -n 1 "$DMT_TMP/out")" "it copied the 2 MiB that changed"
same snap2
after "an incremental replication into LVM"

echo "+ snapshots 3 and 4; send --chain | receive" >&2
write 200 16
dmt_lvm lvcreate -qq -y -s -n snap3 "$A/vol"
write 300 16
dmt_lvm lvcreate -qq -y -s -n snap4 "$A/vol"
dmrepl send --snap "$A/snap4" --base "$A/snap2" --chain -q |
	dmrepl receive --to-pool "$B/pool" --state-dir "$STATE" > "$DMT_TMP/out" ||
	dmt_fail "send --chain | receive"
cat "$DMT_TMP/out" >&2
dmt_assert_match "*received as $B/snap4*" "$(cat "$DMT_TMP/out")" "the chain's last replica is named after its source"
same snap3
same snap4
after "send --chain | receive into LVM"

echo "+ snapshot 5: send | receive, incremental" >&2
write 400 16
dmt_lvm lvcreate -qq -y -s -n snap5 "$A/vol"
dmrepl send --snap "$A/snap5" --base "$A/snap4" -q |
	dmrepl receive --to-pool "$B/pool" --state-dir "$STATE" -q || dmt_fail "send | receive"
same snap5
after "send | receive into LVM"

echo "+ snapshot 6: replicate --to ssh://root@127.0.0.1/$B/pool" >&2
dmt_sshd
write 500 16
dmt_lvm lvcreate -qq -y -s -n snap6 "$A/vol"
rep --snap "$A/snap6" --to "ssh://root@127.0.0.1/$B/pool" --transport "$DMT_DBCLIENT root@127.0.0.1" \
	--remote-dmrepl "$(command -v dmrepl)" --remote-state-dir "$STATE"
dmt_assert_match "*replicated as $B/snap6*from thin*" "$(cat "$DMT_TMP/out")" "over ssh, incremental, named after its source"
same snap6
dmt_sshd_stop
after "replicate --to ssh:// into LVM"

out=$(dmrepl replicas --to-pool "$B/pool" --state-dir "$STATE" --json)
echo "# $out" >&2
for s in snap1 snap2 snap3 snap4 snap5 snap6; do
	dmt_assert_match "*\"state\":\"ok\",\"lv\":\"$B/$s\",\"src_name\":\"$A/$s\"*" "$out" "dmrepl replicas lists $B/$s"
done

echo "+ lvremove of the newest replica: the next one builds on an older" >&2
dmt_lvm lvremove -qq -y "$B/snap6"
write 600 16
dmt_lvm lvcreate -qq -y -s -n snap7 "$A/vol"
rep --snap "$A/snap7" --to-pool "$B/pool"
dmt_assert_match "*replicated as $B/snap7*" "$(cat "$DMT_TMP/out")" "replicated after an lvremove"
dmt_assert_match "*incremental from thin $(lvm lvs --noheadings -o thin_id "$A/snap5" < /dev/null | tr -d ' ')*" \
	"$(cat "$DMT_TMP/err")" "it built on snap5's replica, the newest left, and said so"
dmt_assert_match "*deleted snap6_dmrepl_anchor, the anchor of a replica that was removed*" \
	"$(cat "$DMT_TMP/err")" "the removed replica's anchor went with it"
dmt_assert_eq "" "$(lvm lvs --noheadings -o lv_name "$B" < /dev/null | grep snap6 || :)" "nothing of snap6 is left"
same snap7
after "an lvremove of a replica"

echo "+ lvremove of an anchor: that replica is no longer a base" >&2
dmt_lvm lvremove -qq -y "$B/snap7_dmrepl_anchor"
write 700 16
dmt_lvm lvcreate -qq -y -s -n snap8 "$A/vol"
rep --snap "$A/snap8" --to-pool "$B/pool"
dmt_assert_match "*incremental from thin $(lvm lvs --noheadings -o thin_id "$A/snap5" < /dev/null | tr -d ' ')*" \
	"$(cat "$DMT_TMP/err")" "snap7 without its anchor is passed over for snap5"
same snap8
after "an lvremove of an anchor"

echo "+ a replica written to is not a base either" >&2
dmt_lvm lvchange -qq -ay -K "$B/snap8"
dd if=/dev/urandom of="/dev/mapper/$(dmt_lv_dm dst snap8)" bs=4K count=1 seek=3 oflag=direct conv=notrunc 2>/dev/null
dmt_lvm lvchange -qq -an "$B/snap8"
write 800 16
dmt_lvm lvcreate -qq -y -s -n snap9 "$A/vol"
rep --snap "$A/snap9" --to-pool "$B/pool"
dmt_assert_match "*incremental from thin $(lvm lvs --noheadings -o thin_id "$A/snap5" < /dev/null | tr -d ' ')*" \
	"$(cat "$DMT_TMP/err")" "the written snap8 is passed over for snap5"
same snap9
after "a replica written to"

echo "+ vgchange -an/-ay, vgcfgbackup/vgcfgrestore, vgexport/vgimport" >&2
dmt_lvm vgchange -qq -an "$B"
dmt_lvm vgchange -qq -ay "$B"
dmt_assert_eq "" "$(lvm lvs --noheadings -o lv_active "$B/snap9" < /dev/null | tr -d ' ')" "vgchange -ay leaves replicas inactive"
dmt_lvm vgcfgbackup -q -f "$DMT_TMP/vg.backup" "$B"
dmt_lvm vgchange -qq -an "$B"
dmt_lvm vgcfgrestore -q --force -f "$DMT_TMP/vg.backup" "$B"
dmt_lvm vgexport -q "$B"
dmt_lvm vgimport -q "$B"
dmt_lvm vgchange -qq -ay "$B"
write 900 16
dmt_lvm lvcreate -qq -y -s -n snap10 "$A/vol"
rep --snap "$A/snap10" --to-pool "$B/pool" --json
dmt_assert_match '*"replica_lv":"'"$B"'/snap10"*"full":false*' "$(tail -n 1 "$DMT_TMP/out")" \
	"after the VG went through backup, restore, export and import, the lineage is intact"
same snap10
after "vgcfgrestore, vgexport and vgimport"

echo "+ a replica name already taken: NAME.2" >&2
dmt_lvm lvcreate -qq -y -V 8M -T "$B/pool" -n snap11
write 1000 16
dmt_lvm lvcreate -qq -y -s -n snap11 "$A/vol"
rep --snap "$A/snap11" --to-pool "$B/pool"
dmt_assert_match "*replicated as $B/snap11.2 *" "$(cat "$DMT_TMP/out")" "the user's snap11 is left alone"
same snap11 snap11.2
dmt_assert_eq "$(head -c 8388608 /dev/zero | sha256sum | cut -d' ' -f1)" "$(lv_sha "$B" snap11)" "the user's LV is untouched"
after "a taken name"

echo "+ thin_check of the destination pool's metadata" >&2
dmt_lvm vgchange -qq -an "$B"
dmt_lvm lvchange -qq -ay -y "$B/pool_tmeta"
thin_check "/dev/mapper/$(dmt_lv_dm dst pool)_tmeta" > "$DMT_TMP/tc" 2>&1 || { cat "$DMT_TMP/tc" >&2; dmt_fail "thin_check"; }
dmt_lvm lvchange -qq -an "$B/pool_tmeta"
dmt_lvm vgchange -qq -ay "$B"
dmt_lvm_invariant dst pool "at the end"
echo "ok"
