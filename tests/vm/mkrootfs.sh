#!/bin/bash
# Build the Debian 12 root file system that the rootfs test VM boots.
#
# Usage: tests/vm/mkrootfs.sh [--cache DIR]                 build the image
#        tests/vm/mkrootfs.sh [--cache DIR] --kernel-dir KDIR
#                                                  build KDIR's boot parts
#        tests/vm/mkrootfs.sh --packages           print the package list
#
# The image: debootstrap --variant=minbase of bookworm with PACKAGES below,
# configured for the tests (see configure_root), written to a sparse raw
# ext4 image with mkfs.ext4 -d (no loop mount needed).  It is cached as
# DIR/rootfs/debian12-KEY.img, KEY a digest of the package list, this
# script and the mirror: a change to any of them builds a new image (older
# ones are removed), with the names of its shared libraries in IMAGE.libs.
# The .debs are kept in DIR/rootfs/debs for the next build.  Prints the
# image's path.  Needs root (debootstrap, chroot).
#
# The boot parts of a kernel (KDIR from fetch-kernel.sh): one image serves
# every kernel, so the kernel's modules come on a disk of their own,
#   DIR/rootfs/boot-KVER-KEY/modules.img   ext4 of lib/modules/KVER, which
#                                         the guest sees as /usr/lib/modules
#   DIR/rootfs/boot-KVER-KEY/initrd.cpio   busybox and the virtio modules:
#       finds the disks by their serial numbers (dmrepl-root, dmrepl-modules,
#       dmrepl-run), mounts the root, the modules on /usr/lib/modules and the
#       run disk on /opt/dmrepl, and switches to systemd
# Prints the directory.
#
# Environment: DMREPL_CACHE_DIR (default DIR, else <srcdir>/build/cache),
# DMREPL_DEBIAN_MIRROR (default: the bookworm URI of the host's apt sources).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

SUITE=bookworm
IMAGE_SIZE=3G
# What the image holds besides minbase: an init and udev as on a host, the
# device-mapper and LVM tools, an ssh server, python3, the tools the tests
# call (dropbear-bin for dmt_sshd, busybox for usleep, iproute2 for ip), and
# dmrepl's run-time libraries.
PACKAGES=(
	systemd systemd-sysv udev dbus
	lvm2 dmeventd dmsetup thin-provisioning-tools
	openssh-server openssh-client dropbear-bin
	python3
	util-linux kmod e2fsprogs procps iproute2 busybox less
	libdevmapper1.02.1 liburing2 libaio1 libjson-c5 libxxhash0 libzstd1 libudev1
	libinih1
)

die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*" >&2; }

cache="" kernel_dir="" stage=""

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

# mirror: the Debian archive the host's apt uses for bookworm.
mirror() {
	if [ -n "${DMREPL_DEBIAN_MIRROR:-}" ]; then
		echo "$DMREPL_DEBIAN_MIRROR"
		return
	fi
	local m
	m=$(awk '
		/^URIs:/ { uri = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "'$SUITE'") found = uri }
		/^$/ { uri = "" }
		END { print found }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
	[ -n "$m" ] || m=$(awk '$1 == "deb" && $3 == "'$SUITE'" { print $2; exit }' \
		/etc/apt/sources.list 2>/dev/null)
	echo "${m:-http://deb.debian.org/debian}"
}

# key: what the image is made of; a new key means a new image.
image_key() {
	{
		echo "$SUITE $IMAGE_SIZE $(mirror)"
		printf '%s\n' "${PACKAGES[@]}"
		cat "$0"
	} | sha256sum | cut -c1-16
}

# ---------------------------------------------------------------- image

# in_root CMD...: run CMD in the staged root.
in_root() { chroot "$stage" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }

