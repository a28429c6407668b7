#!/bin/bash
# Build the initramfs (uncompressed newc cpio) that the test VM boots.
#
# Usage: tests/vm/mkinitramfs.sh --kernel-dir DIR --out FILE
#            [--test SCRIPT]... [--bin PATH]... [--lib PATH]... [--extra FILE]...
#        tests/vm/mkinitramfs.sh --print-modules
#
#   --print-modules   print the modules the guest loads, one "NAME [PARAMS]"
#                     a line (the rootfs guest modprobes the same list)
#   --kernel-dir DIR  output of fetch-kernel.sh (vmlinuz, kver, root/)
#   --out FILE        cpio archive to write
#   --test SCRIPT     test script; copied to /tests/ and listed, in order, in
#                     /etc/dmrepl/tests (the guest /init runs that list)
#   --bin PATH        program (or directory of programs) to put in
#                     /opt/dmrepl/bin, first on the guest PATH; the shared
#                     libraries of ELF programs come along
#   --lib PATH        extra shared library (system paths are kept, others go
#                     to /opt/dmrepl/lib, on the tests' LD_LIBRARY_PATH)
#   --extra FILE      data file copied next to the tests in /tests/
#
# The archive holds busybox (with applet links), dash as /bin/sh, dmsetup, thin-provisioning
# tools, util-linux losetup/blockdev/blkdiscard, the kernel modules listed
# below with a load-order file, the guest /init (tests/vm/init) and
# tests/integration/lib.sh as /tests/lib.sh.  It is rebuilt only when an input
# changed (a key of paths, sizes and mtimes is kept in FILE.key).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

# Kernel modules the tests may use; dependencies are added automatically.
# A word after the name is passed to insmod as a module parameter.
MODULES=(
	"dm-thin-pool"
	"dm-flakey"
	"dm-delay"
	"dm-zero"
	"dm-snapshot"
	"loop"
	"brd rd_nr=4 rd_size=131072"
	"virtio_blk"
	"virtio_pci"
)
# Host programs copied (with their libraries) into the guest.
HOST_PROGS=(dmsetup losetup blockdev blkdiscard pdata_tools)
# ssh on loopback for the stream tests (dropbear-bin).
HOST_PROGS+=(dropbear dbclient dropbearkey)
# lvm2, for the tests on LVM-managed pools (lvm2: `lvm lvcreate ...`).
HOST_PROGS+=(lvm)

die() { echo "$prog: error: $*" >&2; exit 1; }

kernel_dir="" out="" tests=() bins=() libs=() extras=()
stage=""

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--kernel-dir) kernel_dir=${2:?}; shift 2 ;;
		--out) out=${2:?}; shift 2 ;;
		--test) tests+=("${2:?}"); shift 2 ;;
		--bin) bins+=("${2:?}"); shift 2 ;;
		--lib) libs+=("${2:?}"); shift 2 ;;
		--extra) extras+=("${2:?}"); shift 2 ;;
		--print-modules) printf '%s\n' "${MODULES[@]}"; exit 0 ;;
		-h|--help) usage; exit 0 ;;
		*) die "unknown argument '$1' (see --help)" ;;
		esac
	done
	[ -n "$kernel_dir" ] || die "--kernel-dir is required"
	[ -n "$out" ] || die "--out is required"
	[ -f "$kernel_dir/kver" ] || die "$kernel_dir is not a fetch-kernel.sh directory"
}

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' \n')" = '177ELF' ]; }

is_libtool_wrapper() { grep -q 'libtool' "$1" 2>/dev/null && grep -q 'relink_command\|wrapper script' "$1" 2>/dev/null; }

# add_file SRC DEST: copy SRC (following symlinks) to DEST inside the stage.
add_file() {
	local src=$1 dest=$2
	[ -e "$stage$dest" ] && return 0
	mkdir -p "$stage$(dirname "$dest")"
	cp -L --preserve=mode "$src" "$stage$dest"
}

# lib_dest NAME PATH: where a library goes in the guest.  System libraries
# keep their path; others (a build tree's .libs, possibly under /tmp, which is
# a tmpfs in the guest) go to /opt/dmrepl/lib, on the tests' LD_LIBRARY_PATH.
lib_dest() {
	case $2 in
	/lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) echo "$2" ;;
	*) echo "/opt/dmrepl/lib/${1##*/}" ;;
	esac
}

