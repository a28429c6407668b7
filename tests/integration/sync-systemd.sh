#!/bin/sh
# dmrepl-timeout: 600
# Sync jobs started by the real systemd and systemd-udevd (the rootfs
# guest, with the project installed by make install):
# - trigger = snapshot: an lvcreate -s of the configured origin makes the
#   installed udev rule start dmrepl-sync@JOB.service, and the replica of
#   that snapshot appears in the destination VG, exact (sha256); the time
#   from lvcreate -s to the committed replica is printed ("latency");
# - schedule: the generator enables the job's timer on daemon-reload, and
#   the timer runs the job;
# - two snapshots in a row: one run at a time (the unit and the job's
#   lock), and the newest is replicated;
# - a failing destination: the unit fails with a clear message in the
#   journal; fixed, the next trigger recovers;
# - trigger = device:DMNAME: creating that device starts the job, which
#   snapshots the origin and replicates it;
# - after every step the kernel's thin ids equal lvs' thin_ids.
# Elsewhere (host mode, the busybox guest) it skips.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

[ "${DMREPL_GUEST:-}" = rootfs ] ||
	dmt_skip "only runs in the rootfs guest (tests/vm/run --mode rootfs)"
dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl systemctl udevadm journalctl sha256sum

for f in dmrepl-sync@.service dmrepl-sync@.timer; do
	systemctl cat "${f%@*}@x.${f#*.}" > /dev/null 2>&1 || dmt_fail "$f is not installed"
done
[ -n "$(ls /lib/udev/rules.d/70-dmrepl.rules /usr/lib/udev/rules.d/70-dmrepl.rules 2>/dev/null)" ] ||
	dmt_fail "the udev rule is not installed"

dmt_vg src 200
dmt_vg dst 200
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 120M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 160M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 32M -T "$A/pool" -n vol
vol=/dev/$A/vol
dd if=/dev/urandom of="$vol" bs=1M count=4 conv=fsync 2>/dev/null

after() {
	dmt_lvm_invariant src pool "after $1 (source)"
	dmt_lvm_invariant dst pool "after $1 (destination)"
}
# replica_of SNAP: the LV in $B that replicates $A/SNAP (the job's tag), or "".
replica_of() {
	lvm lvs --noheadings --separator ' ' -o lv_name,lv_tags "$B" < /dev/null |
		awk -v s="$1" -v t="dmrepl.sync:$2" '{ n = split($2, tags, ",")
			for (i = 1; i <= n; i++) if (tags[i] == t && ($1 == s || index($1, s ".") == 1)) print $1 }'
}
# wait_replica SNAP JOB SECS: until SNAP's replica appears; its name.
wait_replica() {
	_i=0
	while [ -z "$(replica_of "$1" "$2")" ]; do
		_i=$((_i + 1))
		[ "$_i" -le $(($3 * 5)) ] || {
			journalctl -u "dmrepl-sync@$2.service" --no-pager -n 30 >&2 || :
			dmt_fail "no replica of $A/$1 in $B after $3 s"
		}
		sleep 0.2
	done
	replica_of "$1" "$2"
}
same() {
	dmt_assert_eq "$(dmt_lv_sha src "$1")" "$(dmt_lv_sha dst "$2")" "$B/$2 equals $A/$1"
}

# (the guest is thrown away after the run: /etc/dmrepl goes with it)
mkdir -p /etc/dmrepl/jobs.d
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\ntrigger = snapshot\n' "$A" "$B" \
	> /etc/dmrepl/jobs.d/onsnap.conf
dmrepl sync --check-config || dmt_fail "the configuration is refused"
udevadm control --reload

echo "## 1. lvcreate -s starts the job through udev and systemd"
t0=$(dmt_now)
dmt_lvm lvcreate -qq -y -s -n s1 "$A/vol"
R1=$(wait_replica s1 onsnap 60)
t1=$(dmt_now)
echo "latency: lvcreate -s to a committed replica: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
same s1 "$R1"
journalctl -u dmrepl-sync@onsnap.service --no-pager -n 5 >&2 || :
after "the first triggered run"

echo "## 2. two snapshots in a row: one run at a time, the newest replicated"
dd if=/dev/urandom of="$vol" bs=1M count=1 seek=8 conv=fsync,notrunc 2>/dev/null
dmt_lvm lvcreate -qq -y -s -n s2 "$A/vol"
dd if=/dev/urandom of="$vol" bs=1M count=1 seek=12 conv=fsync,notrunc 2>/dev/null
dmt_lvm lvcreate -qq -y -s -n s3 "$A/vol"
R3=$(wait_replica s3 onsnap 90)
same s3 "$R3"
# the job's lock makes any second run wait: the journal says so if it did
journalctl -u dmrepl-sync@onsnap.service --no-pager >&2 || :
# one run at a time: no "Starting" between a "Starting" and its end
journalctl -u dmrepl-sync@onsnap.service --no-pager -o cat |
	awk '/^Starting / { if (on) bad = 1; on = 1; n++ }
	     /^Finished |Deactivated successfully|Failed with result/ { on = 0 }
	     END { if (bad || n < 2) exit 1 }' ||
	dmt_fail "two runs of the job overlapped, or fewer than two ran (journal above)"
