#!/bin/sh
# dmrepl-timeout: 600
# dmrepl migrate between two VGs killed in the phases migrate.sh does not
# kill it in (that one: the first round's copy, the switch), the volume
# in use by a writer:
# - SIGTERM and SIGKILL in a middle round (round 2): the volume was never
#   suspended and runs, nothing is at the destination under its name;
# - SIGTERM and SIGKILL in the final round, the volume suspended (the
#   last delta's copy, the commit or the switch): the volume runs again
#   (after migrate --recover for a SIGKILL), and the destination is not
#   the volume: removed, or a copy tagged dmrepl.migrate-not-switched;
# - then a migration succeeds, every acknowledged write on the destination.
# After every step, on both VGs, the kernel's thin ids are the thin_ids
# lvs -a shows, and no dmrepl device is left.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl seq-writer

STATE=$DMT_TMP/state
VOL_MIB=48
WRITER_BLOCKS=2048
dmt_vg src 360
dmt_vg dst 400
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 320M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 360M --chunksize 64k -n pool "$B"
dmt_lvm lvcreate -qq -y -V "${VOL_MIB}M" -T "$A/pool" -n vol
DEV=/dev/mapper/$(dmt_lv_dm src vol)
dd if=/dev/urandom of="$DEV" bs=1M count=$((VOL_MIB - 8)) oflag=direct 2>/dev/null

state() { dmsetup info "$(dmt_lv_dm src vol)" | sed -n 's/^State: *//p'; }
tags_of() { lvm lvs --noheadings -o lv_tags "$1" < /dev/null 2>/dev/null | tr -d ' '; }
killed() {	# SIG PHASE
	dmt_assert_eq ACTIVE "$(state)" "after SIG$1 in $2 the volume runs"
	dd if=/dev/urandom of="$DEV" bs=4k count=1 seek=3000 oflag=direct conv=fsync,notrunc \
		2>/dev/null || dmt_fail "after SIG$1 in $2 the volume is not writable"
	case $(tags_of "$B/vol" || :) in
	*dmrepl.migrate-not-switched*) dmt_lvm lvremove -qq -y "$B/vol" ;;
	*dmrepl.migrat*) dmt_fail "after SIG$1 in $2 $B/vol is there: $(tags_of "$B/vol")" ;;
	esac
	# what a SIGKILL left (the round's devices, a staging LV) recover clears
	dmrepl recover --pool "$(dmt_lvm_pool_dm src pool)" > /dev/null ||
		dmt_fail "recover of the source pool after SIG$1 in $2"
	dmrepl recover --pool "$(dmt_lvm_pool_dm dst pool)" --state-dir "$STATE" > /dev/null ||
		dmt_fail "recover of the destination pool after SIG$1 in $2"
	dmt_lvm_invariant src pool "after SIG$1 in $2 (source)"
	dmt_lvm_invariant dst pool "after SIG$1 in $2 (destination)"
	dmt_no_dmrepl_devices "after SIG$1 in $2"
}

echo "## killed in a middle round"
for sig in TERM KILL; do
	seq-writer write "$DEV" "$WRITER_BLOCKS" 64 > /dev/null &
	writer=$!
	dmt_background "$writer"
	rm -f "$DMT_TMP/prog"
	# converge 4K: the writer's rounds are never small enough
	dmrepl migrate --state-dir "$STATE" --json --from "$A/vol" --to-pool "$B/pool" \
		--converge 4K --max-rounds 6 > "$DMT_TMP/prog" 2> "$DMT_TMP/err$sig" &
	mpid=$!
	i=0
	until grep -q '"phase":"round 2"' "$DMT_TMP/prog" 2>/dev/null; do
		i=$((i + 1)); [ "$i" -le 900 ] || dmt_fail "round 2 never began"; sleep 0.1
	done
	delay=$(( $(dmt_random 10) * 100000 ))
	echo "# SIG$sig ${delay} us into round 2" >&2
	usleep "$delay"
	kill -s "$sig" "$mpid"
	rc=0
	wait "$mpid" 2>/dev/null || rc=$?
	cat "$DMT_TMP/err$sig" >&2
	kill "$writer"; wait "$writer" 2>/dev/null || :
	[ "$sig" = KILL ] || dmt_assert_eq 143 "$rc" "SIGTERM in round 2: exit 143"
	killed "$sig" "round 2"
done

echo "## killed in the final round, the volume suspended"
for sig in TERM KILL; do
	# a final round that always comes (converge 1G); its switch takes 2 s
	dmrepl migrate --state-dir "$STATE" -q --from "$A/vol" --to-pool "$B/pool" \
		--converge 1G --switch-cmd 'sleep 2; exit 1' > /dev/null 2> "$DMT_TMP/err$sig" &
	mpid=$!
	i=0
	until [ "$(state)" = SUSPENDED ]; do
		i=$((i + 1)); [ "$i" -le 3000 ] || dmt_fail "the volume was never suspended"
		kill -0 "$mpid" 2>/dev/null || { cat "$DMT_TMP/err$sig" >&2; dmt_fail "migrate ended first"; }
	done
	kill -s "$sig" "$mpid"
	rc=0
	wait "$mpid" 2>/dev/null || rc=$?
	cat "$DMT_TMP/err$sig" >&2
	if [ "$sig" = KILL ]; then
		dmt_assert_eq SUSPENDED "$(state)" "SIGKILL leaves the volume suspended"
		out=$(dmrepl migrate --recover --state-dir "$STATE") || dmt_fail "migrate --recover"
		dmt_assert_eq "1 killed migration(s) resolved" "$out" "--recover says what it did"
	else
		dmt_assert_eq 143 "$rc" "SIGTERM in the final round: exit 143"
	fi
	killed "$sig" "the final round"
done

echo "## then a migration"
seq-writer write "$DEV" "$WRITER_BLOCKS" 64 > "$DMT_TMP/acks" &
writer=$!
dmt_background "$writer"
sleep 1
dmrepl migrate --state-dir "$STATE" -q --from "$A/vol" --to-pool "$B/pool" --converge 16M \
	--switch-cmd "kill -9 $writer" || dmt_fail "a migration after the killed ones"
wait "$writer" 2>/dev/null || :
dmt_lvm lvchange -qq -ay "$B/vol"
seq-writer check "/dev/mapper/$(dmt_lv_dm dst vol)" "$DMT_TMP/acks" >&2 ||
	dmt_fail "an acknowledged write is not on the destination"
dmt_lvm lvchange -qq -an "$B/vol"
dmt_lvm_invariant src pool "after a migration (source)"
dmt_lvm_invariant dst pool "after a migration (destination)"
dmt_no_dmrepl_devices "after a migration"
echo "migrate-kill: ok"
