#!/bin/sh
# Which device `dmrepl replicate` reads the source snapshot through.
#
# When a dm device already maps the snapshot (no external origin) and
# covers the size to copy, the copy reads through it: no device of
# dmrepl's own is created or removed for the source, and the borrowed
# device is left as it was (active, not suspended, not open). Otherwise
# dmrepl activates the snapshot under its own name, as before: a device
# smaller than --size, or one with an external origin, is not borrowed.
# Without --size the size comes from the largest active device, or the
# size `dmrepl snapshot` recorded. Every replica is checked byte for byte
# against its snapshot.
#
# dmrepl-timeout: 300
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin zero
dmt_require losetup blockdev sha256sum dmrepl

VOL_MIB=16
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
HALF_SECTORS=$((VOL_SECTORS / 2))
STATE=$DMT_TMP/state

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 64)" 128
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 160)" 128
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)
dd if=/dev/urandom of="$origin" bs=1M count=$VOL_MIB oflag=direct 2>/dev/null
dmt_snap src origin 2 1
dmt_write_blocks "$origin" 65536 B 3 4 100 200 255	# 255: the last block
dmt_snap src origin 3 1
dmt_write_blocks "$origin" 65536 C 0 7 128
dmt_snap src origin 4 1
dmt_write_blocks "$origin" 65536 D 9 250
dmt_snap src origin 5 1
dmt_remove origin

# replicate LOG SNAP ARGS...: dmrepl -vv replicate into dst, debug log in
# $DMT_TMP/LOG; prints the replica's id.
replicate() {
	_log=$DMT_TMP/$1 _snap=$2
	shift 2
	echo "+ dmrepl -vv replicate --snap $_snap $*" >&2
	dmrepl -vv replicate --pool "$(dmt_name src)" --snap "$_snap" "$@" \
		--to-pool "$(dmt_name dst)" --state-dir "$STATE" --json > "$DMT_TMP/out" 2> "$_log" ||
		{ cat "$DMT_TMP/out" "$_log" >&2; dmt_fail "replicate $_snap $* failed"; }
	tail -n 1 "$DMT_TMP/out" >&2
	tail -n 1 "$DMT_TMP/out" | sed -n 's/.*"replica":\([0-9]*\).*/\1/p'
}

check() {
	dmt_assert_eq "$(dmt_thin_sha src "$1" "$VOL_SECTORS")" \
		"$(dmt_thin_sha dst "$2" "$VOL_SECTORS")" \
		"sha256 of replica $2 equals that of snapshot $1"
}

# borrowed LOG NAME: the copy read through device NAME, and created no
# source device of its own.
borrowed() {
	grep -q "reading thin [0-9]* through $(dmt_name "$2") " "$DMT_TMP/$1" ||
		{ grep 'thinpool\|dm create' "$DMT_TMP/$1" >&2; dmt_fail "$1: the copy did not read through $2"; }
	if grep 'dm create dmrepl-[0-9]*-src-' "$DMT_TMP/$1" >&2; then
		dmt_fail "$1: a source device was created although $2 was borrowed"
	fi
}

# own LOG: the copy activated the snapshot under dmrepl's own name.
own() {
	grep -q 'dm create dmrepl-[0-9]*-src-' "$DMT_TMP/$1" ||
		dmt_fail "$1: no source device of dmrepl's own was created"
	if grep 'reading thin [0-9]* through' "$DMT_TMP/$1" >&2; then
		dmt_fail "$1: a device was borrowed that should not have been"
	fi
}

# untouched NAME SECTORS: still active, as big, not suspended, not open.
untouched() {
	_info=$(dmsetup info -c --noheadings -o suspended,open --separator ' ' "$(dmt_name "$1")")
	dmt_assert_eq "Active 0" "$_info" "$1 is active, not suspended and not open"
	dmt_assert_eq "$2" "$(dmt_sectors "$(dmt_dev "$1")")" "$1 still maps $2 sectors"
}

# A full copy through an active device of the snapshot, no --size.
dmt_thin_activate src snap2 2 "$VOL_SECTORS"
r2=$(replicate full 2)
borrowed full snap2
untouched snap2 "$VOL_SECTORS"
dmt_assert_match "*\"size_bytes\":$VOL_BYTES,*" "$(cat "$DMT_TMP/out")" "the size is snap2's"
check 2 "$r2"
dmt_remove snap2

# An incremental: two devices, the larger gives the size and is read.
dmt_thin_activate src half3 3 "$HALF_SECTORS"
dmt_thin_activate src snap3 3 "$VOL_SECTORS"
r3=$(replicate incr 3 --base 2)
borrowed incr snap3
untouched snap3 "$VOL_SECTORS"
untouched half3 "$HALF_SECTORS"
dmt_assert_match "*\"size_bytes\":$VOL_BYTES,*" "$(cat "$DMT_TMP/out")" "the size is the larger device's"
check 3 "$r3"
dmt_remove snap3

# Only a device smaller than --size: not borrowed.
r3b=$(replicate small 3 --size "$VOL_BYTES" --full)
own small
untouched half3 "$HALF_SECTORS"
check 3 "$r3b"
dmt_remove half3

# Only a device with an external origin: not borrowed.
dmt_create zeroes "0 $VOL_SECTORS zero"
dmt_create ext4 "0 $VOL_SECTORS thin $(dmt_dev src) 4 $(dmt_dev zeroes)"
r4=$(replicate external 4 --base 3)
own external
untouched ext4 "$VOL_SECTORS"
check 4 "$r4"
dmt_remove ext4
dmt_remove zeroes

# No active device at all: dmrepl's own, with the base's size.
r5=$(replicate none 5 --base 4)
own none
check 5 "$r5"

# A snapshot taken by `dmrepl snapshot` of an active origin: its size is
# recorded, so a full copy needs neither --size nor a device of it; a
# size record of an id since deleted and reused is not taken for it.
dmt_thin_activate src origin2 1 "$VOL_SECTORS"
s6=$(dmrepl snapshot --pool "$(dmt_name src)" --origin 1 --state-dir "$STATE")
dmt_remove origin2
r6=$(replicate recorded "$s6" --full)
own recorded
check "$s6" "$r6"
dmt_message src "delete $s6"
dmt_message src "create_snap $s6 1"
rc=0
dmrepl replicate --pool "$(dmt_name src)" --snap "$s6" --full --to-pool "$(dmt_name dst)" \
	--state-dir "$STATE" 2> "$DMT_TMP/err" || rc=$?
dmt_assert_eq 1 "$rc" "a reused id: the recorded size is not its size"
dmt_assert_match "*size of thin $s6 is not known*--size*" "$(cat "$DMT_TMP/err")" "it asks for --size"

dmt_assert_eq - "$(dmt_pool_held_root src)" "source metadata snapshot released"
dmt_assert_eq - "$(dmt_pool_held_root dst)" "destination metadata snapshot released"
dmt_assert_eq "" "$(dmt_dmrepl_devices)" "no dmrepl devices left"
