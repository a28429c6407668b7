#!/bin/sh
# The Quick start's main job, also run as a test: the mission on a real
# kernel with LVM. A volume group with a thin pool holds a volume that a
# program keeps writing to. LVM takes snapshots of it; dmrepl replicates
# them by their LVM names into another pool on this host (a full copy,
# then an incremental from the base it picks), and over ssh into a pool
# on "another host" (the guest's own ssh server on loopback), then
# verifies a replica against its snapshot. Each step shows its time and
# the bytes it moved, next to dd copying the whole volume.
# (Replicas as LVM volumes come with issue 11: the destinations here are
# device-mapper pools that LVM does not manage.)
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

say "LVM: volume group demo with a thin pool, and a ${VOL_MIB} MiB volume"
dmt_vg demo 400
VG=$(dmt_name demo)
dmt_lvm lvcreate -qq -y --type thin-pool -L 320M --chunksize 64k -n pool "$VG"
dmt_lvm lvcreate -qq -y -V ${VOL_MIB}M -T "$VG/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm demo vol)
lvm lvs -a -o lv_name,lv_size,pool_lv,thin_id "$VG" < /dev/null

say "two pools that LVM does not manage: one here (dst), one on the far side of ssh (far)"
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 320)" "$BLOCK_SECTORS"
dmt_pool far "$(dmt_loop far-meta 8)" "$(dmt_loop far-data 320)" "$BLOCK_SECTORS"
DST=$(dmt_name dst)
FAR=$(dmt_name far)

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

say "for comparison: dd of the whole volume (snapshot 1) into a new device"
dmt_lvm lvchange -qq -ay -K "$VG/snap1"
dmt_thin dst ddcopy 100 $((VOL_MIB * 2048))
t=$(dmt_now)
dd if="/dev/mapper/$(dmt_lv_dm demo snap1)" of="$(dmt_dev ddcopy)" bs=1M iflag=direct oflag=direct 2>/dev/null
dd_secs=$(secs "$t")
dmt_lvm lvchange -qq -an "$VG/snap1"
blkdiscard "$(dmt_dev ddcopy)"   # the guest's disks are in its memory
dmt_remove ddcopy
dmt_message dst "delete 100"
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
	echo "$_what: replica $(json replica), $(mib "$_b") copied in $_s s$( [ "$(json full)" = true ] && echo ", full" || echo ", from snapshot $(json base)")"
	row "$_what" "$_s" "$(mib "$_b")"
}

say "replicate snapshot 1 by its LVM name into $DST: full (no common base yet)"
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

say "replicate snapshots 1 and 2 to ssh://root@127.0.0.1/$FAR"
# (the far side's PATH does not have the guest's dmrepl: name it)
rep "full, over ssh" --snap "$VG/snap1" --to "ssh://root@127.0.0.1/$FAR" --transport "$SSH" \
	--remote-dmrepl "$(command -v dmrepl)" --remote-state-dir "$DMT_TMP/far-state"
rep "incremental, over ssh" --snap "$VG/snap2" --to "ssh://root@127.0.0.1/$FAR" --transport "$SSH" \
	--remote-dmrepl "$(command -v dmrepl)" --remote-state-dir "$DMT_TMP/far-state"
dmt_assert_eq false "$(json full)" "over ssh, snapshot 2 goes as a delta"

say "verify: each replica of snapshot 2 against the snapshot, block by block"
rm -f "$DMT_TMP/writing"
wait "$writer" 2>/dev/null || :
echo "\$ dmrepl verify --snap $VG/snap2 --to-pool $DST"
t=$(dmt_now)
dmrepl verify --snap "$VG/snap2" --to-pool "$DST" --state-dir "$STATE" ||
	dmt_fail "the replica of snapshot 2 in $DST differs"
row "verify (replica in $DST)" "$(secs "$t")" "-"
dmt_lvm lvchange -qq -ay -K "$VG/snap2"
want=$(sha256sum < "/dev/mapper/$(dmt_lv_dm demo snap2)" | cut -d' ' -f1)
dmt_lvm lvchange -qq -an "$VG/snap2"
r_far=$(dmrepl replicas --to-pool "$FAR" --state-dir "$DMT_TMP/far-state" --json | tr '{' '\n' | grep '"state":"ok"' |
	sed -n 's/.*"id":\([0-9]*\),.*/\1/p' | tail -n 1)
dmt_assert_eq "$want" "$(dmt_thin_sha far "$r_far" $((VOL_MIB * 2048)))" \
	"the replica over ssh equals snapshot 2 (sha256)"
echo "sha256 of snapshot 2 and of its replica over ssh: $want"

say "LVM's view is unchanged by dmrepl: the kernel's thin ids are the thin_ids lvs shows"
dmt_lvm_invariant demo pool "after the demo"
lvm lvs -a -o lv_name,pool_lv,thin_id "$VG" < /dev/null
echo "dmrepl replicas --to-pool $DST:"
dmrepl replicas --to-pool "$DST" --state-dir "$STATE"

say "summary"
printf '%-44s %10s %12s\n' "step" "time" "bytes"
printf '%s' "$results"
stop_all