after "two triggers at once"

echo "## 3. a failing destination, then fixed"
printf '[job]\norigin = %s/vol\nto_pool = %s/nopool\ntrigger = snapshot\n' "$A" "$B" \
	> /etc/dmrepl/jobs.d/onsnap.conf
systemctl reset-failed 'dmrepl-sync@*' 2>/dev/null || :
dmt_lvm lvcreate -qq -y -s -n s4 "$A/vol"
i=0
until [ "$(systemctl is-failed dmrepl-sync@onsnap.service || :)" = failed ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || dmt_fail "the unit did not fail on a missing destination"
	sleep 0.2
done
journalctl -u dmrepl-sync@onsnap.service --no-pager > "$DMT_TMP/journal" || :
dmt_assert_match "*$B/nopool*" "$(cat "$DMT_TMP/journal")" "the journal names the missing destination"
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\ntrigger = snapshot\n' "$A" "$B" \
	> /etc/dmrepl/jobs.d/onsnap.conf
dd if=/dev/urandom of="$vol" bs=1M count=1 seek=4 conv=fsync,notrunc 2>/dev/null
dmt_lvm lvcreate -qq -y -s -n s5 "$A/vol"
R5=$(wait_replica s5 onsnap 60)
same s5 "$R5"
after "the recovery"
rm /etc/dmrepl/jobs.d/onsnap.conf

echo "## 4. the timer path"
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\nschedule = *:*:0/10\nkeep = 2\n' "$A" "$B" \
	> /etc/dmrepl/jobs.d/timed.conf
systemctl daemon-reload
# enabled by the generator (as at boot); a reload starts nothing new
state=$(systemctl is-enabled dmrepl-sync@timed.timer || :)
case $state in
generated|enabled-runtime) echo "the generator enabled the job's timer ($state)" ;;
*) dmt_fail "the generator did not enable the job's timer: is-enabled says $state" ;;
esac
systemctl start dmrepl-sync@timed.timer
dmt_assert_eq active "$(systemctl is-active dmrepl-sync@timed.timer || :)" "the timer runs"
systemctl cat dmrepl-sync@timed.timer | grep -q '^OnCalendar=\*:\*:0/10$' ||
	dmt_fail "the timer is not on the job's schedule"
i=0
until [ -n "$(lvm lvs --noheadings --separator ' ' -o lv_name,lv_tags "$B" < /dev/null |
	awk '{ n = split($2, t, ","); for (i = 1; i <= n; i++) if (t[i] == "dmrepl.sync:timed") print $1 }')" ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || { journalctl -u dmrepl-sync@timed.service --no-pager >&2 || :; dmt_fail "the timer did not run the job in 60 s"; }
	sleep 0.2
done
systemctl stop dmrepl-sync@timed.timer
rm /etc/dmrepl/jobs.d/timed.conf
systemctl daemon-reload
# a run the timer may have started: let it end before the VGs go
i=0
while [ "$(systemctl is-active dmrepl-sync@timed.service || :)" = activating ] && [ $i -lt 300 ]; do
	sleep 0.2; i=$((i + 1))
done
after "the timer's run"

echo "## 5. trigger = device:DMNAME: the device's activation starts the job"
TRIG=$(dmt_name trig)
printf '[job]\norigin = %s/vol\nto_pool = %s/pool\ntrigger = device:%s\nkeep = 2\n' "$A" "$B" "$TRIG" \
	> /etc/dmrepl/jobs.d/ondev.conf
dmrepl sync --check-config || dmt_fail "the configuration is refused"
dd if=/dev/urandom of="$vol" bs=1M count=1 seek=6 conv=fsync,notrunc 2>/dev/null
dmt_create trig "0 8 zero"
i=0
until [ -n "$(lvm lvs --noheadings --separator ' ' -o lv_name,lv_tags "$B" < /dev/null |
	awk '{ n = split($2, t, ","); for (i = 1; i <= n; i++) if (t[i] == "dmrepl.sync:ondev") print $1 }')" ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || { journalctl -u dmrepl-sync@ondev.service --no-pager >&2 || :; dmt_fail "the device's activation did not run the job in 60 s"; }
	sleep 0.2
done
# the job took its own snapshot (tagged) and replicated it, exact
S=$(lvm lvs --noheadings --separator ' ' -o lv_name,lv_tags "$A" < /dev/null |
	awk '{ n = split($2, t, ","); for (i = 1; i <= n; i++) if (t[i] == "dmrepl.sync:ondev") print $1 }')
[ -n "$S" ] || dmt_fail "the device-triggered run made no snapshot of $A/vol"
i=0
while [ "$(systemctl is-active dmrepl-sync@ondev.service || :)" = activating ] && [ $i -lt 300 ]; do
	sleep 0.2; i=$((i + 1))
done
same "$S" "$(replica_of "$S" ondev)"
dmt_remove trig
rm /etc/dmrepl/jobs.d/ondev.conf
after "the device-triggered run"
