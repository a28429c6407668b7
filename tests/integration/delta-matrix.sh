#!/bin/sh
# dmrepl-timeout: 240
# dmrepl delta and dmrepl ls against thin_delta and thin_ls on metadata the
# kernel wrote: snapshots of snapshots, overwrites after a snapshot, whole-
# and partial-block discards, writes into snapshots, trees with internal
# nodes (4549 mappings cannot fit one leaf), and devices created after the
# metadata snapshot was reserved. Every ordered pair of devices (a device
# with itself included) is compared whole: through the held metadata
# snapshot (-m), then on the committed superblock once the pool is gone.
# For some pairs, --format=json must hold the XML's runs and
# --format=extents the extents they imply.
#
# Layout (64 KiB blocks, 1 GiB thin devices, a zero target as data: only
# the mappings matter):
#   0  origin: maps 0-3999 and 10000-10499
#   1  snapshot of 0
#      then 0 rewrites 5 and 100-199, maps 12000-12099, and discards
#      2000-2099, 4 KiB inside block 300, and 128 KiB from the middle of
#      block 400 (the kernel unmaps only the blocks a discard covers
#      whole: here 401, and nothing for the 4 KiB)
#   1  gets writes to 7 and 3000-3009 and a discard of 3500-3599
#   2  snapshot of 1 (a snapshot of a snapshot)
#      then 1 rewrites 8; 2 rewrites 9 and 3100-3199 and gets 4 KiB
#      discarded inside block 50 (shared with 0 and 1)
#   3  snapshot of 0, taken later
#      then 0 rewrites 6, maps 12050-12149 (half new) and rewrites every
#      other block of 1000-1999 (a thousand runs, written by one dd
#      through a linear map of those blocks)
#   4  an unrelated thin device: maps 0-999 and 5000-5001
#   5  an empty thin device
#   -- reserve_metadata_snap --
#   6  a new thin device: maps 0-99
#   7  a snapshot of 0; then 0 rewrites 20
#   -- release_metadata_snap; 6 maps 100; the pool is suspended, resumed
#      and removed --
# With -m only 0-5 exist: 6 and 7 must be reported missing.
#
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin linear zero
dmt_require losetup blockdev blkdiscard thin_delta thin_ls dmrepl awk

BLOCK_SECTORS=128
BLOCK_BYTES=$((BLOCK_SECTORS * 512))
THIN_SECTORS=$((16384 * BLOCK_SECTORS))
pool=$(dmt_name pool)

# ---------------------------------------------------------------- helpers

# map DEV FIRST COUNT: write COUNT blocks from block FIRST in one dd.
map() {
	echo "+ write blocks $2-$(($2 + $3 - 1)) of $1" >&2
	dd if=/dev/zero of="$1" bs="$BLOCK_BYTES" seek="$2" count="$3" \
		oflag=direct conv=notrunc 2>/dev/null || dmt_fail "cannot write blocks $2+$3 of $1"
}

# discard_bytes DEV OFFSET LENGTH
discard_bytes() {
	dmt_run blkdiscard -o "$2" -l "$3" "$1"
}

# stride NAME DEV FIRST COUNT STEP: a linear device whose block i is block
# FIRST + i * STEP of DEV, so one dd writes COUNT scattered blocks.
stride() {
	awk -v dev="$2" -v first="$3" -v n="$4" -v step="$5" -v bs="$BLOCK_SECTORS" \
		'BEGIN { for (i = 0; i < n; i++)
			printf "%d %d linear %s %d\n", i * bs, bs, dev, (first + i * step) * bs }' \
		> "$DMT_TMP/$1.table"
	dmt_run dmt_dmsetup create "$(dmt_name "$1")" "$DMT_TMP/$1.table"
	dmt_dmsetup mknodes "$(dmt_name "$1")" >/dev/null 2>&1 || :
	[ -b "$(dmt_dev "$1")" ] || dmt_fail "$(dmt_dev "$1") did not appear"
}

