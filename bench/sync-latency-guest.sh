#!/bin/sh
# dmrepl-timeout: 1500
# Guest side of bench/sync-latency.sh, in the Debian guest with systemd
# (tests/vm/run --mode rootfs, the project installed): how long from
# `lvcreate -s` of a configured origin to its committed replica, through
# the real udev rule and systemd unit, less the copy.
#
# A 64 MiB thin LV with 16 MiB of random data in VG a; job "lat" with
# trigger = snapshot replicates each new snapshot of it into VG b's pool
# (keep 3). The unit runs with DMREPL_LOG=debug (the phases' times in
# the journal) and lvm through a shim that logs each call. Each round
# rewrites one 64 KiB block, then times:
#   total     lvcreate -s started .. dmrepl sync exited (the replica
#             committed and the retention done)
#   lvcreate  the lvcreate -s itself
#   trigger   lvcreate -s returned .. the unit's process started (udev's
#             rule, systemd's start)
#   run       the unit's process, start to exit
#   copy      its replication's copy phase (the journal's debug line)
#   lvm       the calls to lvm the run made, and their time
# Prints "lbench: RESULT round total lvcreate trigger run copy lvm_calls
# lvm_secs" (seconds), then "lbench: CALLS round call secs ..." per call.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require dmrepl lvm systemctl journalctl udevadm awk

RUNS=5
JOB=lat
UNIT=dmrepl-sync@$JOB.service
say() { echo "lbench: $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
# mono PROP: a monotonic timestamp of the unit, in seconds since boot
mono() { systemctl show -p "$1" --value "$UNIT" | awk '{ printf "%.2f", $1 / 1e6 }'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

[ "${DMREPL_GUEST:-}" = rootfs ] || dmt_skip "needs the rootfs guest (systemd, udev)"
systemctl cat dmrepl-sync@x.service > /dev/null 2>&1 || dmt_fail "the project is not installed"

# lvm through a shim: each call and its time, in /opt/lbench/lvm.log
mkdir -p /opt/lbench
LVM_REAL=$(command -v lvm)
cat > /opt/lbench/lvm <<EOS
#!/bin/sh
t=\$(cut -d' ' -f1 /proc/uptime)
"$LVM_REAL" "\$@"
rc=\$?
echo "\$1 \$(awk -v a="\$t" -v b="\$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }')" >> /opt/lbench/lvm.log
exit \$rc
EOS
chmod +x /opt/lbench/lvm

dmt_vg a 200
dmt_vg b 200
A=$(dmt_name a)
B=$(dmt_name b)
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 64M -T "$A/pool" -n vol
vol=/dev/mapper/$(dmt_lv_dm a vol)
dd if=/dev/urandom of="$vol" bs=1M count=16 oflag=direct 2>/dev/null

mkdir -p /etc/dmrepl/jobs.d "/etc/systemd/system/$UNIT.d"
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\ntrigger = snapshot\nkeep = 3\n' "$A" "$B" \
	> "/etc/dmrepl/jobs.d/$JOB.conf"
printf '[Service]\nEnvironment=DMREPL_LVM=/opt/lbench/lvm DMREPL_LOG=debug\n' \
	> "/etc/systemd/system/$UNIT.d/lbench.conf"
systemctl daemon-reload
dmrepl sync --check-config > /dev/null || dmt_fail "the job's configuration"
udevadm settle

# wait_run OLD: until the unit's process exited after OLD (its
# ExecMainExitTimestampMonotonic) and the unit is inactive again.
wait_run() {
	_i=0
	while :; do
		_e=$(systemctl show -p ExecMainExitTimestampMonotonic --value "$UNIT")
		_s=$(systemctl show -p ActiveState --value "$UNIT")
		if [ "$_e" != "$1" ] && [ "$_s" != activating ] && [ "$_s" != active ]; then
			break
		fi
		_i=$((_i + 1))
		[ "$_i" -le 1200 ] || { journalctl -u "$UNIT" --no-pager -n 40 >&2; dmt_fail "no run of $UNIT"; }
		sleep 0.05
	done
	[ "$(systemctl show -p Result --value "$UNIT")" = success ] ||
		{ journalctl -u "$UNIT" --no-pager -n 40 >&2; dmt_fail "$UNIT failed"; }
}
has_replica() {
	lvm lvs --noheadings -o lv_name,lv_tags "$B" < /dev/null |
		awk -v n="$1" -v t="dmrepl.sync:$JOB" '$1 == n && index($2, t) { f = 1 } END { exit !f }'
}

# round 0: the full copy (not timed)
old=$(systemctl show -p ExecMainExitTimestampMonotonic --value "$UNIT")
dmt_lvm lvcreate -qq -y -s -n s0 "$A/vol"
wait_run "$old"
has_replica s0 || dmt_fail "no replica of s0 in $B"

i=1
while [ "$i" -le "$RUNS" ]; do
	dd if=/dev/urandom of="$vol" bs=64K count=1 seek=$(( i * 37 % 256 )) oflag=direct conv=notrunc 2>/dev/null
	sync
	sleep 2		# let the guest settle
	old=$(systemctl show -p ExecMainExitTimestampMonotonic --value "$UNIT")
	: > /opt/lbench/lvm.log
	cursor=$(journalctl -u "$UNIT" -n 0 --show-cursor --no-pager | sed -n 's/^-- cursor: //p')
	t0=$(now)
	lvm lvcreate -qq -y -s -n "s$i" "$A/vol" < /dev/null || dmt_fail "lvcreate -s s$i"
	t1=$(now)
	wait_run "$old"
	has_replica "s$i" || dmt_fail "no replica of s$i in $B"
	start=$(mono ExecMainStartTimestampMonotonic)
	exit=$(mono ExecMainExitTimestampMonotonic)
	copy=$(journalctl -u "$UNIT" --after-cursor "$cursor" --no-pager -o cat |
		sed -n 's/.*replicate: phase copy took \([0-9.]*\) ms.*/\1/p' | tail -n 1)
	copy=$(awk -v c="${copy:-0}" 'BEGIN { printf "%.2f", c / 1000 }')
	n=$(wc -l < /opt/lbench/lvm.log | tr -d ' ')
	s=$(awk '{ s += $2 } END { printf "%.2f", s }' /opt/lbench/lvm.log)
	say "RESULT $i $(sub "$exit" "$t0") $(sub "$t1" "$t0") $(sub "$start" "$t1") $(sub "$exit" "$start") $copy $n $s"
	say "CALLS $i $(tr '\n' ' ' < /opt/lbench/lvm.log)"
	i=$((i + 1))
done
dmt_lvm_invariant a pool "after the benchmark (source)"
dmt_lvm_invariant b pool "after the benchmark (destination)"
rm -rf "/etc/dmrepl/jobs.d/$JOB.conf" "/etc/systemd/system/$UNIT.d"
systemctl daemon-reload
say done
