#!/bin/sh
# The Quick start's main job, also run as a test: the mission on a real
# kernel with LVM. Two volume groups, each with a thin pool. The first
# holds a volume that a program keeps writing to. Snapshots of it are
# replicated by their LVM names into the other VG's pool, where each
# replica is an LV that LVM made: a full copy, an incremental from the
# base dmrepl picks, and an incremental over ssh (the guest's own ssh
# server on loopback, standing for another host) that builds on the
# replicas the local runs made. Then verify, and sha256. Each step shows
# its time and the bytes it moved, next to dd copying the whole volume.
# dmrepl-timeout: 400
set -eu
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require dmrepl lvm losetup blockdev blkdiscard sha256sum awk dropbear dbclient dropbearkey

VOL_MIB=128
BLOCK_SECTORS=128                       # 64 KiB pool blocks
STATE=$DMT_TMP/state
say() { printf '\n## %s\n' "$*"; }
json() { tail -n 1 "$DMT_TMP/out" | sed -n "s/.*\"$1\":\\([0-9a-z]*\\).*/\\1/p"; }
secs() { awk -v a="$1" -v b="$(dmt_now)" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
results=""
row() { results="$results$(printf '%-44s %8s s %12s' "$1" "$2" "$3")
"; }

say "LVM: volume group demo with a thin pool and a ${VOL_MIB} MiB volume; volume group other with a thin pool"
dmt_vg demo 300
dmt_vg other 300
VG=$(dmt_name demo)
OTHER=$(dmt_name other)
dmt_lvm lvcreate -qq -y --type thin-pool -L 240M --chunksize 64k -n pool "$VG"
dmt_lvm lvcreate -qq -y --type thin-pool -L 240M --chunksize 64k -n pool "$OTHER"
dmt_lvm lvcreate -qq -y -V ${VOL_MIB}M -T "$VG/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm demo vol)
DST=$OTHER/pool
lvm lvs -a -o vg_name,lv_name,lv_size,pool_lv,thin_id "$VG" "$OTHER" < /dev/null

say "the volume: 32 MiB written, then a writer that keeps rewriting 64 KiB blocks"
dd if=/dev/urandom of="$vol" bs=1M count=32 oflag=direct 2>/dev/null
: > "$DMT_TMP/writing"
(
	i=0
	while [ -e "$DMT_TMP/writing" ]; do
		dd if=/dev/urandom of="$vol" bs=64K count=1 seek=$(((i * 37) % 1024)) \
			oflag=direct conv=notrunc 2>/dev/null || :
		i=$((i + 1))
		usleep 20000
	done
) &
writer=$!
stop_all() { rm -f "$DMT_TMP/writing"; }
trap '_st=$?; set +e; stop_all; wait "$writer" 2>/dev/null; (exit $_st); dmt__on_exit' EXIT

say "LVM snapshot 1 of the volume (lvcreate -s), while it is written to"
dmt_lvm lvcreate -qq -y -s -n snap1 "$VG/vol"

say "for comparison: dd of the whole volume (snapshot 1) into a new LV in $OTHER"
dmt_lvm lvchange -qq -ay -K "$VG/snap1"
dmt_lvm lvcreate -qq -y -V ${VOL_MIB}M -T "$DST" -n ddcopy
t=$(dmt_now)
dd if="/dev/mapper/$(dmt_lv_dm demo snap1)" of="/dev/mapper/$(dmt_lv_dm other ddcopy)" \
	bs=1M iflag=direct oflag=direct 2>/dev/null
dd_secs=$(secs "$t")
dmt_lvm lvchange -qq -an "$VG/snap1"
dmt_lvm lvremove -qq -y "$OTHER/ddcopy"
row "dd of the whole volume" "$dd_secs" "$(mib $((VOL_MIB * 1048576)))"

# rep WHAT ARGS...: dmrepl replicate ARGS --json, timed; a row of the table.
rep() {
	_what=$1
	shift
	echo "\$ dmrepl replicate $*"
	_t=$(dmt_now)
	dmrepl replicate "$@" --json -q > "$DMT_TMP/out" 2> "$DMT_TMP/err" ||
		{ cat "$DMT_TMP/err" "$DMT_TMP/out" >&2; dmt_fail "$_what failed"; }
	_s=$(secs "$_t")
	_b=$(json copied_bytes)
	[ -n "$_b" ] || _b=0
	_lv=$(tail -n 1 "$DMT_TMP/out" | sed -n 's/.*"replica_lv":"\([^"]*\)".*/\1/p')
	echo "$_what: replica $_lv (thin $(json replica)), $(mib "$_b") copied in $_s s$( [ "$(json full)" = true ] && echo ", full" || echo ", from thin $(json base)")"
	row "$_what" "$_s" "$(mib "$_b")"
}

say "replicate snapshot 1 by its LVM name into $DST: full (no common base yet); the replica is an LV"
rep "full replication" --snap "$VG/snap1" --to-pool "$DST" --state-dir "$STATE"
dmt_assert_eq true "$(json full)" "the first replication is full"

say "LVM snapshot 2, after more writes; dmrepl picks snapshot 1 as the base"
sleep 2
dmt_lvm lvcreate -qq -y -s -n snap2 "$VG/vol"
dmrepl replicate --snap "$VG/snap2" --to-pool "$DST" --state-dir "$STATE" --dry-run
rep "incremental replication" --snap "$VG/snap2" --to-pool "$DST" --state-dir "$STATE"
dmt_assert_eq false "$(json full)" "the second replication is incremental"

say "the far side: an ssh server on 127.0.0.1 (dropbear), and dmrepl there"
dmt_sshd
SSH="$DMT_DBCLIENT root@127.0.0.1"

say "LVM snapshot 3; replicate it to ssh://root@127.0.0.1/$DST: it builds on snapshot 2's replica"
sleep 2
dmt_lvm lvcreate -qq -y -s -n snap3 "$VG/vol"
# (the far side's PATH does not have the guest's dmrepl: name it)
rep "incremental, over ssh" --snap "$VG/snap3" --to "ssh://root@127.0.0.1/$DST" --transport "$SSH" \
	--remote-dmrepl "$(command -v dmrepl)" --remote-state-dir "$STATE"
dmt_assert_eq false "$(json full)" "over ssh, snapshot 3 goes as a delta from snapshot 2"

say "verify: the replica of snapshot 3 against the snapshot, block by block"
rm -f "$DMT_TMP/writing"
wait "$writer" 2>/dev/null || :
echo "\$ dmrepl verify --snap $VG/snap3 --to-pool $DST"
t=$(dmt_now)
dmrepl verify --snap "$VG/snap3" --to-pool "$DST" --state-dir "$STATE" ||
	dmt_fail "the replica of snapshot 3 in $DST differs"
row "verify (replica of snapshot 3)" "$(secs "$t")" "-"
for s in snap1 snap2 snap3; do
	want=$(dmt_lv_sha demo "$s")
	dmt_assert_eq "$want" "$(dmt_lv_sha other "$s")" "$OTHER/$s equals $VG/$s (sha256)"
	echo "sha256 of $VG/$s and of its replica $OTHER/$s: $want"
done

say "LVM's view: the replicas are LVs (inactive, activation skip, lineage in tags), each with its anchor"
lvm lvs -a -o lv_name,lv_attr,lv_size,origin,thin_id "$OTHER" < /dev/null
for g in demo other; do
	dmt_lvm_invariant "$g" pool "after the demo"
done
echo "the kernel's thin ids in both pools are the thin_ids lvs shows; vgck:"
lvm vgck "$VG" "$OTHER" < /dev/null || dmt_fail "vgck"
echo "dmrepl replicas --to-pool $DST:"
dmrepl replicas --to-pool "$DST" --state-dir "$STATE"

say "summary"
printf '%-44s %10s %12s\n' "step" "time" "bytes"
printf '%s' "$results"
stop_all
