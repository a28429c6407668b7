#!/bin/sh
# dmrepl-timeout: 3000
# Guest side of bench/mkimages.sh: makes the kernel write the thin-pool
# metadata that bench/delta.sh reads.  Runs in the test VM (tests/vm/run
# --disk BASE --disk DOUBLE), as a test script, with bench/provision on PATH.
#
# For each disk, /dev/vda (BASE_BLOCKS) and /dev/vdb (twice as many):
#   data device:  dm-zero, so provisioning costs no data I/O
#   pool:         64 KiB blocks, skip_block_zeroing, metadata = the disk
#   thin 1:       every block written (all mapped)
#   snapshot 2 of 1; then 1% of the blocks rewritten, scattered single
#                 blocks drawn with a fixed seed
#   snapshot 3 of 1; then 4 ranges of CLUSTER_BLOCKS rewritten (1% of
#                 BASE_BLOCKS; the same ranges on both disks)
#   snapshot 4 of 1
# so that delta 2 -> 3 is the scattered change and 3 -> 4 the clustered one.
# The devices are removed at the end, which makes the kernel commit the
# metadata: each disk's file is then a complete metadata image.
#
# GEN_VERSION names the images in the cache: change it whenever anything
# here (or in bench/provision.c) changes what the images hold.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

GEN_VERSION=1
BLOCK_SECTORS=128                           # 64 KiB
BLOCK_BYTES=$((BLOCK_SECTORS * 512))
BASE_BLOCKS=1000000
SEED=20240603
CLUSTER_STARTS="100000 350000 600000 850000"
CLUSTER_BLOCKS=2500

# step WHAT CMD...: run CMD, log how long it took.
step() {
	_what=$1
	shift
	_t0=$(cut -d' ' -f1 /proc/uptime)
	"$@"
	_t1=$(cut -d' ' -f1 /proc/uptime)
	echo "gen: $_what: $(awk -v a="$_t0" -v b="$_t1" 'BEGIN { printf "%.1f", b - a }') s"
}

# provision_range NAME FIRST COUNT, provision_random NAME SEED COUNT NR_BLOCKS:
# write blocks of the thin device of image NAME with bench/provision.
provision_range() { _n=$1; shift; dmt_run provision "$(dmt_dev "$_n-thin")" "$BLOCK_BYTES" range "$@"; }
provision_random() { _n=$1; shift; dmt_run provision "$(dmt_dev "$_n-thin")" "$BLOCK_BYTES" random "$@"; }

write_clusters() {
	for _c in $CLUSTER_STARTS; do
		provision_range "$1" "$_c" "$CLUSTER_BLOCKS"
	done
}

# make_image NAME DISK NR_BLOCKS
make_image() {
	_name=$1 _disk=$2 _nr=$3
	[ -b "$_disk" ] || dmt_fail "$_disk is missing: run through bench/mkimages.sh"
	# Room for the volume, both changes and slack; dm-zero costs nothing.
	_data_blocks=$((_nr * 2))
	dmt_create "$_name-data" "0 $((_data_blocks * BLOCK_SECTORS)) zero"
	dd if=/dev/zero of="$_disk" bs=4096 count=1 conv=notrunc,fsync 2>/dev/null ||
		dmt_fail "cannot zero the superblock of $_disk"
	dmt_create "$_name-pool" "0 $((_data_blocks * BLOCK_SECTORS)) thin-pool $_disk $(dmt_dev "$_name-data") $BLOCK_SECTORS 0 1 skip_block_zeroing"
	dmt_thin "$_name-pool" "$_name-thin" 1 $((_nr * BLOCK_SECTORS))

	step "$_name: map all $_nr blocks of thin 1" provision_range "$_name" 0 "$_nr"
	dmt_snap "$_name-pool" "$_name-thin" 2 1
	step "$_name: scattered change, $((_nr / 100)) blocks" \
		provision_random "$_name" "$SEED" $((_nr / 100)) "$_nr"
	dmt_snap "$_name-pool" "$_name-thin" 3 1
	step "$_name: clustered change, 4 x $CLUSTER_BLOCKS blocks" write_clusters "$_name"
	dmt_snap "$_name-pool" "$_name-thin" 4 1

	echo "gen: $_name: pool status: $(dmt_pool_status "$_name-pool")"
	dmt_remove "$_name-thin"
	step "$_name: remove the pool (final commit)" dmt_remove "$_name-pool"
	dmt_remove "$_name-data"
	echo "gen: $_name: done"
}

dmt_require_target thin-pool thin zero
dmt_require provision
echo "gen: version $GEN_VERSION"
make_image base /dev/vda "$BASE_BLOCKS"
make_image double /dev/vdb $((BASE_BLOCKS * 2))
