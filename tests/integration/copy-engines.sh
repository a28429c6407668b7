#!/bin/sh
# dmrepl copy between thin devices of two pools, on a real kernel:
# - a whole copy with each engine (uring, aio, sync), sha256 equal;
# - discards unmap on a thin destination (its mapped sectors drop), and
#   --detect-zeroes keeps a copy thin;
# - a 64 KiB source pool and a 1 MiB destination pool, with discards not
#   aligned to 1 MiB: the edges become zeroes, sha256 equal to the
#   same edits made with dd;
# - a failing destination (an error target, and dm-flakey with
#   error_writes) gives one clean error naming the device and offset;
# - the automatic fallback when io_uring is disabled.
#
# dmrepl-timeout: 300
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev sha256sum dmrepl

VOL_MIB=24
VOL_SECTORS=$((VOL_MIB * 2048))
URING_SYSCTL=/proc/sys/kernel/io_uring_disabled
uring_saved=

restore_uring() {
	if [ -n "$uring_saved" ]; then
		echo "$uring_saved" > "$URING_SYSCTL" || :
	fi
	uring_saved=
}
trap '_st=$?; restore_uring; (exit $_st); dmt__on_exit' EXIT

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 128)" 128
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 256)" 128
dmt_pool big "$(dmt_loop big-meta 8)" "$(dmt_loop big-data 128)" 2048

# in_file FILE REGEX WHAT: a line of FILE matches REGEX (grep).
in_file() {
	grep -q -e "$2" "$1" || { cat "$1" >&2; dmt_fail "$3: no line matches '$2'"; }
}
sha() { sha256sum < "$1" | cut -d' ' -f1; }
# mapped SECTORS of an active thin device, from its status line
mapped() { dmt_dmsetup status "$(dmt_name "$1")" | awk '{ print $4 }'; }

# The source: random data with a hole and a run of written zeroes.
dmt_thin src origin 1 "$VOL_SECTORS"
SRC=$(dmt_dev origin)
dd if=/dev/urandom of="$SRC" bs=1M count="$VOL_MIB" oflag=direct 2>/dev/null
blkdiscard -o $((4 << 20)) -l $((2 << 20)) "$SRC"
dd if=/dev/zero of="$SRC" bs=1M seek=10 count=3 oflag=direct conv=notrunc 2>/dev/null
src_sha=$(sha "$SRC")
dmt_log "source mapped sectors: $(mapped origin)"

# garbage NAME: fill a thin device with random data (all mapped).
garbage() {
	dd if=/dev/urandom of="$(dmt_dev "$1")" bs=1M count="$VOL_MIB" oflag=direct 2>/dev/null
}

# ---- every engine, whole copies
id=1
for engine in uring aio sync; do
	id=$((id + 1))
	dmt_thin dst "c-$engine" "$id" "$VOL_SECTORS"
	garbage "c-$engine"
	dmt_run dmrepl -v copy -q --engine=$engine "$SRC" "$(dmt_dev "c-$engine")" \
		2> "$DMT_TMP/err"
	cat "$DMT_TMP/err" >&2
	in_file "$DMT_TMP/err" "engine $engine, queue depth 32, 1 MiB I/Os" "$engine: the engine used"
	dmt_assert_eq "$src_sha" "$(sha "$(dmt_dev "c-$engine")")" "$engine: sha256 of the copy"
done

# ---- discards unmap on a thin destination
id=$((id + 1))
dmt_thin dst disc "$id" "$VOL_SECTORS"
garbage disc
before=$(mapped disc)
printf '%s\n' "$((2 << 20)) $((8 << 20)) discard" "$((16 << 20)) 1000 discard" \
	> "$DMT_TMP/ext"
dmt_run dmrepl copy --extents "$DMT_TMP/ext" "$SRC" "$(dmt_dev disc)"
after=$(mapped disc)
dmt_log "mapped sectors: $before before, $after after the discards"
# 8 MiB unmapped; the 1000 bytes are zeroed inside a mapped block.
dmt_assert_eq $((before - 16384)) "$after" "discard unmaps 8 MiB of the thin destination"
dd if="$(dmt_dev disc)" of="$DMT_TMP/got" bs=1M count=1 skip=16 iflag=direct 2>/dev/null
dd if=/dev/zero of="$DMT_TMP/zero" bs=1000 count=1 2>/dev/null
dmt_assert_eq "$(sha "$DMT_TMP/zero")" "$(head -c 1000 "$DMT_TMP/got" | sha256sum | cut -d' ' -f1)" \
	"1000 discarded bytes read as zeroes"

# ---- --detect-zeroes keeps the copy thin
id=$((id + 1))
dmt_thin dst dz "$id" "$VOL_SECTORS"
dmt_run dmrepl copy -q --detect-zeroes "$SRC" "$(dmt_dev dz)"
dmt_assert_eq "$src_sha" "$(sha "$(dmt_dev dz)")" "detect-zeroes: sha256 of the copy"
dmt_log "mapped sectors: source $(mapped origin), detect-zeroes copy $(mapped dz)"
dmt_assert_eq $(($(mapped origin) - 3 * 2048)) "$(mapped dz)" \
	"detect-zeroes: the 3 MiB of written zeroes are not mapped"

