#!/bin/sh
# dmrepl-timeout: 5400
# Guest side of bench/replicate.sh: times `dmrepl replicate` against dd in
# the test VM (tests/vm/run --disk ...), with GNU time and dd and dmrepl on
# PATH (in /opt/dmrepl/bin).  The disks, in order:
#   /dev/vda  source pool metadata       /dev/vdb  source pool data
#   /dev/vdc  destination pool metadata  /dev/vdd  destination pool data
#   /dev/vde  random data, written over the volume (repeated when smaller)
# Both pools have 64 KiB blocks and the kernel's defaults (block zeroing on).
#
# The source: thin 1 written in full from /dev/vde (non-zero data), snapshot
# S1 = 2, then 1% of its blocks rewritten with new random data, snapshot
# S2 = 3.  PATTERN says where those blocks lie: scattered (distinct blocks
# drawn with a fixed seed) or clustered (4 contiguous ranges, centred at
# 1/8, 3/8, 5/8 and 7/8 of the volume).  Then RUNS
# rounds, each dropping caches before every command, alternating which
# command of a pair goes first:
#   a. dmrepl replicate --snap S1 --full (fresh state directory; the replica
#      is deleted afterwards) vs dd conv=sparse of S1's device into a fresh
#      thin device of the destination pool;
#   b. dmrepl replicate --snap S2 --base S1 (into a snapshot of S1's
#      replica; deleted afterwards) vs a full dd of S2's device into a fresh
#      thin device.
#   c. with fio in BIN: 64 MiB read from S2 while as much is written into a
#      fresh snapshot of S1's replica (what a replication writes into), as
#      64 KiB random I/Os and as 1 MiB sequential ones (io_uring, O_DIRECT,
#      iodepth 32 each); fio's own runtime.
# The replicas of the first round are checked: sha256 equal to the source's.
# Prints "rbench: RESULT pair cmd round secs peak_rss_kib" lines for the host,
# and "rbench: COPIED pair round bytes extents" for each replication.
#
# LVM=1 (bench/replicate.sh --lvm): the same over pools LVM manages, by
# names, as an LVM volume driver runs it. vda and vdb are the source VG's
# PVs, vdc and vdd the destination's, each with a thin pool of 64 KiB
# chunks (zeroing on, as the raw pools); the volume is a thin LV, S1 and
# S2 LVM snapshots of it; `dmrepl replicate --snap VG/s2 --base VG/s1
# --to-pool VG/pool` makes replicas as LVs (lvremove'd afterwards); dd
# writes into a new thin LV. No fio pair in this mode.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require dmrepl blockdev sha256sum awk
LVM=0
BIN=/opt/dmrepl/bin
{ [ -x "$BIN/time" ] && [ -x "$BIN/dd" ]; } || dmt_skip "GNU time and dd are not in $BIN (run bench/replicate.sh)"
for d in vda vdb vdc vdd vde; do
	[ -b /dev/$d ] || dmt_fail "/dev/$d is missing: run through bench/replicate.sh"
done

RUNS=${RBENCH_RUNS:-3}
PAIRS=${RBENCH_PAIRS:-full,incr}
PATTERN=${RBENCH_PATTERN:-scattered}
VOL_MIB=${RBENCH_VOL_MIB:-}
BLOCK_SECTORS=128
BLOCK_BYTES=65536
SEED=4
RANDOM_MIB=$(($(blockdev --getsize64 /dev/vde) / 1048576))
VOL_BYTES=$(( ${VOL_MIB:-$RANDOM_MIB} * 1048576 ))
VOL_SECTORS=$((VOL_BYTES / 512))
NR_BLOCKS=$((VOL_BYTES / BLOCK_BYTES))
NR_CHANGED=$((NR_BLOCKS / 100))
T=$DMT_TMP/time