# runs_to_extents: the extents that runs on stdin (thin_delta's XML)
# imply: copy for different and right_only, discard for left_only,
# adjacent extents of one op merged.
runs_to_extents() {
	awk -v bb="$BLOCK_BYTES" '
	function flush() { if (have) printf "%d %d %s\n", b0 * bb, (e0 - b0) * bb, op0 }
	/^    <(different|right_only|left_only) / {
		kind = $1; sub(/^</, "", kind)
		b = $2; gsub(/[^0-9]/, "", b); b += 0
		l = $3; gsub(/[^0-9]/, "", l); l += 0
		op = kind == "left_only" ? "discard" : "copy"
		if (have && op == op0 && b == e0) { e0 = b + l; next }
		flush(); have = 1; op0 = op; b0 = b; e0 = b + l
	}
	END { flush() }'
}

# kind_counts: "KIND COUNT" lines for the runs in XML (stdin).
xml_kind_counts() {
	sed -n 's/^    <\([a-z_]*\) .*/\1/p' | sort | uniq -c | awk '{ print $2, $1 }'
}
json_kind_counts() {
	grep -o '"kind":"[a-z_]*"' | sed 's/"kind":"\(.*\)"/\1/' | sort | uniq -c |
		awk '{ print $2, $1 }'
}

# compare_pairs OPT IDS...: dmrepl delta equals thin_delta for every ordered
# pair of IDS, read with OPT (-m or nothing).
compare_pairs() {
	_opt=$1
	shift
	_n=0
	for _a in "$@"; do
		for _b in "$@"; do
			# shellcheck disable=SC2086 # $_opt is one word or none
			_want=$(thin_delta $_opt --snap1 "$_a" --snap2 "$_b" "$meta") ||
				dmt_fail "thin_delta $_opt --snap1 $_a --snap2 $_b failed"
			# shellcheck disable=SC2086
			_got=$(dmrepl delta $_opt --format=xml --snap1 "$_a" --snap2 "$_b" "$meta") ||
				dmt_fail "dmrepl delta $_opt --snap1 $_a --snap2 $_b failed"
			dmt_assert_text_eq "$_want" "$_got" "dmrepl delta $_opt $_a -> $_b equals thin_delta"
			_n=$((_n + 1))
		done
	done
	echo "$_n ordered pairs: dmrepl delta ${_opt:-(no -m)} equals thin_delta"
}

# check_formats OPT A B: --format=json has the runs of the XML (same kind
# counts), --format=extents the extents they imply.
check_formats() {
	# shellcheck disable=SC2086
	_want=$(dmrepl delta $1 --format=xml --snap1 "$2" --snap2 "$3" "$meta") ||
		dmt_fail "dmrepl delta $1 --snap1 $2 --snap2 $3 failed"
	# shellcheck disable=SC2086
	_json=$(dmrepl delta $1 --format=json --snap1 "$2" --snap2 "$3" "$meta") ||
		dmt_fail "dmrepl delta $1 --format=json $2 $3 failed"
	dmt_assert_match '{"type":"result","ok":true,"left":'"$2"',"right":'"$3"',*"runs":\[*\]}' "$_json" \
		"json delta $2 -> $3 has its frame"
	dmt_assert_text_eq "$(echo "$_want" | xml_kind_counts)" \
		"$(echo "$_json" | json_kind_counts)" "json run kinds $2 -> $3"
	# shellcheck disable=SC2086
	_ext=$(dmrepl delta $1 --format=extents --snap1 "$2" --snap2 "$3" "$meta") ||
		dmt_fail "dmrepl delta $1 --format=extents $2 $3 failed"
	dmt_assert_text_eq "$(echo "$_want" | runs_to_extents)" "$_ext" \
		"extents $2 -> $3 follow from the runs"
	echo "delta ${1:-(no -m)} $2 -> $3: $(echo "$_want" | grep -c '^    <') runs, json kinds" \
		"$(echo "$_json" | json_kind_counts | tr '\n' ' ')and $(echo "$_ext" | grep -c .) extents agree"
}

