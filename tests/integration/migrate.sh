#!/bin/sh
# dmrepl-timeout: 900
# dmrepl migrate between two VGs, real lvm2 and the real kernel, the
# volume in use by a writer whose every write carries its sequence number
# and is logged once acknowledged (fsync'd: O_DIRECT|O_DSYNC):
# 1. a migration under the writer, the switch command stopping it: every
#    acknowledged write is on the destination, the regions the writer
#    never touched equal the source, the destination is VG/LV with the
#    volume's size and its origin's tag, the source LV is still there,
#    active and writable, and the JSON result holds the rounds, the bytes
#    and suspended_ms;
# 2. a failing switch command: the source is resumed and writable, and
#    the destination is not the volume;
# 3. a writer faster than the rounds: migrate stops (exit 3) with a
#    reason, the source runs on, intact, and nothing is left at the
#    destination;
# 4. migrate killed (SIGKILL) while the volume is suspended (in the
#    switch): migrate --recover resumes it, and the destination is not the
#    volume; SIGTERM in the same place: the volume is resumed at once;
# 5. SIGTERM and SIGKILL in the first round's copy: the volume was never
#    suspended and runs, nothing is at the destination, recover clears
#    what a SIGKILL left, and the next migration succeeds;
# after every step, on both VGs, the kernel's thin ids are the thin_ids
# lvs -a shows, and no dmrepl device is left.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl thin_dump sha256sum seq-writer

STATE=$DMT_TMP/state
VOL_MIB=48
WRITER_BLOCKS=2048		# the writer's 8 MiB at the start; the rest is never written
# (each migration leaves the volume and its last round's pair: room for six)
dmt_vg src 360
dmt_vg dst 600
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 320M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 560M --chunksize 64k -n pool "$B"

after() {
	dmt_lvm_invariant src pool "after $1 (source)"
	dmt_lvm_invariant dst pool "after $1 (destination)"
	dmt_no_dmrepl_devices "after $1"
}
# volume NAME: a thin LV in A, filled with random data
volume() {
	dmt_lvm lvcreate -qq -y -V "${VOL_MIB}M" -T "$A/pool" -n "$1"
	dd if=/dev/urandom of="/dev/mapper/$(dmt_lv_dm src "$1")" bs=1M count=$((VOL_MIB - 8)) \
		oflag=direct 2>/dev/null
}
dev_of() { echo "/dev/mapper/$(dmt_lv_dm "$1" "$2")"; }
state_of() { dmsetup info "$(dmt_lv_dm src "$1")" | sed -n 's/^State: *//p'; }
tags_of() { lvm lvs --noheadings -o lv_tags "$1" < /dev/null 2>/dev/null | tr -d ' '; }
exists() { lvm lvs "$1" > /dev/null 2>&1 < /dev/null; }
# untouched VG LV: sha256 of what the writer never writes (past its blocks)
untouched() {
	dd if="$(dev_of "$1" "$2")" bs=1M skip=8 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1
}
writable() {
	dd if=/dev/urandom of="$(dev_of src "$1")" bs=4k count=1 seek=3000 oflag=direct \
		conv=fsync,notrunc 2>"$DMT_TMP/dd.err" || { cat "$DMT_TMP/dd.err" >&2; dmt_fail "$A/$1 is not writable"; }
}
migrate() {
	echo "+ dmrepl migrate $*" >&2
	_rc=0
	dmrepl migrate --state-dir "$STATE" --json "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	grep -v '"type":"progress"' "$DMT_TMP/out" >&2 || :
	dmt_json_capture migrate "$DMT_TMP/out"
	return $_rc
}
field() { tail -n 1 "$DMT_TMP/out" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }

echo "## 1. a migration under a running writer"
volume vol
seq-writer write "$(dev_of src vol)" "$WRITER_BLOCKS" 64 > "$DMT_TMP/acks" &
writer=$!
dmt_background "$writer"
sleep 2
src_untouched=$(untouched src vol)
# (random 4 KiB writes dirty whole 64 KiB chunks: 16 a second change
# about 4 MiB in a round of this VM; the converge size is above that)
migrate --from "$A/vol" --to-pool "$B/pool" --converge 16M \
	--switch-cmd "kill -9 $writer; echo \"\$DMREPL_MIGRATE_FROM \$DMREPL_MIGRATE_TO\" > $DMT_TMP/switched" ||
	dmt_fail "migrate under a writer (exit $_rc)"
