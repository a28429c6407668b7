#!/bin/sh
# dmrepl-timeout: 400
# The rootfs guest (tests/vm/run --mode rootfs) is what it claims to be: a
# Debian 12 host in miniature, not the busybox initramfs.
# - PID 1 is systemd; systemd-udevd and sshd run as units;
# - lvm2 syncs with udev (activation/udev_sync and udev_rules are 1), and
#   an lvcreate makes /dev/VG/LV and the /dev/mapper name as udev
#   symlinks, with no `dmsetup mknodes` and no DM_DISABLE_UDEV;
# - root logs in to localhost over ssh with the image's key (sshd, not
#   the tests' dropbear), and python3 runs;
# - the files of --install trees are in place; with tests/vm/rootfs-hook-check
#   among them, systemd runs its unit and udev applies its rule;
# - the thin-pool target loads, and on LVM thin pools
#   `dmrepl replicate --snap VG/LV --to-pool VG2/POOL` makes an exact
#   replica, after which the kernel's thin ids in both pools are the
#   thin_ids lvs -a shows.
# Elsewhere (host mode, the busybox guest) it skips.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

[ "${DMREPL_GUEST:-}" = rootfs ] ||
	dmt_skip "only runs in the rootfs guest (tests/vm/run --mode rootfs)"
dmt_require_target thin-pool thin
dmt_require lvm dmrepl thin_dump ssh python3 systemctl udevadm sha256sum

echo "+ PID 1 and the units" >&2
dmt_assert_eq systemd "$(cat /proc/1/comm)" "PID 1 is systemd"
for _u in systemd-udevd.service ssh.service systemd-journald.service; do
	dmt_assert_eq active "$(systemctl is-active "$_u" || :)" "$_u is active"
done
[ -S /run/udev/control ] || dmt_fail "no /run/udev/control: udevd does not listen"
dmt_assert_eq "" "${DM_DISABLE_UDEV:-}" "libdevmapper waits for udev (no DM_DISABLE_UDEV)"
dmt_assert_eq "udev_sync=1 udev_rules=1" \
	"$(lvm lvmconfig --type current activation/udev_sync activation/udev_rules < /dev/null | tr '\n' ' ' | sed 's/ $//')" \
	"lvm.conf: udev sync and udev rules are on"

echo "+ python3" >&2
dmt_assert_eq 42 "$(python3 -c 'import sys; print(6 * 7)')" "python3 runs"

echo "+ ssh root@localhost with the image's key" >&2
_out=$(ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=20 \
	root@localhost 'echo "$(id -u) $(cat /proc/1/comm)"' < /dev/null) ||
	dmt_fail "ssh root@localhost (key login to sshd) failed"
dmt_assert_eq "0 systemd" "$_out" "sshd let root in by key"

echo "+ LVM thin pools: nodes and links from udev" >&2
dmt_vg src 128
dmt_vg dst 128
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 96M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 96M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V 32M -T "$A/pool" -n vol
mapper=/dev/mapper/$(dmt_lv_dm src vol)
# lvcreate returned after udev had processed the device (udev sync):
# the links are there now, no settle, no mknodes.
[ -L "/dev/$A/vol" ] || dmt_fail "/dev/$A/vol is not a symlink (udev did not make it)"
[ -L "$mapper" ] || dmt_fail "$mapper is not a symlink: libdevmapper, not udev, made it"
dm=$(readlink -f "$mapper")
dmt_assert_eq "$dm" "$(readlink -f "/dev/$A/vol")" "/dev/VG/LV and /dev/mapper name the same dm node"
dmt_assert_match "*mapper/$(dmt_lv_dm src vol)*" "$(udevadm info --query=symlink --name="$dm")" \
	"udev's database has the /dev/mapper link of $dm"
dmt_assert_match "*$A/vol*" "$(udevadm info --query=symlink --name="$dm")" \
	"udev's database has the /dev/VG/LV link of $dm"

echo "+ dmrepl replicate --snap VG/LV --to-pool VG2/POOL" >&2
dd if=/dev/urandom of="$mapper" bs=64K count=128 oflag=direct conv=notrunc 2>/dev/null ||
	dmt_fail "cannot write $mapper"
dmt_lvm lvcreate -qq -y -s -n snap1 "$A/vol"
dmrepl replicate --state-dir "$DMT_TMP/state" --snap "$A/snap1" --to-pool "$B/pool" \
	> "$DMT_TMP/out" 2> "$DMT_TMP/err" || { cat "$DMT_TMP/out" "$DMT_TMP/err" >&2; dmt_fail "dmrepl replicate"; }
cat "$DMT_TMP/out" >&2
dmt_assert_match "*$B/snap1*" "$(cat "$DMT_TMP/out")" "the replica is named after its source"
dmt_assert_eq "$(dmt_lv_sha src snap1)" "$(dmt_lv_sha dst snap1)" "the replica equals its snapshot"
dmt_lvm_invariant src pool "after replicate (source)"
dmt_lvm_invariant dst pool "after replicate (destination)"
dmt_no_dmrepl_devices "after replicate"

echo "+ the --install hook" >&2
if [ -d /opt/dmrepl/install ]; then
	( cd /opt/dmrepl/install && find . ! -type d ) > "$DMT_TMP/installed"
	while read -r _f; do
		_f=${_f#.}
		if [ -L "/opt/dmrepl/install$_f" ]; then
			[ -L "$_f" ] || dmt_fail "$_f from --install is not in place"
		else
			cmp -s "/opt/dmrepl/install$_f" "$_f" || dmt_fail "$_f from --install is not in place"
		fi
	done < "$DMT_TMP/installed"
	echo "+ $(wc -l < "$DMT_TMP/installed") file(s) from --install are in place" >&2
fi
if [ -f /etc/udev/rules.d/99-dmrepl-hook-check.rules ]; then
	systemctl start dmrepl-hook-check.service ||
		dmt_fail "systemd does not know the installed unit (no daemon-reload?)"
	dmt_assert_eq installed "$(cat /run/dmrepl-hook-check)" "the installed unit ran"
	dmt_create hookcheck "0 2048 zero"
	[ -L "/dev/dmrepl-hook-check/$(dmt_name hookcheck)" ] ||
		dmt_fail "the installed udev rule did not act (no udevadm control --reload?)"
	dmt_remove hookcheck
else
	echo "+ (tests/vm/rootfs-hook-check not installed: the hook's reloads are not checked)" >&2
fi

echo "+ the rootfs guest behaves like a host" >&2