# compare_ls OPT IDS: dmrepl ls (text and json) lists exactly IDS (one
# string, space separated) with what thin_ls reports for each.
compare_ls() {
	# shellcheck disable=SC2086
	_want=$(thin_ls $1 --no-headers -o DEV,MAPPED_BLOCKS,TRANSACTION,CREATE_TIME,SNAP_TIME "$meta" |
		awk 'NF { $1 = $1; print }' | sort -n) || dmt_fail "thin_ls $1 failed"
	# shellcheck disable=SC2086
	_got=$(dmrepl ls $1 --noheadings -o id,blocks,transaction,create_gen,snap_gen "$meta" |
		awk '{ $1 = $1; print }') ||
		dmt_fail "dmrepl ls $1 failed"
	dmt_assert_text_eq "$_want" "$_got" "dmrepl ls $1 equals thin_ls $1"
	dmt_assert_eq "$2" "$(echo "$_got" | awk '{ print $1 }' | tr '\n' ' ' | sed 's/ $//')" \
		"dmrepl ls $1 lists exactly these devices"
	# shellcheck disable=SC2086
	_json=$(dmrepl ls $1 --json "$meta") || dmt_fail "dmrepl ls $1 --json failed"
	dmt_assert_text_eq "$(echo "$_got" | awk '{ print $1, $2, $3, $4, $5 }')" \
		"$(echo "$_json" | grep -o '"id":[0-9]*,"mapped_blocks":[0-9]*,"transaction_id":[0-9]*,"creation_time":[0-9]*,"snapshot_time":[0-9]*' |
			sed 's/[a-z_"]*://g; s/,/ /g')" "dmrepl ls $1 --json lists the same"
	echo "dmrepl ls ${1:-(no -m)} equals thin_ls: $2"
	echo "$_got"
}

# kind_at A B BLOCK...: the kind of run of delta -m A -> B at each BLOCK.
kind_at() {
	_a=$1 _b=$2
	shift 2
	thin_delta -m --snap1 "$_a" --snap2 "$_b" "$meta" | awk -v a="$_a" -v b="$_b" -v list="$*" '
	BEGIN { n = split(list, want, " ") }
	/^    </ {
		kind = $1; sub(/^</, "", kind)
		s = $2; gsub(/[^0-9]/, "", s); l = $3; gsub(/[^0-9]/, "", l)
		for (i = 1; i <= n; i++)
			if (want[i] + 0 >= s + 0 && want[i] + 0 < s + l) found[i] = kind
	}
	END {
		printf "%s -> %s:", a, b
		for (i = 1; i <= n; i++) printf " block %s %s", want[i], found[i] ? found[i] : "unmapped"
	}'
}

