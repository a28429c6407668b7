#!/bin/sh
# dmrepl-timeout: 1800
# Guest side of bench/sync.sh: what one run of a sync job costs, in one
# VM session, next to the floor of any snapshot-based job (one lvcreate -s
# and one lvs). GNU time is on PATH (--bin /usr/bin/time).
#
# A 64 MiB thin LV with 16 MiB of random data (64 KiB blocks) in VG a,
# synced into VG b's pool (LVM manages both) with a first, full run;
# then RUNS rounds, each timing, caches dropped before each:
#   unchanged  dmrepl sync --from a/vol --to-pool b/pool --keep 3, nothing
#              written since the last run
#   changed    the same after one 64 KiB block was rewritten
#   lvcreate   lvm lvcreate -s of the volume (then removed, untimed)
#   lvs        lvm lvs of one VG
# lvm runs through a shim ($DMREPL_LVM) that logs each call, so a run's
# time splits into lvm's calls and dmrepl's own work.
# Prints "sbench: RESULT way round secs peak_rss_kib lvm_calls lvm_secs".
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require dmrepl lvm time sha256sum awk

RUNS=5
STATE=$DMT_TMP/state
say() { echo "sbench: $*"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

LVM_REAL=$(command -v lvm)
cat > "$DMT_TMP/lvm" <<EOS
#!/bin/sh
t=\$(cut -d' ' -f1 /proc/uptime)
"$LVM_REAL" "\$@"
rc=\$?
echo "\$1 \$(awk -v a="\$t" -v b="\$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }')" >> "$DMT_TMP/lvm.log"
exit \$rc
EOS
chmod +x "$DMT_TMP/lvm"

dmt_vg a 200
dmt_vg b 200
A=$(dmt_name a)
B=$(dmt_name b)
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 64M -T "$A/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm a vol)
dd if=/dev/urandom of="$vol" bs=1M count=16 oflag=direct 2>/dev/null

# timed WAY ROUND COMMAND...: under GNU time, lvm through the shim
timed() {
	_way=$1 _round=$2
	shift 2
	drop
	: > "$DMT_TMP/lvm.log"
	echo "+ $*" >&2
	DMREPL_LVM=$DMT_TMP/lvm time -f '%e %M' -o "$DMT_TMP/time" "$@" \
		> "$DMT_TMP/out" 2> "$DMT_TMP/err" ||
		{ cat "$DMT_TMP/out" "$DMT_TMP/err" >&2; dmt_fail "$_way: $* failed"; }
	_n=$(wc -l < "$DMT_TMP/lvm.log" | tr -d ' ')
	_s=$(awk '{ s += $2 } END { printf "%.2f", s }' "$DMT_TMP/lvm.log")
	say "RESULT $_way $_round $(tail -n 1 "$DMT_TMP/time") $_n $_s"
}
SYNC="dmrepl sync --from $A/vol --to-pool $B/pool --keep 3 --state-dir $STATE --json -q"

dmt_run $SYNC > /dev/null
i=1
while [ "$i" -le "$RUNS" ]; do
	sleep 1	# a new snapshot name each second
	timed unchanged "$i" $SYNC
	grep -q '"unchanged":true' "$DMT_TMP/out" || dmt_fail "unchanged: $(tail -n 1 "$DMT_TMP/out")"
	dd if=/dev/urandom of="$vol" bs=64K count=1 seek=$(( i * 37 % 256 )) oflag=direct conv=notrunc 2>/dev/null
	timed changed "$i" $SYNC
	grep -q '"full":false' "$DMT_TMP/out" || dmt_fail "changed: $(tail -n 1 "$DMT_TMP/out")"
	timed lvcreate "$i" lvm lvcreate -qq -y -s -n "floor$i" "$A/vol"
	lvm lvremove -qq -y "$A/floor$i" < /dev/null
	timed lvs "$i" lvm lvs "$A"
	i=$((i + 1))
done
dmt_lvm_invariant a pool "after the benchmark (source)"
dmt_lvm_invariant b pool "after the benchmark (destination)"
say done
