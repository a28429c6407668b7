#!/bin/sh
# Local replication between two real thin pools: a full copy, then a
# chain of incrementals, each checked byte for byte (sha256 of the whole
# replica against its source snapshot) and for thinness (mapped blocks).
#
# The chain covers overwrites, new blocks, whole-block and partial-block
# discards, a snapshot of a snapshot, and a write into a source snapshot
# before it is replicated. It runs twice: into a destination pool with
# the source's block size (64 KiB), and into one with 1 MiB blocks.
#
# dmrepl-timeout: 400
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev blkdiscard sha256sum dmrepl

SRC_BLOCK=128				# sectors: 64 KiB
VOL_MIB=48
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
STATE=$DMT_TMP/state

src_meta=$(dmt_loop src-meta 8)
src_data=$(dmt_loop src-data 160)
dmt_pool src "$src_meta" "$src_data" "$SRC_BLOCK"
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)

snapshot() {
	dmrepl snapshot --pool "$(dmt_name src)" --origin "$1"
}

# replicate SNAP [BASE] into pool DST; prints the replica's id.
replicate() {
	_dst=$1 _snap=$2
	shift 2
	echo "+ dmrepl replicate --snap $_snap $* --to-pool $_dst" >&2
	dmrepl replicate --pool "$(dmt_name src)" --snap "$_snap" "$@" \
		--to-pool "$(dmt_name "$_dst")" --state-dir "$STATE" --json > "$DMT_TMP/out" ||
		{ cat "$DMT_TMP/out" >&2; dmt_fail "replicate $_snap $* into $_dst failed"; }
	dmt_json_capture replicate "$DMT_TMP/out" 0
	tail -n 1 "$DMT_TMP/out" | sed -n 's/.*"replica":\([0-9]*\).*/\1/p'
}

# check DST SNAP REPLICA BLOCK_RATIO: equal bytes, and the replica stays thin.
check() {
	dmt_check_replica "$1" "$2" "$3" "$4" "$VOL_SECTORS"
}

# The source's history: writes, discards, snapshots.
echo "+ fill 0-16 MiB with random data, and two blocks far out" >&2
dd if=/dev/urandom of="$origin" bs=1M count=16 oflag=direct 2>/dev/null
dmt_write_blocks "$origin" 65536 A 500 700
S1=$(snapshot 1)

dmt_write_blocks "$origin" 65536 B 3 4 100 600		# overwrites, new blocks
dmt_discard_blocks "$origin" 65536 10 11 12		# whole-block discards
blkdiscard -o $((20 * 65536 + 4096)) -l 8192 "$origin"	# partial: ignored by the pool
S2=$(snapshot 1)

S3=$(snapshot "$S2")					# a snapshot of a snapshot
dmt_create w "0 $VOL_SECTORS thin $(dmt_dev src) $S3"	# written before replication
dmt_write_blocks "$(dmt_dev w)" 65536 C 5 650
dmt_discard_blocks "$(dmt_dev w)" 65536 100
dmt_remove w

dmt_write_blocks "$origin" 65536 D 0 200 201 202 703
dmt_discard_blocks "$origin" 65536 500
S4=$(snapshot 1)

dmt_write_blocks "$origin" 65536 E 1 702
S5=$(snapshot 1)

for dst_block in 128 2048; do
	ratio=$((dst_block / SRC_BLOCK))
	dst=dst$dst_block
	dst_meta=$(dmt_loop "$dst-meta" 8)
	dst_data=$(dmt_loop "$dst-data" 160)
	dmt_pool "$dst" "$dst_meta" "$dst_data" "$dst_block"

	r1=$(replicate "$dst" "$S1" --size "$VOL_BYTES")
	check "$dst" "$S1" "$r1" "$ratio"
	r2=$(replicate "$dst" "$S2" --base "$S1")
	check "$dst" "$S2" "$r2" "$ratio"
	r3=$(replicate "$dst" "$S3" --base "$S2")
	check "$dst" "$S3" "$r3" "$ratio"
	r4=$(replicate "$dst" "$S4" --base "$S3")
	check "$dst" "$S4" "$r4" "$ratio"

	# Asking again is not an error, and copies nothing.
	again=$(replicate "$dst" "$S4" --base "$S3")
	dmt_assert_eq "$r4" "$again" "a second replication of $S4 names the same replica"
	dmt_assert_match '*"already_replicated":true*' "$(cat "$DMT_TMP/out")" \
		"the second replication of $S4 did nothing"

	# A dry run: the base it would pick, what it would copy, nothing written.
	thins_before=$(dmrepl ls --pool "$(dmt_name "$dst")" --no-headers | wc -l)
	dmrepl replicate --pool "$(dmt_name src)" --snap "$S5" -n --to-pool "$(dmt_name "$dst")" \
		--state-dir "$STATE" > "$DMT_TMP/line" || dmt_fail "replicate -n of $S5"
	cat "$DMT_TMP/line" >&2
	dmt_assert_match "thin $S5 of $(dmt_name src) to $(dmt_name "$dst"): would copy * bytes in * extents, from thin $S4 (its replica: thin $r4)" \
		"$(cat "$DMT_TMP/line")" "--dry-run names the base and the size"
	dmt_assert_eq "$thins_before" "$(dmrepl ls --pool "$(dmt_name "$dst")" --no-headers | wc -l)" \
		"--dry-run created nothing"
	dmt_assert_eq "" "$(ls "$STATE"/*/ | grep staging || :)" "--dry-run recorded nothing"

	# No --base: the newest snapshot whose replica dst holds is the base.
	r5=$(replicate "$dst" "$S5")
	check "$dst" "$S5" "$r5" "$ratio"
	dmt_assert_match "*\"base\":$S4,*\"full\":false,*" "$(tail -n 1 "$DMT_TMP/out")" \
		"without --base, $S5 is replicated from $S4, the newest common base"
	dmrepl replicate --pool "$(dmt_name src)" --snap "$S5" --full --size "$VOL_BYTES" --to-pool "$(dmt_name "$dst")" \
		--state-dir "$STATE" > "$DMT_TMP/line" || dmt_fail "replicate --full of $S5"
	dmt_assert_match "*replicated as thin * (full)" "$(cat "$DMT_TMP/line")" "--full says so"

	list=$(dmrepl replicas --to-pool "$(dmt_name "$dst")" --state-dir "$STATE" --no-headers)
	echo "$list" >&2
	dmt_assert_eq 6 "$(echo "$list" | grep -c ' ok$')" "six replicas listed as ok in $dst"

	# The metadata snapshots of both pools were released, and no device
	# of dmrepl's own is left.
	dmt_assert_eq - "$(dmt_pool_held_root src)" "source metadata snapshot released"
	dmt_assert_eq - "$(dmt_pool_held_root "$dst")" "destination metadata snapshot released"
	dmt_assert_eq "" "$(dmt_dmrepl_devices)" "no dmrepl devices left"
done