# phase WHAT: log progress with the time since boot.
phase() { echo "## $1 (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }

# mapped ID: mapped_blocks of thin device ID in the last ls.
mapped() { echo "$_got" | awk -v id="$1" '$1 == id { print $2 }'; }

# ---------------------------------------------------------------- build

phase "start"
meta=$(dmt_loop meta 16)
dmt_create data "0 $((65536 * BLOCK_SECTORS)) zero"
dmt_pool pool "$meta" "$(dmt_dev data)" "$BLOCK_SECTORS"

dmt_thin pool origin 0 "$THIN_SECTORS"
origin=$(dmt_dev origin)
map "$origin" 0 4000
map "$origin" 10000 500

dmt_snap pool origin 1 0
map "$origin" 5 1
map "$origin" 100 100
map "$origin" 12000 100
discard_bytes "$origin" $((2000 * BLOCK_BYTES)) $((100 * BLOCK_BYTES))
discard_bytes "$origin" $((300 * BLOCK_BYTES + 8192)) 4096
discard_bytes "$origin" $((400 * BLOCK_BYTES + 32768)) $((2 * BLOCK_BYTES))

dmt_thin_activate pool snapa 1 "$THIN_SECTORS"
snapa=$(dmt_dev snapa)
map "$snapa" 7 1
map "$snapa" 3000 10
discard_bytes "$snapa" $((3500 * BLOCK_BYTES)) $((100 * BLOCK_BYTES))

dmt_snap pool snapa 2 1
map "$snapa" 8 1
dmt_thin_activate pool snapb 2 "$THIN_SECTORS"
snapb=$(dmt_dev snapb)
map "$snapb" 9 1
map "$snapb" 3100 100
discard_bytes "$snapb" $((50 * BLOCK_BYTES + 4096)) 4096

dmt_snap pool origin 3 0
map "$origin" 6 1
map "$origin" 12050 100
stride even "$origin" 1000 500 2
map "$(dmt_dev even)" 0 500
dmt_remove even

dmt_thin pool other 4 "$THIN_SECTORS"
map "$(dmt_dev other)" 0 1000
map "$(dmt_dev other)" 5000 2
dmt_message pool "create_thin 5"

dmt_reserve_metadata_snap pool
phase "metadata snapshot reserved"

dmt_thin pool new 6 "$THIN_SECTORS"
map "$(dmt_dev new)" 0 100
dmt_snap pool origin 7 0
map "$origin" 20 1

# ---------------------------------------------------------------- with -m

# thin_delta and thin_ls read through the page cache, which the kernel's
# writes bypass.
blockdev --flushbufs "$meta"

compare_ls -m "0 1 2 3 4 5"
dmt_assert_eq 1002 "$(mapped 4)" "device 4 maps 1002 blocks"
dmt_assert_eq 0 "$(mapped 5)" "device 5 maps nothing"
dmt_assert_eq 4400 "$(mapped 1)" "snapshot 1 maps 4500 blocks less the 100 it discarded"

# The partial discards: whatever the kernel did, both tools must agree on
# it (compare_pairs); report what it did.
echo "what the partial discards did: $(kind_at 1 0 300 400 401 402); $(kind_at 1 2 50)"

compare_pairs -m 0 1 2 3 4 5
for pair in "1 0" "3 0" "2 1" "1 2" "0 4" "5 0" "0 5"; do
	# shellcheck disable=SC2086 # two ids
	check_formats -m $pair
done
phase "pairs with -m compared"

for id in 6 7; do
	rc=0
	dmrepl delta -m --snap1 0 --snap2 "$id" "$meta" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || rc=$?
	cat "$DMT_TMP/err"
	dmt_assert_eq 1 "$rc" "dmrepl delta -m with device $id, made after the reservation"
	dmt_assert_match "*$id*" "$(cat "$DMT_TMP/err")" "the message names device $id"
	dmt_assert_eq "" "$(grep '<' "$DMT_TMP/out" | grep -v '^<superblock\|^  <diff' || :)" \
		"no runs printed for device $id"
	rc=0
	dmrepl delta -m --snap1 "$id" --snap2 "$id" "$meta" > /dev/null 2>&1 || rc=$?
	dmt_assert_eq 1 "$rc" "dmrepl delta -m $id -> $id"
done

dmt_release_metadata_snap pool

# ---------------------------------------------------------------- without -m

# A suspend commits the pool's metadata: while the pool is suspended, the
# superblock is current (block 100 of device 6 was written after the last
# commit the messages made, with no flush).
map "$(dmt_dev new)" 100 1
dmt_run dmt_dmsetup suspend "$pool"
blockdev --flushbufs "$meta"
suspended=$(dmrepl ls --no-headers "$meta") || dmt_fail "dmrepl ls on the suspended pool failed"
dmt_run dmt_dmsetup resume "$pool"
echo "$suspended"

# thin_ls will not read live metadata, so the pool goes, which commits too.
for dev in origin snapa snapb other new pool; do
	dmt_remove "$dev"
done
blockdev --flushbufs "$meta"
phase "pool removed"

compare_ls "" "0 1 2 3 4 5 6 7"
dmt_assert_text_eq "$suspended" "$(dmrepl ls --no-headers "$meta")" \
	"the suspended pool's superblock was current"
dmt_assert_eq 101 "$(mapped 6)" "device 6 maps 101 blocks"
rc=0
dmrepl delta -m --snap1 0 --snap2 0 "$meta" > /dev/null 2> "$DMT_TMP/err" || rc=$?
dmt_assert_eq 1 "$rc" "dmrepl delta -m with no snapshot held"
dmt_assert_match "*reserve_metadata_snap*" "$(cat "$DMT_TMP/err")" "the message says how to get one"

compare_pairs "" 0 1 2 3 4 5 6 7
for pair in "7 0" "3 7" "0 6"; do
	# shellcheck disable=SC2086 # two ids
	check_formats "" $pair
done
phase "done"