say() { echo "rbench: $*"; }

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# timed PAIR CMD ROUND PROG ARGS...: run PROG under GNU time after dropping
# caches, print a RESULT line.
timed() {
	_pair=$1 _cmd=$2 _round=$3
	shift 3
	drop
	echo "+ $*" >&2
	"$BIN/time" -f '%e %M' -o "$T" "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || {
		cat "$DMT_TMP/out" "$DMT_TMP/err" >&2
		dmt_fail "$_cmd failed: $*"
	}
	say "RESULT $_pair $_cmd $_round $(tail -n 1 "$T")"
}

# The kind of pool: how pools, snapshots, replicas and dd's targets are
# made, named and dropped. S1 and S2 name the snapshots to dmrepl,
# SRC_ARGS and DST_ARGS the pools; replica_of_json reads what names a
# replica from dmrepl's JSON result.
if [ "$LVM" = 1 ]; then
	dmt_require_target snapshot
	dmt_require lvm
	SV=$(dmt_name rbsrc) DV=$(dmt_name rbdst)
	S1=$SV/s1 S2=$SV/s2
	SRC_ARGS= DST_ARGS="--to-pool $DV/pool" FULL_ARGS=
	# dm_of VG LV: LVM's device of an active LV
	dm_of() { echo "/dev/mapper/$(echo "$1" | sed 's/-/--/g')-$(echo "$2" | sed 's/-/--/g')"; }
	setup_pools() {
		dmt_lvm pvcreate -qq -y /dev/vda /dev/vdb /dev/vdc /dev/vdd
		dmt_lvm vgcreate -qq "$SV" /dev/vda /dev/vdb
		dmt_lvm vgcreate -qq "$DV" /dev/vdc /dev/vdd
		echo "$SV" >> "$DMT_TMP/.vgs"
		echo "$DV" >> "$DMT_TMP/.vgs"
		# room for the volume and the 1% rewritten after S1 (the
		# VG is vda and vdb: bench/replicate.sh sizes them for a raw
		# pool, 64 MiB of metadata and the volume + 256 MiB of data)
		dmt_lvm lvcreate -qq -y --type thin-pool --chunksize 64k -Zy \
			-L "$((VOL_BYTES / 1048576 * 101 / 100 + 32))M" -n pool "$SV"
		dmt_lvm lvcreate -qq -y --type thin-pool --chunksize 64k -Zy \
			-L "$((2 * VOL_BYTES / 1048576 + 256))M" -n pool "$DV"
		dmt_lvm lvcreate -qq -y -V "${VOL_BYTES}b" -T "$SV/pool" -n origin
		ORIGIN=$(dm_of "$SV" origin)
	}
	# snapshot VG/NAME: an LVM snapshot of the volume, active to be read
	snapshot() {
		dmt_lvm lvcreate -qq -y -s -n "${1#*/}" "$SV/origin"
		dmt_lvm lvchange -qq -ay -K "$1"
	}
	snap_dev() { dm_of "$SV" "${1#*/}"; }
	origin_done() { dmt_lvm lvchange -qq -an "$SV/origin"; }
	src_status() { lvm lvs --noheadings -o lv_name,data_percent,thin_id "$SV" < /dev/null | tr -s ' ' | tr '\n' ';'; }
	replica_of_json() { sed -n 's/.*"replica_lv":"\([^"]*\)".*/\1/p'; }
	# replica_drop VG/LV: the replica and its anchor
	replica_drop() { dmt_lvm lvremove -qq -y "$1" "${1}_dmrepl_anchor"; }
	# thin_new ID NAME: a new, active thin LV NAME in the destination
	thin_new() {
		dmt_lvm lvcreate -qq -y -V "${VOL_BYTES}b" -T "$DV/pool" -n "$2"
		ln -sf "$(dm_of "$DV" "$2")" "$DMT_TMP/dd-target"
	}
	thin_drop() { dmt_lvm lvremove -qq -y "$DV/$2"; }
	sha_src() { sha256sum < "$(snap_dev "$1")" | cut -d' ' -f1; }
	sha_dst() {
		dmt_lvm lvchange -qq -ay -K "$1"
		_s=$(sha256sum < "$(dm_of "${1%%/*}" "${1#*/}")" | cut -d' ' -f1)
		dmt_lvm lvchange -qq -an "$1"
		echo "$_s"
	}
	dst_status() { lvm lvs --noheadings -o lv_name,data_percent "$DV" < /dev/null | tr -s ' ' | tr '\n' ';'; }
	dst_used() { lvm lvs --noheadings -o data_percent "$DV/pool" < /dev/null | tr -d ' ' | sed 's/^0\.00$/0/'; }
	snaps_done() { :; }
	delta_args() { echo "--snap1 $S1 --snap2 $S2"; }