bootstrap() {
	local debs="$cache/rootfs/debs"
	mkdir -p "$debs"
	note "debootstrap $SUITE from $(mirror) into $stage"
	# --cache-dir keeps the .debs for the next build; nice: it is heavy.
	nice -n 10 debootstrap --variant=minbase --components=main \
		--cache-dir="$debs" \
		--include="$(IFS=,; echo "${PACKAGES[*]}")" \
		"$SUITE" "$stage" "$(mirror)" > "$cache/rootfs/debootstrap.log" 2>&1 ||
		{ tail -n 30 "$cache/rootfs/debootstrap.log" >&2; die "debootstrap failed (log: $cache/rootfs/debootstrap.log)"; }
}

# configure_root: turn the bootstrapped tree into the test guest.
configure_root() {
	local r=$stage
	echo dmrepl-guest > "$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\tdmrepl-guest\n::1\tlocalhost ip6-localhost\n' > "$r/etc/hosts"
	# The root comes mounted read-write from the initrd; /tmp is a tmpfs,
	# as in the busybox guest (the tests' loop files live there).
	cat > "$r/etc/fstab" <<-'EOF'
	tmpfs /tmp tmpfs mode=1777,nosuid,nodev 0 0
	EOF
	mkdir -p "$r/opt/dmrepl" "$r/usr/lib/modules"
	# A fixed machine id: no first-boot setup on each run.
	in_root systemd-machine-id-setup > /dev/null 2>&1
	in_root passwd -d root > /dev/null
	ln -sf /usr/lib/systemd/system/multi-user.target "$r/etc/systemd/system/default.target"

	# Nothing on the consoles (the runner uses ttyS1, the kernel ttyS0),
	# and no periodic jobs that would run during the tests.
	local u
	for u in serial-getty@.service getty@.service getty-static.service \
		apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
		e2scrub_all.timer e2scrub_reap.service fstrim.timer \
		systemd-tmpfiles-clean.timer; do
		ln -sf /dev/null "$r/etc/systemd/system/$u"
	done
	mkdir -p "$r/etc/systemd/journald.conf.d"
	printf '[Journal]\nStorage=volatile\n' > "$r/etc/systemd/journald.conf.d/dmrepl.conf"

	# lvm2 as on a host: udev makes the nodes and links, lvm waits for it.
	grep -c '^activation {' "$r/etc/lvm/lvm.conf" | grep -qx 1 ||
		die "lvm.conf: expected one 'activation {' section"
	sed -i '/^activation {/a\
	# dmrepl test guest: udev creates the nodes, lvm waits for it\
	udev_sync = 1\
	udev_rules = 1' "$r/etc/lvm/lvm.conf"
	[ "$(grep -cE '^[[:space:]]*udev_(sync|rules) = 1$' "$r/etc/lvm/lvm.conf")" = 2 ] ||
		die "lvm.conf: udev_sync and udev_rules not set"

	# ssh: host keys made now (so every boot has the same), and a key
	# for root that logs in to localhost.
	rm -f "$r"/etc/ssh/ssh_host_*
	in_root ssh-keygen -A > /dev/null
	mkdir -p "$r/root/.ssh"
	chmod 700 "$r/root/.ssh"
	in_root ssh-keygen -q -t ed25519 -N '' -C root@dmrepl-guest -f /root/.ssh/id_ed25519
	cp "$r/root/.ssh/id_ed25519.pub" "$r/root/.ssh/authorized_keys"
	{
		printf 'localhost,127.0.0.1,::1 '
		cut -d' ' -f1,2 "$r/etc/ssh/ssh_host_ed25519_key.pub"
	} > "$r/root/.ssh/known_hosts"
	chmod 600 "$r/root/.ssh/authorized_keys"
	printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n' \
		> "$r/etc/ssh/sshd_config.d/dmrepl.conf"

	# busybox's usleep, as the busybox guest has it.
	ln -sf /bin/busybox "$r/usr/local/bin/usleep"

	# The test runner: the harness's init, from the run disk.
	cat > "$r/etc/systemd/system/dmrepl-test-runner.service" <<-'EOF'
	[Unit]
	Description=dmrepl integration tests (tests/vm/init from the run disk)
	ConditionPathExists=/opt/dmrepl/init
	After=systemd-udevd.service systemd-udev-trigger.service local-fs.target
	After=ssh.service lvm2-monitor.service dbus.service systemd-logind.service
	Wants=ssh.service

	[Service]
	Type=oneshot
	Environment=DMREPL_GUEST=rootfs HOME=/root
	ExecStart=/bin/sh /opt/dmrepl/init
	StandardInput=null
	StandardOutput=journal
	StandardError=journal
	TimeoutStartSec=infinity
	KillMode=process

	[Install]
	WantedBy=multi-user.target
	EOF
	in_root systemctl enable dmrepl-test-runner.service > /dev/null 2>&1 ||
		die "systemctl enable dmrepl-test-runner.service failed"

	in_root apt-get clean
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/log/*.log "$r"/var/cache/debconf/*-old
}

build_image() {
	local img=$1 tmp
	stage=$(mktemp -d "$cache/rootfs/stage.XXXXXX")
	# On a tmpfs of its own if it can: dpkg's many fsyncs cost nothing there.
	mount -t tmpfs -o size=4g,mode=755 dmrepl-rootfs "$stage" 2>/dev/null || :
	trap 'umount "$stage" 2>/dev/null; rm -rf --one-file-system "$stage"' EXIT
	bootstrap
	configure_root
	tmp="$img.tmp.$$"
	rm -f "$tmp"
	mkfs.ext4 -q -F -L dmrepl-root -d "$stage" "$tmp" "$IMAGE_SIZE" >&2 ||
		die "mkfs.ext4 -d failed"
	# The shared libraries it has, for tests/vm/run's check of --bin programs.
	find "$stage/usr/lib" "$stage/usr/lib64" -maxdepth 2 -name '*.so*' -printf '%f\n' 2>/dev/null |
		sort -u > "$img.libs"
	mv "$tmp" "$img"
	umount "$stage" 2>/dev/null || :
	rm -rf --one-file-system "$stage"
	trap - EXIT
}

make_image() {
	local key img t0 old
	key=$(image_key)
	img="$cache/rootfs/debian12-$key.img"
	if [ -f "$img" ]; then
		echo "$img"
		return
	fi
	[ "$(id -u)" = 0 ] || die "building the root image needs root (debootstrap)"
	command -v debootstrap > /dev/null || die "debootstrap not installed (apt-get install debootstrap)"
	t0=$SECONDS
	build_image "$img"
	for old in "$cache"/rootfs/debian12-*.img; do
		[ "$old" = "$img" ] || rm -f "$old" "$old.libs"
	done
	note "built $img in $((SECONDS - t0)) s"
	echo "$img"
}

# ---------------------------------------------------------------- boot parts

# The initrd's /init.  virtio_blk (and on 6.1 virtio_pci) are modules in
# Debian's cloud kernels; ext4 is built in.
boot_init() {
	cat <<-'EOF'
	#!/bin/busybox sh
	# Mount the disks of the rootfs test VM (by serial) and start systemd.
	export PATH=/bin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	fail() { echo "rootfs initrd: $*" > /dev/console; sleep 1; poweroff -f; }
	while read -r ko; do insmod "/modules/$ko" || fail "insmod $ko"; done < /modules/order
	# by_serial SERIAL: the /dev node of the virtio disk with that serial.
	by_serial() {
		for s in /sys/block/vd*/serial; do
			[ -f "$s" ] && [ "$(cat "$s")" = "$1" ] && { d=${s%/serial}; echo "/dev/${d##*/}"; return 0; }
		done
		return 1
	}
	i=0
	until root=$(by_serial dmrepl-root) && [ -b "$root" ]; do
		i=$((i + 1))
		[ $i -lt 100 ] || fail "no disk with serial dmrepl-root"
		usleep 50000
	done
	mkdir -p /newroot
	mount -t ext4 -o rw,noatime "$root" /newroot || fail "cannot mount $root"
	if m=$(by_serial dmrepl-modules); then
		mount -t ext4 -o ro "$m" /newroot/usr/lib/modules || fail "cannot mount the modules ($m)"
	fi
	if r=$(by_serial dmrepl-run); then
		mount -t ext4 -o rw "$r" /newroot/opt/dmrepl || fail "cannot mount the run disk ($r)"
	fi
	umount /proc /sys
	mount --move /dev /newroot/dev
	exec switch_root /newroot /sbin/init
	EOF
}

