#!/bin/sh
# dmrepl-timeout: 900
# dmrepl migrate --to ssh://: to another host's pool through a real ssh
# server (dropbear on loopback; the far side is dmrepl receive --migrate),
# LVM on both sides, the volume in use by a writer whose every write
# carries its sequence number and is logged once acknowledged:
# 1. a migration under the writer, the switch command stopping it: every
#    acknowledged write is on the destination, the regions the writer
#    never touched equal the source; the volume is ssh://HOST/VG/LV, with
#    the volume's size and tag dmrepl.migrated:HOST:VG/LV; of the rounds'
#    replicas the far side kept only the last; the source LV runs on;
# 2. the volume's name taken at the far side: refused before any round;
# 3. a failing switch command: the source is resumed and writable, the
#    far side's LV is not the volume;
# 4. SIGKILL in the first round (the full copy), SIGTERM and SIGKILL in a
#    middle round (round 2), then in the final
#    round (the volume suspended): the volume runs again (after --recover
#    for a SIGKILL), the far side undid itself (nothing tagged
#    dmrepl.migrating or dmrepl.migrated; killed in the switch, a copy
#    tagged dmrepl.migrate-not-switched), and a migration after them
#    succeeds;
# after every step, on both VGs, the kernel's thin ids are the thin_ids
# lvs -a shows, and no dmrepl device is left.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin snapshot
dmt_require lvm dmrepl sha256sum seq-writer dropbear dbclient dropbearkey

STATE=$DMT_TMP/state
FAR_STATE=$DMT_TMP/far-state
VOL_MIB=48
WRITER_BLOCKS=2048		# the writer's 8 MiB at the start
DMREPL=$(command -v dmrepl)
dmt_vg src 360
dmt_vg dst 600
A=$(dmt_name src)
B=$(dmt_name dst)
dmt_lvm lvcreate -qq -y --type thin-pool -L 320M --chunksize 64k -n pool "$A"
dmt_lvm lvcreate -qq -y --type thin-pool -L 560M --chunksize 64k -n pool "$B"
dmt_sshd
URL="ssh://root@127.0.0.1/$B/pool"
HOST=$(hostname | tr -c 'A-Za-z0-9_+.=!:&#\n-' '_')