else
	S1=2 S2=3
	SRC_ARGS="--pool $(dmt_name src)" DST_ARGS="--to-pool $(dmt_name dst)"
	FULL_ARGS="--size $VOL_BYTES"
	setup_pools() {
		dmt_pool src /dev/vda /dev/vdb "$BLOCK_SECTORS"
		dmt_pool dst /dev/vdc /dev/vdd "$BLOCK_SECTORS"
		dmt_thin src origin 1 "$VOL_SECTORS"
		ORIGIN=$(dmt_dev origin)
	}
	# snapshot ID: thin ID, a snapshot of the volume, active to be read
	snapshot() {
		dmt_snap src origin "$1" 1
		dmt_thin_activate src "snap$1" "$1" "$VOL_SECTORS"
	}
	snap_dev() { dmt_dev "snap$1"; }
	origin_done() { dmt_remove origin; }
	src_status() { dmt_dmsetup status "$(dmt_name src)"; }
	replica_of_json() { sed -n 's/.*"replica":\([0-9]*\).*/\1/p'; }
	# replica_drop ID: delete replica ID and its anchor, the snapshot of
	# it dmrepl keeps as ID + 1 (lib/dest.c) to notice writes to it.
	replica_drop() {
		dmt_message dst "delete $(($1 + 1))"
		dmt_message dst "delete $1"
	}
	# thin_new ID NAME: a new, active thin device in the destination pool.
	thin_new() {
		dmt_message dst "create_thin $1"
		dmt_create "$2" "0 $VOL_SECTORS thin $(dmt_dev dst) $1"
		ln -sf "$(dmt_dev "$2")" "$DMT_TMP/dd-target"
	}
	# thin_drop ID NAME: deactivate NAME, delete thin ID of dst.
	thin_drop() {
		dmt_remove "$2"
		dmt_message dst "delete $1"
	}
	# sha_of POOL ID: sha256 of thin ID of POOL.
	sha_of() {
		dmt_create "sha" "0 $VOL_SECTORS thin $(dmt_dev "$1") $2"
		_s=$(sha256sum < "$(dmt_dev sha)" | cut -d' ' -f1)
		dmt_remove sha
		echo "$_s"
	}
	sha_src() { sha_of src "$1"; }
	sha_dst() { sha_of dst "$1"; }
	dst_status() { dmt_dmsetup status "$(dmt_name dst)"; }
	dst_used() { dst_status | awk '{ split($6, u, "/"); print u[1] }'; }
	snaps_done() { dmt_remove "snap$S1"; dmt_remove "snap$S2"; }
	delta_args() { echo "--pool $(dmt_name src) --snap1 $S1 --snap2 $S2"; }
fi
dd_target() { readlink "$DMT_TMP/dd-target"; }

# replicate PAIR CMD ROUND STATE ARGS...: timed dmrepl replicate; leaves the
# replica's id in $DMT_TMP/replica.
replicate() {
	_p=$1 _c=$2 _r=$3 _st=$4
	shift 4
	# shellcheck disable=SC2086 # SRC_ARGS, DST_ARGS: words
	timed "$_p" "$_c" "$_r" dmrepl replicate $SRC_ARGS "$@" \
		$DST_ARGS --state-dir "$_st" --json
	tail -n 1 "$DMT_TMP/out" >&2
	say "COPIED $_p $_r $(tail -n 1 "$DMT_TMP/out" | sed -n 's/.*"extents":\([0-9]*\).*"copied_bytes":\([0-9]*\).*/\2 \1/p')"
	tail -n 1 "$DMT_TMP/out" | replica_of_json > "$DMT_TMP/replica"
	[ -s "$DMT_TMP/replica" ] || dmt_fail "no replica id in the output of dmrepl"
}