# ---- 64 KiB source pool, 1 MiB destination pool, unaligned discards
dmt_thin big b1 1 "$VOL_SECTORS"
garbage b1
dd if="$(dmt_dev b1)" of="$DMT_TMP/want" bs=1M iflag=direct 2>/dev/null
before=$(mapped b1)
# 64 KiB-aligned extents, as a delta of the source pool gives them.
K=65536
cat > "$DMT_TMP/ext" <<EOF
$((3 * K)) $((37 * K)) discard
$((40 * K)) $((5 * K)) copy
$((100 * K)) $((16 * K)) discard
$((130 * K)) $((2 * K)) discard
$((200 * K)) $((60 * K)) copy
EOF
while read -r off len op; do
	if [ "$op" = copy ]; then
		dd if="$SRC" of="$DMT_TMP/want" bs=$K skip=$((off / K)) seek=$((off / K)) \
			count=$((len / K)) conv=notrunc 2>/dev/null
	else
		dd if=/dev/zero of="$DMT_TMP/want" bs=$K seek=$((off / K)) \
			count=$((len / K)) conv=notrunc 2>/dev/null
	fi
done < "$DMT_TMP/ext"
dmt_run dmrepl copy --json --extents "$DMT_TMP/ext" "$SRC" "$(dmt_dev b1)" > "$DMT_TMP/json"
cat "$DMT_TMP/json" >&2
dmt_json_capture copy "$DMT_TMP/json" 0
dmt_assert_eq "$(sha "$DMT_TMP/want")" "$(sha "$(dmt_dev b1)")" \
	"1 MiB pool: sha256 after unaligned discards"
# Of the discards only [1M, 2.5M) holds a whole 1 MiB block: block 1.
dmt_assert_eq $((before - 2048)) "$(mapped b1)" "1 MiB pool: one whole block unmapped"
in_file "$DMT_TMP/json" '"discarded_bytes":1048576,' "discarded bytes"
in_file "$DMT_TMP/json" '"zeroed_bytes":2555904,' "zeroed edges"

# ---- a failing destination
dmt_create err "0 $VOL_SECTORS error"
if dmrepl copy -q "$SRC" "$(dmt_dev err)" 2> "$DMT_TMP/err"; then
	dmt_fail "a copy to an error target succeeded"
fi
cat "$DMT_TMP/err" >&2
in_file "$DMT_TMP/err" "error: write $(dmt_dev err) at offset [0-9]* .*Input/output error" "error target: the message"
dmt_assert_eq 1 "$(grep -c . "$DMT_TMP/err")" "error target: one message"

if modprobe dm-flakey 2>/dev/null || dmsetup targets | grep -q '^flakey'; then
	id=$((id + 1))
	dmt_thin dst fl-base "$id" "$VOL_SECTORS"
	# Up for 0 s, down for 1 h: every write fails, reads work.
	dmt_create flaky "0 $VOL_SECTORS flakey $(dmt_dev fl-base) 0 0 3600 1 error_writes"
	for engine in uring aio sync; do
		if dmrepl copy -q --engine=$engine "$SRC" "$(dmt_dev flaky)" 2> "$DMT_TMP/err"; then
			dmt_fail "$engine: a copy to dm-flakey error_writes succeeded"
		fi
		cat "$DMT_TMP/err" >&2
		in_file "$DMT_TMP/err" "write $(dmt_dev flaky) at offset [0-9]*" "flakey ($engine): the message"
	done
else
	dmt_log "dm-flakey not available: error target only"
fi

# ---- io_uring disabled: automatic fallback
if [ -w "$URING_SYSCTL" ]; then
	uring_saved=$(cat "$URING_SYSCTL")
	echo 2 > "$URING_SYSCTL"
	why="disabled by $URING_SYSCTL"
else
	# Kernels before 6.6 lack the sysctl: the library's test hook.
	dmt_log "$URING_SYSCTL missing (kernel $(uname -r)): using DMREPL_IO_URING_DISABLE=1"
	DMREPL_IO_URING_DISABLE=1
	export DMREPL_IO_URING_DISABLE
	why="disabled by DMREPL_IO_URING_DISABLE=1"
fi
id=$((id + 1))
dmt_thin dst fb "$id" "$VOL_SECTORS"
dmt_run dmrepl -v copy -q "$SRC" "$(dmt_dev fb)" 2> "$DMT_TMP/err"
cat "$DMT_TMP/err" >&2
in_file "$DMT_TMP/err" "io_uring $why; trying libaio" "fallback: the reason"
in_file "$DMT_TMP/err" "engine aio, queue depth 32" "fallback: libaio used"
dmt_assert_eq "$src_sha" "$(sha "$(dmt_dev fb)")" "fallback: sha256 of the copy"
if dmrepl copy -q --engine=uring "$SRC" "$(dmt_dev fb)" 2> "$DMT_TMP/err"; then
	dmt_fail "--engine=uring succeeded with io_uring disabled"
fi
in_file "$DMT_TMP/err" "engine uring is not available" "forced uring refused"
restore_uring
unset DMREPL_IO_URING_DISABLE
echo "ok"