after() {
	dmt_lvm_invariant src pool "after $1 (source)"
	dmt_lvm_invariant dst pool "after $1 (destination)"
	dmt_no_dmrepl_devices "after $1"
}
volume() {
	dmt_lvm lvcreate -qq -y -V "${VOL_MIB}M" -T "$A/pool" -n "$1"
	dd if=/dev/urandom of="/dev/mapper/$(dmt_lv_dm src "$1")" bs=1M count=$((VOL_MIB - 8)) \
		oflag=direct 2>/dev/null
}
dev_of() { echo "/dev/mapper/$(dmt_lv_dm "$1" "$2")"; }
state_of() { dmsetup info "$(dmt_lv_dm src "$1")" | sed -n 's/^State: *//p'; }
tags_of() { lvm lvs --noheadings -o lv_tags "$1" < /dev/null 2>/dev/null | tr -d ' '; }
exists() { lvm lvs "$1" > /dev/null 2>&1 < /dev/null; }
# tagged VG TAG: the LVs of VG whose tags hold TAG, on one line
tagged() {
	lvm lvs --noheadings -o lv_name,lv_tags "$1" < /dev/null 2>/dev/null |
		awk -v t="$2" 'index($2, t) { printf "%s ", $1 }'
}
untouched() {
	dd if="$(dev_of "$1" "$2")" bs=1M skip=8 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1
}
writable() {
	dd if=/dev/urandom of="$(dev_of src "$1")" bs=4k count=1 seek=3000 oflag=direct \
		conv=fsync,notrunc 2>"$DMT_TMP/dd.err" || { cat "$DMT_TMP/dd.err" >&2; dmt_fail "$A/$1 is not writable"; }
}
MIGRATE="dmrepl migrate --state-dir $STATE --transport '$DMT_DBCLIENT root@127.0.0.1' --remote-dmrepl $DMREPL --remote-state-dir $FAR_STATE"
migrate() {
	echo "+ dmrepl migrate $*" >&2
	_rc=0
	eval "$MIGRATE --json \"\$@\"" > "$DMT_TMP/out" 2> "$DMT_TMP/err" || _rc=$?
	cat "$DMT_TMP/err" >&2
	grep -v '"type":"progress"' "$DMT_TMP/out" >&2 || :
	dmt_json_capture migrate "$DMT_TMP/out"
	return $_rc
}
field() { tail -n 1 "$DMT_TMP/out" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/p"; }
# the far side is done (it undoes itself after the connection ends; a
# round's receive keeps a resumable staging LV)
far_done() {
	_i=0
	while ps | grep -v grep | grep -q -- "receive --pool $B/"; do
		_i=$((_i + 1)); [ "$_i" -le 150 ] || dmt_fail "the far side did not end"; sleep 0.2
	done
}

echo "## 1. a migration over ssh under a running writer"
volume vol
seq-writer write "$(dev_of src vol)" "$WRITER_BLOCKS" 64 > "$DMT_TMP/acks" &
writer=$!
dmt_background "$writer"
sleep 2
src_untouched=$(untouched src vol)
migrate --from "$A/vol" --to "$URL" --converge 16M \
	--switch-cmd "kill -9 $writer; echo \"\$DMREPL_MIGRATE_FROM \$DMREPL_MIGRATE_TO\" > $DMT_TMP/switched" ||
	dmt_fail "migrate over ssh under a writer (exit $_rc)"
wait "$writer" 2>/dev/null || :
dmt_assert_eq "$A/vol ssh://root@127.0.0.1/$B/vol" "$(cat "$DMT_TMP/switched")" \
	"the switch command ran, with both names"
dmt_assert_eq true "$(field switched)" "the result says switched"
dmt_assert_eq "ssh://root@127.0.0.1/$B/vol" "$(field volume)" "the result names the volume"
dmt_assert_eq "$URL" "$(field to)" "and the destination as given"
rounds=$(tail -n 1 "$DMT_TMP/out" | grep -o '"round":' | wc -l)
[ "$rounds" -ge 2 ] || dmt_fail "fewer than 2 rounds, the final one included ($rounds)"
echo "# $rounds rounds, suspended $(field suspended_ms) ms, $(field total_bytes) bytes" >&2
[ "$(field suspended_ms)" -gt 0 ] || dmt_fail "no suspended_ms"
dmt_assert_eq ACTIVE "$(state_of vol)" "the source is resumed"
writable vol
dmt_assert_match "*dmrepl.migrated:$HOST:$A/vol*" "$(tags_of "$B/vol")" \
	"the volume carries its origin, host and all"
dmt_assert_eq "$(lvm lvs --noheadings --units b --nosuffix -o lv_size "$A/vol" < /dev/null | tr -d ' ')" \
	"$(lvm lvs --noheadings --units b --nosuffix -o lv_size "$B/vol" < /dev/null | tr -d ' ')" \
	"the volume has the source's size"
n=$(tagged "$B" dmrepl.migrate:vol | wc -w)
dmt_assert_eq 1 "$n" "the far side kept one round's replica, the last ($(tagged "$B" dmrepl.migrate:vol))"
dmt_lvm lvchange -qq -ay "$B/vol"
seq-writer check "$(dev_of dst vol)" "$DMT_TMP/acks" >&2 ||
	dmt_fail "an acknowledged write is not on the destination"
dmt_assert_eq "$src_untouched" "$(untouched dst vol)" "what the writer never touched equals the source"
dmt_lvm lvchange -qq -an "$B/vol"
after "a migration over ssh"

echo "## 2. the name taken at the far side"
volume taken
dmt_lvm lvcreate -qq -y -V 4M -T "$B/pool" -n taken
rc=0
migrate --from "$A/taken" --to "$URL" || rc=$?
dmt_assert_eq 1 "$rc" "a taken name: exit 1"
dmt_assert_match "*$B/taken exists already*" "$(cat "$DMT_TMP/err")" "and says so"
[ -z "$(tagged "$A" dmrepl.migrate:taken)" ] || dmt_fail "a round ran before the check"
dmt_lvm lvremove -qq -y "$B/taken" "$A/taken"
after "a taken name"

echo "## 3. a failing switch command"
volume vol2
rc=0
migrate --from "$A/vol2" --to "$URL" --switch-cmd "exit 7" || rc=$?
dmt_assert_eq 1 "$rc" "a failing switch: exit 1"
dmt_assert_match "*the switch*" "$(cat "$DMT_TMP/err")" "and it says the switch failed"
dmt_assert_eq false "$(field switched)" "the result says not switched"
dmt_assert_eq ACTIVE "$(state_of vol2)" "the source is resumed"
writable vol2
far_done
if exists "$B/vol2"; then
	case $(tags_of "$B/vol2") in
	*dmrepl.migrate-not-switched*) ;;
	*) dmt_fail "$B/vol2 after a failed switch: $(tags_of "$B/vol2")" ;;
	esac