check_replica() {
	_want=$(sha_src "$1")
	_got=$(sha_dst "$2")
	dmt_assert_eq "$_want" "$_got" "sha256 of replica $2 equals that of source snapshot $1"
	say "CHECK replica $2 of snapshot $1: sha256 $_got equal"
}

# ---------------------------------------------------------------- source

say "volume $VOL_BYTES bytes, $NR_BLOCKS blocks of 64 KiB, $NR_CHANGED changed ($PATTERN); $RUNS rounds"
say "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { print $2 }' /proc/meminfo) KiB"
say "pools: $([ "$LVM" = 1 ] && echo "LVM-managed, by names ($(lvm version < /dev/null | sed -n 's/^ *LVM version: *\([^ ]*\).*/lvm \1/p'))" || echo "raw device-mapper, by ids")"
setup_pools
t0=$(cut -d' ' -f1 /proc/uptime)
# From /dev/vde, over and over when it is smaller than the volume.
off=0
while [ "$off" -lt $((VOL_BYTES / 1048576)) ]; do
	n=$((VOL_BYTES / 1048576 - off))
	[ "$n" -le "$RANDOM_MIB" ] || n=$RANDOM_MIB
	"$BIN/dd" if=/dev/vde of="$ORIGIN" bs=1M count="$n" seek="$off" \
		iflag=direct oflag=direct status=none
	off=$((off + n))
done
say "filled the volume in $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print b - a }') s"
snapshot "$S1"

# NR_CHANGED distinct blocks: "FIRST COUNT" ranges, one a line.
if [ "$PATTERN" = clustered ]; then
	awk -v n="$NR_BLOCKS" -v k="$NR_CHANGED" 'BEGIN {
		for (i = 0; i < 4; i++) {
			len = int(k / 4) + (i == 3 ? k % 4 : 0)
			print int((2 * i + 1) * n / 8 - len / 2), len
		}
	}'
else
	awk -v n="$NR_BLOCKS" -v k="$NR_CHANGED" -v seed="$SEED" 'BEGIN {
		srand(seed)
		while (c < k) { b = int(rand() * n); if (!(b in s)) { s[b] = 1; c++; print b, 1 } }
	}'
fi > "$DMT_TMP/changed"
while read -r b n; do
	[ "$n" -gt 0 ] || continue
	"$BIN/dd" if=/dev/urandom of="$ORIGIN" bs=$BLOCK_BYTES count="$n" seek="$b" \
		iflag=fullblock oflag=direct conv=notrunc status=none
done < "$DMT_TMP/changed"
say "changed $(awk '{ s += $2 } END { print s }' "$DMT_TMP/changed") blocks in $(wc -l < "$DMT_TMP/changed") ranges"
snapshot "$S2"
origin_done
say "source: $(src_status)"
# shellcheck disable=SC2046 # words
dmrepl delta $(delta_args) > "$DMT_TMP/delta" 2>&1 ||
	{ cat "$DMT_TMP/delta" >&2; dmt_fail "dmrepl delta failed"; }
say "delta S1 -> S2: $(wc -l < "$DMT_TMP/delta") lines"

# ---------------------------------------------------------------- a: full