# add_libs ELF: copy the shared libraries ldd reports for ELF.
add_libs() {
	local elf=$1 name lib out
	is_elf "$elf" || return 0
	out=$(ldd "$elf" 2>&1) || return 0   # static: "not a dynamic executable"
	if grep -q 'not found' <<<"$out"; then
		die "$elf: missing shared libraries:$(grep 'not found' <<<"$out" | tr '\n\t' '  ')"
	fi
	while read -r name lib; do
		add_file "$lib" "$(lib_dest "$name" "$lib")"
	done < <(awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// { print $1, $1 }' <<<"$out")
}

# add_prog SRC DEST: copy a program and its libraries.
add_prog() {
	add_file "$1" "$2"
	add_libs "$1"
}

add_host_programs() {
	local p path f
	for p in "${HOST_PROGS[@]}"; do
		path=$(PATH=/usr/sbin:/sbin:$PATH command -v "$p") || die "$p not found on the host"
		add_prog "$path" "/usr/sbin/$p"
	done
	# thin_* (and cache_*/era_*) are symlinks to pdata_tools.
	for f in /usr/sbin/*; do
		if [ -L "$f" ] && [ "$(basename "$(readlink "$f")")" = pdata_tools ]; then
			ln -sf pdata_tools "$stage/usr/sbin/${f##*/}"
		fi
	done
}

# The tests' /bin/sh is dash, as on a Debian host: Debian's busybox prefers
# its own applets to programs on PATH, so under busybox sh a test calling
# "losetup" would get busybox's losetup instead of util-linux's.
add_shell() {
	local dash
	dash=$(command -v dash) || die "dash not found"
	add_prog "$dash" /bin/dash
	ln -s dash "$stage/bin/sh"
}

add_busybox() {
	local bb applet
	bb=$(command -v busybox) || die "busybox not found (apt-get install busybox-static)"
	ldd "$bb" >/dev/null 2>&1 && die "$bb is dynamically linked; install busybox-static"
	add_file "$bb" /bin/busybox
	for applet in $("$bb" --list); do
		# Real host tools win over applets of the same name.
		if [ ! -e "$stage/usr/sbin/$applet" ] && [ ! -e "$stage/bin/$applet" ]; then
			ln -s busybox "$stage/bin/$applet"
		fi
	done
}

add_project_bins() {
	local b f
	for b in ${bins[@]+"${bins[@]}"}; do
		if [ -d "$b" ]; then
			for f in "$b"/*; do
				[ -f "$f" ] && [ -x "$f" ] && add_project_bin "$f"
			done
		else
			[ -f "$b" ] || die "--bin $b: no such file or directory"
			add_project_bin "$b"
		fi
	done
	for b in ${libs[@]+"${libs[@]}"}; do
		[ -f "$b" ] || die "--lib $b: no such file"
		b=$(realpath -s "$b")
		add_prog "$b" "$(lib_dest "$b" "$b")"
	done
}

add_project_bin() {
	local f=$1
	if ! is_elf "$f" && is_libtool_wrapper "$f"; then
		die "$f is a libtool wrapper script; pass the real ELF (for example .libs/${f##*/}, or link with -no-install)"
	fi
	add_prog "$f" "/opt/dmrepl/bin/${f##*/}"
}

# module_paths: print the .ko files needed, dependencies first, each once.
module_paths() {
	local kver=$1 root=$2 m name
	for m in "${MODULES[@]}"; do
		name=${m%% *}
		modprobe -d "$root" -S "$kver" --show-depends "$name" ||
			die "module $name not found for kernel $kver"
	done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'
}

# params_of NAME: module parameters configured in MODULES for NAME
# ("-" and "_" are the same in module names).
params_of() {
	local m want=${1//-/_} name
	for m in "${MODULES[@]}"; do
		name=${m%% *}
		if [ "${name//-/_}" = "$want" ] && [ "$m" != "$name" ]; then
			echo "${m#* }"
		fi
	done
}

add_modules() {
	local kver root ko base name dest order
	kver=$(cat "$kernel_dir/kver")
	root="$kernel_dir/root"
	dest="$stage/lib/modules/dmrepl"
	mkdir -p "$dest"
	order="$dest/order"
	: > "$order"
	while read -r ko; do
		base=${ko##*/}
		case $base in
		*.ko) cp "$ko" "$dest/$base" ;;
		*.ko.xz) base=${base%.xz}; xz -dc "$ko" > "$dest/$base" ;;
		*.ko.zst) base=${base%.zst}; zstd -qdc "$ko" > "$dest/$base" ;;
		*) die "unsupported module file $ko" ;;
		esac
		name=${base%.ko}
		echo "$base $(params_of "$name")" >> "$order"
	done < <(module_paths "$kver" "$root")
}

