#!/bin/sh
# dmrepl-timeout: 7200
# Guest side of bench/migrate.sh: dmrepl migrate of a volume under a
# writer, in the test VM (tests/vm/run --disk ...), with GNU time and dd,
# dmrepl and seq-writer on PATH. The disks, in order:
#   /dev/vda  the source VG's PV        /dev/vdb  the destination VG's PV
#   /dev/vdc  random data, written over the volume (repeated when smaller)
# For each size in SIZES (GiB): a thin LV of that size, written in full
# (mapped fully, non-zero data), then RUNS times: seq-writer load writes
# 64 KiB at random offsets of it at RATE_KIB KiB/s, and after 1 s
# `dmrepl migrate --from SV/vol --to-pool DV/pool` runs (default converge),
# its switch command stopping the writer. Then the destination's volume
# and the last round's pair are removed, and the next run starts from the
# same volume. Last, once per size, a full dd of the volume (bs=1M,
# O_DIRECT both sides) into a new thin LV of the destination: what an
# offline dd migration keeps the volume out of service for.
# Prints "mbench: RESULT size run exit suspended_ms total_bytes rounds secs
# written_bytes peak_rss_kib", "mbench: PARTS size run ..." (what the
# suspended time went to, as migrate logs it) and "mbench: DD size secs
# peak_rss_kib". LOG=debug adds migrate's debug lines from suspend to
# resume (DEBUG).
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require dmrepl lvm seq-writer blockdev awk
BIN=/opt/dmrepl/bin
{ [ -x "$BIN/time" ] && [ -x "$BIN/dd" ]; } || dmt_skip "GNU time and dd are not in $BIN (run bench/migrate.sh)"
for d in vda vdb vdc; do
	[ -b /dev/$d ] || dmt_fail "/dev/$d is missing: run through bench/migrate.sh"
done

SIZES="1 4 16"
RUNS=5
RATE_KIB=4096
LOG=info
STATE=$DMT_TMP/state
RANDOM_MIB=$(($(blockdev --getsize64 /dev/vdc) / 1048576))
say() { echo "mbench: $*"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

SV=$(dmt_name mbsrc) DV=$(dmt_name mbdst)
dmt_lvm pvcreate -qq -y /dev/vda /dev/vdb
dmt_lvm vgcreate -qq "$SV" /dev/vda
dmt_lvm vgcreate -qq "$DV" /dev/vdb
echo "$SV" >> "$DMT_TMP/.vgs"
echo "$DV" >> "$DMT_TMP/.vgs"
dmt_lvm lvcreate -qq -y --type thin-pool --chunksize 64k -Zn -l 95%VG -n pool "$SV"
dmt_lvm lvcreate -qq -y --type thin-pool --chunksize 64k -Zn -l 95%VG -n pool "$DV"
dm_of() { echo "/dev/mapper/$(echo "$1" | sed 's/-/--/g')-$(echo "$2" | sed 's/-/--/g')"; }
# every LV of VG but the pool and KEEP
clear_vg() {
	for lv in $(lvm lvs --noheadings -o lv_name "$1" < /dev/null | tr -d ' '); do
		case $lv in pool|"$2"|\[*) ;; *) dmt_lvm lvremove -qq -y "$1/$lv" ;; esac
	done
}

say "kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ { print $2 }' /proc/meminfo) KiB"
say "lvm $(lvm version < /dev/null | sed -n 's/^ *LVM version: *\([^ ]*\).*/\1/p'); writer $RATE_KIB KiB/s of 64 KiB random writes; $RUNS runs per size"
for size in $SIZES; do
	mib=$((size * 1024))
	dmt_lvm lvcreate -qq -y -V "${mib}M" -T "$SV/pool" -n vol
	VOL=$(dm_of "$SV" vol)
	t0=$(now)
	off=0
	while [ "$off" -lt "$mib" ]; do
		n=$((mib - off))
		[ "$n" -le "$RANDOM_MIB" ] || n=$RANDOM_MIB
		"$BIN/dd" if=/dev/vdc of="$VOL" bs=1M count="$n" seek="$off" iflag=direct \
			oflag=direct status=none
		off=$((off + n))
	done
	say "filled $size GiB in $(since "$t0") s"
	run=1
	while [ "$run" -le "$RUNS" ]; do
		drop
		seq-writer load "$VOL" "$RATE_KIB" 64 > "$DMT_TMP/writer" &
		writer=$!
		sleep 1
		echo "+ dmrepl migrate --from $SV/vol --to-pool $DV/pool (size $size, run $run)" >&2
		rc=0
		DMREPL_LOG=$LOG "$BIN/time" -f '%e %M' -o "$DMT_TMP/time" dmrepl migrate --state-dir "$STATE" --json -q \
			--from "$SV/vol" --to-pool "$DV/pool" --switch-cmd "kill $writer" \
			> "$DMT_TMP/out" 2> "$DMT_TMP/err" || rc=$?
		grep -v '^dmrepl: debug' "$DMT_TMP/err" >&2 || :
		# the suspended time's parts (migrate logs them at info)
		sed -n "s/.*: suspended \([0-9]*\) ms: /mbench: PARTS $size $run \1 ms: /p
			s/.*: the last changes: /mbench: LAST $size $run /p" "$DMT_TMP/err"
		[ "$LOG" != debug ] || sed -n '/dm suspend/,/: suspended [0-9]* ms/p' "$DMT_TMP/err" | sed 's/^/mbench: DEBUG /'
		kill "$writer" 2>/dev/null || :
		wait "$writer" || :
		res=$(tail -n 1 "$DMT_TMP/out")
		echo "$res" >&2
		get() { echo "$res" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }
		written=$(sed -n 's/^written //p' "$DMT_TMP/writer")
		rounds=$(echo "$res" | grep -o '"round":' | wc -l)
		secs=$(awk '{ print $1 }' "$DMT_TMP/time" | tail -n 1)
		rss=$(awk '{ print $2 }' "$DMT_TMP/time" | tail -n 1)
		say "RESULT $size $run $rc $(get suspended_ms) $(get total_bytes) $rounds $secs ${written:-0} $rss"
		echo "$res" | sed 's/^/mbench: JSON /'
		[ "$rc" = 0 ] || [ "$rc" = 3 ] || dmt_fail "migrate failed (exit $rc)"
		clear_vg "$DV" ""
		clear_vg "$SV" vol
		run=$((run + 1))
	done
	# the offline way: the whole volume with dd, into a new thin LV
	# (not when profiling: LOG=debug)
	if [ "$LOG" = debug ]; then
		dmt_lvm lvremove -qq -y "$SV/vol"
		continue
	fi
	dmt_lvm lvcreate -qq -y -V "${mib}M" -T "$DV/pool" -n copy
	drop
	"$BIN/time" -f '%e %M' -o "$DMT_TMP/time" "$BIN/dd" if="$VOL" of="$(dm_of "$DV" copy)" \
		bs=1M iflag=direct oflag=direct status=none || dmt_fail "dd"
	say "DD $size $(tail -n 1 "$DMT_TMP/time")"
	dmt_lvm lvremove -qq -y "$DV/copy" "$SV/vol"
done
say done