DDID=100
case $PAIRS in *full*) ;; *) RUNS_FULL=0 ;; esac
for r in $(seq 1 "${RUNS_FULL:-$RUNS}"); do
	if [ $((r % 2)) = 1 ]; then order="dmrepl dd"; else order="dd dmrepl"; fi
	for c in $order; do
		if [ "$c" = dmrepl ]; then
			rm -rf "$DMT_TMP/state-a"
			mkdir -p "$DMT_TMP/state-a"
			# shellcheck disable=SC2086 # FULL_ARGS: words
			replicate full dmrepl "$r" "$DMT_TMP/state-a" --snap "$S1" --full $FULL_ARGS
			id=$(cat "$DMT_TMP/replica")
			[ "$r" = 1 ] && check_replica "$S1" "$id"
			replica_drop "$id"
		else
			thin_new "$DDID" ddthin
			timed full dd-sparse "$r" "$BIN/dd" if="$(snap_dev "$S1")" of="$(dd_target)" \
				bs=1M conv=sparse iflag=direct oflag=direct
			thin_drop "$DDID" ddthin
		fi
	done
done

# ---------------------------------------------------------------- b: incremental

mkdir -p "$DMT_TMP/state-base"
# shellcheck disable=SC2086 # FULL_ARGS: words
replicate base dmrepl 0 "$DMT_TMP/state-base" --snap "$S1" $FULL_ARGS
base_id=$(cat "$DMT_TMP/replica")
for r in $(seq 1 "$RUNS"); do
	if [ $((r % 2)) = 1 ]; then order="dmrepl dd"; else order="dd dmrepl"; fi
	for c in $order; do
		if [ "$c" = dmrepl ]; then
			rm -rf "$DMT_TMP/state-b"
			cp -a "$DMT_TMP/state-base" "$DMT_TMP/state-b"
			replicate incr dmrepl "$r" "$DMT_TMP/state-b" --snap "$S2" --base "$S1"
			id=$(cat "$DMT_TMP/replica")
			[ "$id" != "$base_id" ] || dmt_fail "the incremental named the base replica $id"
			[ "$r" = 1 ] && check_replica "$S2" "$id"
			replica_drop "$id"
		else
			thin_new "$DDID" ddthin
			timed incr dd-full "$r" "$BIN/dd" if="$(snap_dev "$S2")" of="$(dd_target)" \
				bs=1M iflag=direct oflag=direct
			thin_drop "$DDID" ddthin
		fi
	done
done
# ---------------------------------------------------------------- c: fio

FIO_BYTES=$((64 * 1048576))
# fio_run PATTERN ROUND: time fio reading S2 while writing fiodst.
fio_run() {
	if [ "$1" = rand ]; then _rw=rand _bs=64k; else _rw= _bs=1M; fi
	drop
	"$BIN/fio" --output-format=json --direct=1 --ioengine=io_uring --iodepth=32 \
		--bs=$_bs --size="$VOL_BYTES" --io_size=$FIO_BYTES --randrepeat=0 \
		--name=read --filename="$(snap_dev "$S2")" --rw=${_rw}read \
		--name=write --filename="$(dmt_dev fiodst)" --rw=${_rw}write > "$DMT_TMP/fio" 2>&1 ||
		{ cat "$DMT_TMP/fio" >&2; dmt_fail "fio failed"; }
	_ms=$(sed -n 's/.*"job_runtime" : \([0-9]*\).*/\1/p' "$DMT_TMP/fio" | sort -n | tail -n 1)
	say "FIO $1 $2 $(awk -v m="$_ms" 'BEGIN { printf "%.3f", m / 1000 }') $FIO_BYTES"
}
if [ -x "$BIN/fio" ] && [ "$LVM" = 1 ]; then
	say "fio: not run over LVM pools (raw mode only)"
elif [ -x "$BIN/fio" ]; then
	for r in $(seq 1 "$RUNS"); do
		for p in rand seq; do
			dmt_message dst "create_snap $DDID $base_id"
			dmt_create fiodst "0 $VOL_SECTORS thin $(dmt_dev dst) $DDID"
			fio_run "$p" "$r"
			thin_drop "$DDID" fiodst
		done
	done
fi

replica_drop "$base_id"
say "destination: $(dst_status)"
# Everything was deleted: no data block may still be in use.
dmt_assert_eq 0 "$(dst_used)" "the destination pool's data blocks are all free at the end"
snaps_done
say "done"