fi
after "a failing switch over ssh"

echo "## 4. killed in a middle round, and in the final round"
volume vol3
killed() {	# SIG PHASE: what a kill there must leave
	dmt_assert_eq ACTIVE "$(state_of vol3)" "after SIG$1 in $2 the volume runs"
	writable vol3
	far_done
	# killed in the switch: a copy that says it is not the volume
	case $(tags_of "$B/vol3" || :) in
	*dmrepl.migrate-not-switched*) dmt_lvm lvremove -qq -y "$B/vol3" ;;
	*dmrepl.migrat*) dmt_fail "after SIG$1 in $2 $B/vol3 is there: $(tags_of "$B/vol3")" ;;
	esac
	dmrepl recover --pool "$(dmt_lvm_pool_dm src pool)" > /dev/null ||
		dmt_fail "recover of the source pool after SIG$1 in $2"
	after "SIG$1 in $2"
}
for what in "KILL 1" "TERM 2" "KILL 2"; do
	sig=${what% *} round=${what#* }
	# a writer keeps the rounds going (converge 4K: never small enough)
	seq-writer write "$(dev_of src vol3)" "$WRITER_BLOCKS" 64 > /dev/null &
	writer=$!
	dmt_background "$writer"
	rm -f "$DMT_TMP/prog"
	eval "exec $MIGRATE --json --from $A/vol3 --to $URL --converge 4K --max-rounds 6" \
		> "$DMT_TMP/prog" 2> "$DMT_TMP/err$sig" &
	mpid=$!
	i=0
	until grep -q "\"phase\":\"round $round\"" "$DMT_TMP/prog" 2>/dev/null; do
		i=$((i + 1)); [ "$i" -le 900 ] || dmt_fail "round $round never began"; sleep 0.1
	done
	delay=$(( $(dmt_random 10) * 100000 ))
	echo "# SIG$sig $delay us into round $round" >&2
	usleep "$delay"
	kill -s "$sig" "$mpid"
	rc=0
	wait "$mpid" 2>/dev/null || rc=$?
	cat "$DMT_TMP/err$sig" >&2
	kill "$writer"; wait "$writer" 2>/dev/null || :
	[ "$sig" = KILL ] || dmt_assert_eq 143 "$rc" "SIGTERM in round $round: exit 143"
	killed "$sig" "round $round"
done
for sig in TERM KILL; do
	rm -f "$DMT_TMP/prog"
	# a final round that always comes (converge 1G); the switch takes 2 s
	eval "exec $MIGRATE -q --from $A/vol3 --to $URL --converge 1G --switch-cmd 'sleep 2; exit 1'" \
		> /dev/null 2> "$DMT_TMP/err$sig" &
	mpid=$!
	i=0
	until [ "$(state_of vol3)" = SUSPENDED ]; do
		i=$((i + 1)); [ "$i" -le 3000 ] || dmt_fail "the volume was never suspended"
		kill -0 "$mpid" 2>/dev/null || { cat "$DMT_TMP/err$sig" >&2; dmt_fail "migrate ended first"; }
	done
	kill -s "$sig" "$mpid"
	rc=0
	wait "$mpid" 2>/dev/null || rc=$?
	cat "$DMT_TMP/err$sig" >&2
	if [ "$sig" = KILL ]; then
		# (the switch command, if it had begun, ends by itself)
		dmrepl migrate --recover --state-dir "$STATE" > /dev/null || dmt_fail "migrate --recover"
	else
		dmt_assert_eq 143 "$rc" "SIGTERM in the final round: exit 143"
	fi
	killed "$sig" "the final round"
done
rc=0
migrate --from "$A/vol3" --to "$URL" || rc=$?
dmt_assert_eq 0 "$rc" "a migration after the killed ones"
dmt_assert_match "*dmrepl.migrated:*" "$(tags_of "$B/vol3")" "and the volume is there"
after "a migration after the killed ones"
echo "migrate-remote: ok"