boot_key() {
	{ cat "$0"; cat "$kernel_dir/kver"; stat -L -c '%n %s %Y' "$(command -v busybox)"; } |
		sha256sum | cut -c1-16
}

make_boot() {
	local kver dir key tmp ko base order
	kver=$(cat "$kernel_dir/kver")
	key=$(boot_key)
	dir="$cache/rootfs/boot-$kver-$key"
	if [ -f "$dir/.complete" ]; then
		echo "$dir"
		return
	fi
	local bb
	bb=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
	ldd "$bb" > /dev/null 2>&1 && die "$bb is dynamically linked; install busybox-static"
	rm -rf "$cache/rootfs/boot-$kver-"*
	tmp="$dir.tmp.$$"
	mkdir -p "$tmp/cpio/bin" "$tmp/cpio/modules" "$tmp/cpio/proc" "$tmp/cpio/sys" "$tmp/cpio/dev"
	cp "$bb" "$tmp/cpio/bin/busybox"
	for a in $("$bb" --list); do
		[ -e "$tmp/cpio/bin/$a" ] || ln -s busybox "$tmp/cpio/bin/$a"
	done
	boot_init > "$tmp/cpio/init"
	chmod 755 "$tmp/cpio/init"
	order="$tmp/cpio/modules/order"
	: > "$order"
	while read -r ko; do
		base=${ko##*/}
		case $base in
		*.ko) cp "$ko" "$tmp/cpio/modules/$base" ;;
		*.ko.xz) base=${base%.xz}; xz -dc "$ko" > "$tmp/cpio/modules/$base" ;;
		*.ko.zst) base=${base%.zst}; zstd -qdc "$ko" > "$tmp/cpio/modules/$base" ;;
		*) die "unsupported module file $ko" ;;
		esac
		echo "$base" >> "$order"
	done < <(for m in virtio_pci virtio_blk; do
			modprobe -d "$kernel_dir/root" -S "$kver" --show-depends "$m" ||
				die "module $m not found for $kver"
		done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }')
	( cd "$tmp/cpio" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --quiet --owner=0:0 ) > "$tmp/initrd.cpio"
	rm -rf "$tmp/cpio"
	# The modules, as the guest's /usr/lib/modules (depmod ran in fetch-kernel.sh).
	local size
	size=$(( $(du -sm "$kernel_dir/root/lib/modules" | cut -f1) * 5 / 4 + 32 ))
	mkfs.ext4 -q -F -L dmrepl-modules -d "$kernel_dir/root/lib/modules" "$tmp/modules.img" "${size}M" >&2 ||
		die "mkfs.ext4 of the modules failed"
	touch "$tmp/.complete"
	mv "$tmp" "$dir"
	echo "$dir"
}

main() {
	while [ $# -gt 0 ]; do
		case $1 in
		--cache) cache=${2:?}; shift 2 ;;
		--kernel-dir) kernel_dir=${2:?}; shift 2 ;;
		--packages) printf '%s\n' "${PACKAGES[@]}"; exit 0 ;;
		-h|--help) usage; exit 0 ;;
		*) die "unknown argument '$1' (see --help)" ;;
		esac
	done
	cache=${cache:-${DMREPL_CACHE_DIR:-$srcdir/build/cache}}
	mkdir -p "$cache/rootfs"
	cache=$(cd "$cache" && pwd)
	# One build at a time per cache.
	exec 9>"$cache/rootfs/.lock"
	flock 9
	if [ -n "$kernel_dir" ]; then
		[ -f "$kernel_dir/kver" ] || die "$kernel_dir is not a fetch-kernel.sh directory"
		kernel_dir=$(cd "$kernel_dir" && pwd)
		make_boot
	else
		make_image
	fi
}

main "$@"
