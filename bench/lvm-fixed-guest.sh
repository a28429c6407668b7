#!/bin/sh
# dmrepl-timeout: 1800
# Guest side of bench/lvm-fixed.sh: the fixed cost of an incremental
# replication by LVM names against the raw-pool path, in one VM session.
# GNU time is on PATH (--bin /usr/bin/time).
#
# Three sources of the same shape (a 64 MiB thin volume with 16 MiB of
# random data, 64 KiB blocks) and three ways, each seeded with a full
# replication, then RUNS rounds; each round rewrites one 64 KiB block of
# each volume, snapshots it, and times one incremental of each way
# (caches dropped before each; the order rotates):
#   raw       dmrepl replicate --pool RAWSRC --snap ID --size 64M --to-pool RAWDST
#             (the snapshot by dmrepl snapshot, ids throughout)
#   names     dmrepl replicate --snap VG/LV --to-pool RAWDST2
#             (an LVM snapshot, by its name; into a raw pool)
#   lvm       dmrepl replicate --snap VG/LV --to-pool VG2/POOL
#             (by names, into a pool LVM manages: the replica an LV)
# lvm2 runs through a shim ($DMREPL_LVM) that logs each call's subcommand
# and wall time, so each way's time splits into lvm's calls and the rest;
# dmrepl -vv logs how long each phase of the replication took.
# Prints "lbench: RESULT way round secs peak_rss_kib lvm_calls lvm_secs",
# "lbench: CALL way round subcommand secs" and "lbench: PHASE way round
# phase secs" lines for the host.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require dmrepl lvm time sha256sum awk

RUNS=5
STATE=$DMT_TMP/state
VOL_SECTORS=131072
say() { echo "lbench: $*"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# The lvm shim: one line per call, "SUBCOMMAND SECONDS".
LVM_REAL=$(command -v lvm)
cat > "$DMT_TMP/lvm" <<EOF
#!/bin/sh
t=\$(cut -d' ' -f1 /proc/uptime)
"$LVM_REAL" "\$@"
rc=\$?
echo "\$1 \$(awk -v a="\$t" -v b="\$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }')" >> "$DMT_TMP/lvm.log"
exit \$rc
EOF
chmod +x "$DMT_TMP/lvm"

# The sources and destinations.
dmt_vg a 200
dmt_vg b 200
A=$(dmt_name a)
B=$(dmt_name b)
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 64M -T "$A/pool" -n vol
dmt_lvm lvcreate -qq -y -V 64M -T "$A/pool" -n vol2
dmt_pool rs "$(dmt_loop rs-meta 8)" "$(dmt_loop rs-data 160)" 128
dmt_pool rd "$(dmt_loop rd-meta 8)" "$(dmt_loop rd-data 160)" 128
dmt_pool rd2 "$(dmt_loop rd2-meta 8)" "$(dmt_loop rd2-data 160)" 128
dmt_thin rs rvol 1 "$VOL_SECTORS"
RS=$(dmt_name rs) RD=$(dmt_name rd) RD2=$(dmt_name rd2)
vol=/dev/mapper/$(dmt_lv_dm a vol)
vol2=/dev/mapper/$(dmt_lv_dm a vol2)
rvol=$(dmt_dev rvol)
for d in "$vol" "$vol2" "$rvol"; do
	dd if=/dev/urandom of="$d" bs=1M count=16 oflag=direct 2>/dev/null
done

# timed WAY ROUND ARGS...: dmrepl replicate ARGS under GNU time.
timed() {
	_way=$1 _round=$2
	shift 2
	drop
	: > "$DMT_TMP/lvm.log"
	echo "+ dmrepl replicate $*" >&2
	DMREPL_LVM=$DMT_TMP/lvm time -f '%e %M' -o "$DMT_TMP/time" \
		dmrepl -vv replicate --state-dir "$STATE" -q --json "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" ||
		{ cat "$DMT_TMP/err" >&2; dmt_fail "$_way: dmrepl replicate $* failed"; }
	grep -q '"full":false' "$DMT_TMP/out" || dmt_fail "$_way: not an incremental: $(tail -n 1 "$DMT_TMP/out")"
	_n=$(wc -l < "$DMT_TMP/lvm.log" | tr -d ' ')
	_s=$(awk '{ s += $2 } END { printf "%.2f", s }' "$DMT_TMP/lvm.log")
	say "RESULT $_way $_round $(tail -n 1 "$DMT_TMP/time") $_n $_s"
	awk -v w="$_way" -v r="$_round" '{ print "lbench: CALL", w, r, $1, $2 }' "$DMT_TMP/lvm.log"
	# dmrepl's own phases (-vv): "replicate: phase NAME took MS ms"
	# and "other": the rest of the wall time (start-up, the tool's name
	# lookups before the job starts, exit)
	sed -n 's/.*replicate: phase \([a-z]*\) took \([0-9.]*\) ms.*/\1 \2/p' "$DMT_TMP/err" |
		awk -v w="$_way" -v r="$_round" -v t="$(cut -d' ' -f1 "$DMT_TMP/time")" \
			'{ print "lbench: PHASE", w, r, $1, $2 / 1000; s += $2 / 1000 }
			 END { printf "lbench: PHASE %s %s other %.3f\n", w, r, t - s }'
	grep -q 'replicate: phase commit took' "$DMT_TMP/err" || dmt_fail "$_way: no phase times in dmrepl's debug log"
}

snap_raw() { dmrepl snapshot --pool "$RS" --origin 1; }
touch_block() { dd if=/dev/urandom of="$1" bs=64K count=1 seek=$(( $2 * 37 % 256 )) oflag=direct conv=notrunc 2>/dev/null; }

# Seeds: a full replication each way.
R0=$(snap_raw)
dmt_run dmrepl replicate --state-dir "$STATE" -q --pool "$RS" --snap "$R0" --size 64M --to-pool "$RD"
dmt_lvm lvcreate -qq -y -s -n n0 "$A/vol"
dmt_run dmrepl replicate --state-dir "$STATE" -q --snap "$A/n0" --to-pool "$RD2"
dmt_lvm lvcreate -qq -y -s -n l0 "$A/vol2"
dmt_run dmrepl replicate --state-dir "$STATE" -q --snap "$A/l0" --to-pool "$B/pool"

i=1
while [ "$i" -le "$RUNS" ]; do
	touch_block "$rvol" "$i"
	touch_block "$vol" "$i"
	touch_block "$vol2" "$i"
	RI=$(snap_raw)
	dmt_lvm lvcreate -qq -y -s -n "n$i" "$A/vol"
	dmt_lvm lvcreate -qq -y -s -n "l$i" "$A/vol2"
	for w in $(echo "raw names lvm raw names" | cut -d' ' -f$(( (i - 1) % 3 + 1 ))-$(( (i - 1) % 3 + 3 ))); do
		case $w in
		raw) timed raw "$i" --pool "$RS" --snap "$RI" --size 64M --to-pool "$RD" ;;
		names) timed names "$i" --snap "$A/n$i" --to-pool "$RD2" ;;
		lvm) timed lvm "$i" --snap "$A/l$i" --to-pool "$B/pool" ;;
		esac
	done
	i=$((i + 1))
done
# the last LVM replica is exact
dmt_assert_eq "$(dmt_lv_sha a "l$RUNS")" "$(dmt_lv_sha b "l$RUNS")" "the last replica by names into LVM is exact"
dmt_lvm_invariant b pool "after the benchmark"
say done