add_tests() {
	local t base list="$stage/etc/dmrepl/tests"
	mkdir -p "$stage/tests" "$stage/etc/dmrepl"
	: > "$list"
	add_file "$srcdir/tests/integration/lib.sh" /tests/lib.sh
	for t in ${tests[@]+"${tests[@]}"}; do
		[ -f "$t" ] || die "test $t: no such file"
		base=${t##*/}
		[ "$base" != lib.sh ] || die "a test may not be called lib.sh"
		[ ! -e "$stage/tests/$base" ] || die "two tests named $base"
		add_file "$t" "/tests/$base"
		echo "$base" >> "$list"
	done
	for t in ${extras[@]+"${extras[@]}"}; do
		[ -f "$t" ] || die "--extra $t: no such file"
		add_file "$t" "/tests/${t##*/}"
	done
}

add_skeleton() {
	mkdir -p "$stage"/{proc,sys,dev,tmp,run,etc,usr/bin,usr/sbin,sbin}
	ln -s /proc/mounts "$stage/etc/mtab"
	# A root account, for the ssh server of the stream tests.
	mkdir -p "$stage/root"
	echo 'root:x:0:0:root:/root:/bin/sh' > "$stage/etc/passwd"
	echo 'root:x:0:' > "$stage/etc/group"
	add_file "$here/init" /init
	chmod 755 "$stage/init"
	# lvm2 without udev (libdevmapper makes the nodes), without its
	# daemons, and without a devices file. The tests' PVs are loop devices
	# (virtio disks in benchmarks): lvm scans those alone, not every dm
	# device (each thin LV, each of dmrepl's), as a host's filter would.
	mkdir -p "$stage/etc/lvm/backup" "$stage/etc/lvm/archive"
	cat > "$stage/etc/lvm/lvm.conf" <<-'EOF'
	devices {
		use_devicesfile = 0
		obtain_device_list_from_udev = 0
		global_filter = [ "a|^/dev/loop[0-9]+$|", "a|^/dev/vd[a-z]+$|", "r|.*|" ]
	}
	activation {
		udev_sync = 0
		udev_rules = 0
		monitoring = 0
	}
	global {
		use_lvmpolld = 0
	}
	EOF
}

# input_key: a digest of everything the archive is built from.
input_key() {
	{
		echo "args: ${tests[*]-} | ${bins[*]-} | ${libs[*]-} | ${extras[*]-} | ${MODULES[*]}"
		cat "$kernel_dir/kver"
		local f
		for f in "$0" "$here/init" "$srcdir/tests/integration/lib.sh" \
			${tests[@]+"${tests[@]}"} ${libs[@]+"${libs[@]}"} ${extras[@]+"${extras[@]}"}; do
			stat -L -c '%n %s %Y' "$f"
		done
		for f in ${bins[@]+"${bins[@]}"}; do
			find -L "$f" -maxdepth 1 -type f -printf '%p %s %T@\n' | sort
		done
		for f in "${HOST_PROGS[@]}" busybox dash; do
			stat -L -c '%n %s %Y' "$(PATH=/usr/sbin:/sbin:$PATH command -v "$f")"
		done
	} 2>&1 | sha256sum | cut -d' ' -f1
}

main() {
	parse_args "$@"
	kernel_dir=$(cd "$kernel_dir" && pwd)
	local key
	key=$(input_key)
	if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
		return 0
	fi
	stage=$(mktemp -d "${TMPDIR:-/tmp}/dmrepl-initramfs.XXXXXX")
	trap 'rm -rf "$stage"' EXIT
	add_skeleton
	add_host_programs
	add_shell
	add_busybox
	add_project_bins
	add_modules
	add_tests
	mkdir -p "$(dirname "$out")"
	( cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --quiet --owner=0:0 ) > "$out.tmp"
	mv "$out.tmp" "$out"
	echo "$key" > "$out.key"
}

main "$@"
