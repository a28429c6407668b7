#!/bin/bash
# Make (once) the kernel-written thin-pool metadata images that
# bench/delta.sh reads, and print the directory that holds them.
#
# Usage: bench/mkimages.sh [--force]
#
# The images are written by the Debian cloud kernel in the test VM
# (tests/vm/run, qemu TCG): bench/gen-metadata.sh runs there with
# bench/provision, over two virtio disks backed by files here:
#   base.meta    thin 1 with 1,000,000 mapped 64 KiB blocks, snapshots 2, 3, 4
#   double.meta  the same with 2,000,000 blocks
# (see bench/gen-metadata.sh for the changes between the snapshots).
#
# They are cached in $DMREPL_CACHE_DIR/bench/gen-vN (default build/cache),
# N being GEN_VERSION in bench/gen-metadata.sh; a later run reuses them.
# --force makes them again.  Takes about 10 minutes (qemu TCG, 2 cores).
# Exit status: 0 the images are ready, 1 they could not be made.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
srcdir=$(cd "$here/.." && pwd)
prog=${0##*/}

BASE_DISK_MIB=512
DOUBLE_DISK_MIB=1024

die() { echo "$prog: error: $*" >&2; exit 1; }
say() { echo "$prog: $*" >&2; }

gen_version() {
	sed -n 's/^GEN_VERSION=\([0-9A-Za-z._-]*\)$/\1/p' "$here/gen-metadata.sh" | head -n 1
}

# images_ready DIR: both images made by a run that finished and checked them.
images_ready() {
	[ -f "$1/base.meta" ] && [ -f "$1/double.meta" ] && [ -f "$1/manifest" ]
}

build_provision() {
	gcc -O2 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
		-Wmissing-prototypes -Wvla -o "$1/provision" "$here/provision.c" ||
		die "cannot compile bench/provision.c"
}

# generate WORK: run the guest generator over two fresh disk files in WORK.
generate() {
	local work=$1 log
	truncate -s "${BASE_DISK_MIB}M" "$work/base.meta"
	truncate -s "${DOUBLE_DISK_MIB}M" "$work/double.meta"
	say "writing the metadata in the VM (a few minutes; log: $work/vm/gen-metadata.log)"
	"$srcdir/tests/vm/run" --mode vm --out "$work/vm" --bin "$work/provision" \
		--disk "$work/base.meta" --disk "$work/double.meta" \
		"$here/gen-metadata.sh" >&2 || die "the generator failed (see $work/vm/gen-metadata.log)"
	log="$work/vm/gen-metadata.log"
	grep -q '^gen: double: done$' "$log" || die "the generator did not finish (see $log)"
	grep '^gen: \|^provision: ' "$log" >&2
}

check_images() {
	local work=$1 img
	for img in base double; do
		thin_check "$work/$img.meta" > "$work/$img.check" 2>&1 ||
			die "thin_check $work/$img.meta failed (see $work/$img.check)"
	done
}

write_manifest() {
	local work=$1 version=$2
	{
		echo "generator: bench/gen-metadata.sh GEN_VERSION=$version"
		echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
		sed -n 's/^@@START \(kernel=[^ ]*\).*/\1/p' "$work/vm/results.raw" | head -n 1
		grep '^gen: ' "$work/vm/gen-metadata.log"
	} > "$work/manifest"
}

main() {
	local force=0 version cache dir work
	case ${1:-} in
	"") ;;
	--force) force=1 ;;
	-h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	command -v thin_check >/dev/null || die "thin_check not found (apt-get install thin-provisioning-tools)"
	version=$(gen_version)
	[ -n "$version" ] || die "no GEN_VERSION in $here/gen-metadata.sh"
	cache=${DMREPL_CACHE_DIR:-$srcdir/build/cache}
	dir="$cache/bench/gen-v$version"
	if [ "$force" = 0 ] && images_ready "$dir"; then
		echo "$dir"
		return 0
	fi
	mkdir -p "$cache/bench"
	# Kept on failure, for its logs.
	work=$(mktemp -d "$cache/bench/.work.XXXXXX")
	build_provision "$work"
	generate "$work"
	check_images "$work"
	write_manifest "$work" "$version"
	rm -rf "$dir"
	mkdir -p "$dir"
	mv "$work/base.meta" "$work/double.meta" "$work/manifest" "$dir/"
	rm -rf "$work"
	say "images ready in $dir"
	echo "$dir"
}

main "$@"