wait "$writer" 2>/dev/null || :
dmt_assert_eq "$A/vol $B/vol" "$(cat "$DMT_TMP/switched")" "the switch command ran, with both names"
dmt_assert_eq true "$(field switched)" "the result says switched"
dmt_assert_eq "$B/vol" "$(field volume)" "the result names the volume"
rounds=$(tail -n 1 "$DMT_TMP/out" | grep -o '"round":' | wc -l)
[ "$rounds" -ge 2 ] || dmt_fail "fewer than 2 rounds, the final one included ($rounds)"
dmt_assert_match '*"final":true*' "$(tail -n 1 "$DMT_TMP/out")" "the last round is the final one"
echo "# $rounds rounds, suspended $(field suspended_ms) ms, $(field total_bytes) bytes" >&2
dmt_assert_match "*\"full\":true*" "$(tail -n 1 "$DMT_TMP/out")" "the first round is full"
[ "$(field suspended_ms)" -gt 0 ] || dmt_fail "no suspended_ms"
acks=$(wc -l < "$DMT_TMP/acks")
[ "$acks" -gt 10 ] || dmt_fail "the writer acknowledged only $acks writes"
dmt_assert_eq ACTIVE "$(state_of vol)" "the source is resumed"
exists "$A/vol" || dmt_fail "the source LV is gone"
writable vol
dmt_assert_match "*dmrepl.migrated:$A/vol*" "$(tags_of "$B/vol")" "the volume carries its origin"
dmt_assert_eq "$(lvm lvs --noheadings --units b --nosuffix -o lv_size "$A/vol" < /dev/null | tr -d ' ')" \
	"$(lvm lvs --noheadings --units b --nosuffix -o lv_size "$B/vol" < /dev/null | tr -d ' ')" \
	"the volume has the source's size"
dmt_lvm lvchange -qq -ay "$B/vol"
seq-writer check "$(dev_of dst vol)" "$DMT_TMP/acks" >&2 ||
	dmt_fail "an acknowledged write is not on the destination"
dmt_assert_eq "$src_untouched" "$(untouched dst vol)" "what the writer never touched equals the source"
dmt_lvm lvchange -qq -an "$B/vol"
after "a migration"

echo "## 2. a failing switch command"
volume vol2
seq-writer write "$(dev_of src vol2)" "$WRITER_BLOCKS" 64 > "$DMT_TMP/acks2" &
writer=$!
dmt_background "$writer"
rc=0
migrate --from "$A/vol2" --to-pool "$B/pool" --converge 16M --switch-cmd "exit 7" || rc=$?
dmt_assert_eq 1 "$rc" "a failing switch: exit 1"
dmt_assert_match "*the switch*" "$(cat "$DMT_TMP/err")" "and it says the switch failed"
dmt_assert_eq false "$(field switched)" "the result says not switched"
dmt_assert_eq ACTIVE "$(state_of vol2)" "the source is resumed"
n1=$(wc -l < "$DMT_TMP/acks2")
sleep 1
n2=$(wc -l < "$DMT_TMP/acks2")
[ "$n2" -gt "$n1" ] || dmt_fail "the writer does not go on after a failed switch"
kill "$writer"; wait "$writer" 2>/dev/null || :
if exists "$B/vol2"; then
	case $(tags_of "$B/vol2") in
	*dmrepl.migrated:*) dmt_fail "$B/vol2 looks like the volume after a failed switch" ;;
	*dmrepl.migrate-not-switched*) ;;
	*) dmt_fail "$B/vol2 is there without saying what it is: $(tags_of "$B/vol2")" ;;
	esac
fi
writable vol2
after "a failing switch"

echo "## 3. a writer faster than the rounds: migrate stops, the source runs on"
volume vol3
seq-writer write "$(dev_of src vol3)" "$WRITER_BLOCKS" 0 > "$DMT_TMP/acks3" &
writer=$!
dmt_background "$writer"
rc=0
migrate --from "$A/vol3" --to-pool "$B/pool" --converge 4K --max-rounds 3 \
	--switch-cmd "echo switched > $DMT_TMP/switched3" || rc=$?
dmt_assert_eq 3 "$rc" "not converging: exit 3"
[ -n "$(field reason)" ] || dmt_fail "no reason in the result"
dmt_assert_match "*runs on, untouched*" "$(cat "$DMT_TMP/err")" "the message says the volume runs on"
[ ! -e "$DMT_TMP/switched3" ] || dmt_fail "the switch command ran"
exists "$B/vol3" && dmt_fail "$B/vol3 was made"
dmt_assert_eq ACTIVE "$(state_of vol3)" "the source was never left suspended"
kill "$writer"; wait "$writer" 2>/dev/null || :
seq-writer check "$(dev_of src vol3)" "$DMT_TMP/acks3" >&2 || dmt_fail "the source lost a write"
after "a migration that did not converge"

echo "## 4. killed while the volume is suspended"
volume vol4
for sig in KILL TERM; do
	rm -f "$DMT_TMP/in-switch"
	dmrepl migrate --state-dir "$STATE" -q --from "$A/vol4" --to-pool "$B/pool" \
		--switch-cmd "echo \$\$ > $DMT_TMP/in-switch.tmp; mv $DMT_TMP/in-switch.tmp $DMT_TMP/in-switch; exec sleep 60" \
		> /dev/null 2> "$DMT_TMP/err$sig" &
	mpid=$!
	i=0
	until [ -e "$DMT_TMP/in-switch" ]; do
		i=$((i + 1)); [ "$i" -le 600 ] || dmt_fail "the switch never began"; sleep 0.2
	done
	dmt_assert_eq SUSPENDED "$(state_of vol4)" "in the switch the volume is suspended"
	kill -s "$sig" "$mpid"
	wait "$mpid" 2>/dev/null || :
	cat "$DMT_TMP/err$sig" >&2
	kill "$(cat "$DMT_TMP/in-switch")" 2>/dev/null || :	# SIGKILL leaves it
	if [ "$sig" = KILL ]; then
		dmt_assert_eq SUSPENDED "$(state_of vol4)" "SIGKILL leaves the volume suspended"
		out=$(dmrepl migrate --recover --state-dir "$STATE") || dmt_fail "migrate --recover"
		dmt_assert_eq "1 killed migration(s) resolved" "$out" "--recover says what it did"
	fi
	dmt_assert_eq ACTIVE "$(state_of vol4)" "after SIG$sig the volume runs"
	writable vol4
	case $(tags_of "$B/vol4" || :) in
	*dmrepl.migrated:*) dmt_fail "after SIG$sig $B/vol4 looks like the volume" ;;
	esac
	exists "$B/vol4" && dmt_lvm lvremove -qq -y "$B/vol4"
	after "migrate killed by SIG$sig"
done
echo "## 5. killed in the first round (the full copy): the volume was never suspended"
volume vol5
for sig in TERM KILL; do
	rm -f "$DMT_TMP/prog"
	dmrepl migrate --state-dir "$STATE" --json --from "$A/vol5" --to-pool "$B/pool" \
		> "$DMT_TMP/prog" 2> "$DMT_TMP/err$sig" &
	mpid=$!
	i=0
	until grep -q '"phase":"round 1"' "$DMT_TMP/prog" 2>/dev/null; do
		i=$((i + 1)); [ "$i" -le 600 ] || dmt_fail "round 1 never began"; sleep 0.1
	done
	# somewhere in round 1 (its snapshot, the full copy: 3 s and more here)
	delay=$(( $(dmt_random 8) * 100000 ))
	echo "# SIG$sig ${delay} us into round 1" >&2
	usleep "$delay"
	kill -s "$sig" "$mpid"
	rc=0
	wait "$mpid" 2>/dev/null || rc=$?
	cat "$DMT_TMP/err$sig" >&2
	[ "$sig" = KILL ] || dmt_assert_eq 143 "$rc" "SIGTERM in round 1: exit 143"
	dmt_assert_eq ACTIVE "$(state_of vol5)" "after SIG$sig in round 1 the volume runs"
	writable vol5
	exists "$B/vol5" && dmt_fail "SIG$sig in round 1 left $B/vol5"
	# what a SIGKILL left (the round's devices, its staging LV) the next run clears
	dmrepl recover --pool "$(dmt_lvm_pool_dm src pool)" > /dev/null ||
		dmt_fail "recover of the source pool after SIG$sig"
	dmrepl recover --pool "$(dmt_lvm_pool_dm dst pool)" --state-dir "$STATE" > /dev/null ||
		dmt_fail "recover of the destination pool after SIG$sig"
	after "migrate killed by SIG$sig in round 1"
done
rc=0
migrate --from "$A/vol5" --to-pool "$B/pool" || rc=$?
dmt_assert_eq 0 "$rc" "a migration after the killed ones"
after "a migration after the killed ones"
echo "migrate: ok"
