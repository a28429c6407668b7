#!/bin/sh
# dmrepl-timeout: 400
# A receive-only key: in the destination's authorized_keys,
# command="dmrepl serve KEY" makes that key run only dmrepl receive, into
# the pools serve.d/KEY.conf names, of the sources it names. Through a
# real ssh server (dropbear on loopback):
# - replicate --to through the key works unchanged, full and incremental,
#   each replica exact (sha256);
# - a shell, an interactive login, a receive into another pool, a stream
#   from another source, receive --abort, and a command that would delete
#   a device are all refused (exit 2, saying why), and nothing changes
#   in either pool;
# - after the refusals the key still replicates.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev sha256sum dmrepl dropbear dbclient dropbearkey

BLOCK=128
VOL_MIB=16
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
STATE=$DMT_TMP/state
CONF=$DMT_TMP/conf
DMREPL=$(command -v dmrepl)

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 64)" "$BLOCK"
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 96)" "$BLOCK"
dmt_pool other "$(dmt_loop other-meta 8)" "$(dmt_loop other-data 64)" "$BLOCK"
dmt_thin src origin 1 "$VOL_SECTORS"
SRC=$(dmt_name src)
DST=$(dmt_name dst)
OTHER=$(dmt_name other)
dd if=/dev/urandom of="$(dmt_dev origin)" bs=1M count=4 conv=fsync 2>/dev/null

# The key and what it may do.
mkdir -p "$CONF/serve.d" "$STATE"
printf '[serve]\npools = %s\nsources = *:%s\nstate_dir = %s\n' "$DST" "$SRC" "$STATE" \
	> "$CONF/serve.d/backup.conf"
dmt_sshd
dropbearkey -t ed25519 -f "$DMT_TMP/keys/backup" 2>/dev/null | grep '^ssh-ed25519' |
	sed "s|^|command=\"$DMREPL serve backup -c $CONF\",no-pty,no-port-forwarding,no-agent-forwarding |" \
	>> /root/.ssh/authorized_keys
KEY="dbclient -y -i $DMT_TMP/keys/backup -p $DMT_SSH_PORT root@127.0.0.1"

thins() { dmrepl ls --pool "$1" --noheadings -o id | tr -d ' ' | tr '\n' ' '; }
snapshot() { dmrepl snapshot --pool "$SRC" --origin 1; }
# through ARGS...: replicate --to through the key; the replica's id.
through() {
	echo "+ dmrepl replicate --to ssh://root@127.0.0.1/$DST (the receive-only key) $*" >&2
	dmrepl replicate --pool "$SRC" --size "$VOL_BYTES" --to "ssh://root@127.0.0.1/$DST" \
		--transport "$KEY" --json "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" ||
		{ cat "$DMT_TMP/out" "$DMT_TMP/err" >&2; dmt_fail "replicate through the key: $*"; }
	dmt_json_capture replicate "$DMT_TMP/out" 0
	sed -n 's/.*"replica":\([0-9]*\).*/\1/p' "$DMT_TMP/out" | tail -n 1
}
# refused WHAT EXPECT COMMAND [< input]: the key runs COMMAND: exit 2,
# stderr says EXPECT, and neither pool changed.
refused() {
	_what=$1 _expect=$2
	shift 2
	_src=$(thins "$SRC") _dst=$(thins "$DST") _other=$(thins "$OTHER")
	_rc=0
	$KEY "$@" > "$DMT_TMP/rout" 2> "$DMT_TMP/rerr" || _rc=$?
	cat "$DMT_TMP/rerr" >&2
	dmt_assert_eq 2 "$_rc" "$_what: refused (exit 2)"
	dmt_assert_match "*$_expect*" "$(cat "$DMT_TMP/rerr")" "$_what: says why"
	dmt_assert_eq "$_src $_dst $_other" "$(thins "$SRC") $(thins "$DST") $(thins "$OTHER")" \
		"$_what: no pool changed"
}

echo "## 1. replicate --to through the key, full then incremental"
S1=$(snapshot)
R1=$(through --snap "$S1")
dmt_assert_eq "$(dmt_thin_sha src "$S1" "$VOL_SECTORS")" "$(dmt_thin_sha dst "$R1" "$VOL_SECTORS")" \
	"replica $R1 equals snapshot $S1"
dd if=/dev/urandom of="$(dmt_dev origin)" bs=1M count=1 seek=8 conv=fsync,notrunc 2>/dev/null
S2=$(snapshot)
R2=$(through --snap "$S2")
dmt_assert_match '*"base":'"$S1"'*' "$(cat "$DMT_TMP/out")" "the second is incremental from $S1"
dmt_assert_eq "$(dmt_thin_sha src "$S2" "$VOL_SECTORS")" "$(dmt_thin_sha dst "$R2" "$VOL_SECTORS")" \
	"replica $R2 equals snapshot $S2"

echo "## 2. what the key may not do"
refused "a shell" "this key runs only dmrepl receive" sh -c id
refused "a shell through dmrepl's name" "is not a dmrepl command line" "dmrepl receive --pool $DST; id"
refused "another pool" "pool $OTHER: this key may write only $DST" dmrepl receive --pool "$OTHER" < /dev/null
refused "receive --abort" "receive --abort: not an option this key may give" \
	dmrepl receive --abort --pool "$DST"
refused "a delete" "this key runs only dmrepl receive" dmsetup message "$DST" 0 "delete $R1"
refused "another state directory" "--state-dir /tmp: this key's is $STATE" \
	dmrepl receive --pool "$DST" --state-dir /tmp < /dev/null
# a stream that names another source
dmrepl send --pool "$SRC" --snap "$S2" --size "$VOL_BYTES" --source-name "elsewhere:pool" -q \
	> "$DMT_TMP/other.st" || dmt_fail "send of a stream from another source"
_dst=$(thins "$DST")
rc=0
$KEY dmrepl receive --pool "$DST" < "$DMT_TMP/other.st" > /dev/null 2> "$DMT_TMP/rerr" || rc=$?
cat "$DMT_TMP/rerr" >&2
dmt_assert_eq 1 "$rc" "a stream from another source is refused"
dmt_assert_match "*refused a stream from elsewhere:pool*" "$(cat "$DMT_TMP/rerr")" "and says whose it was"
dmt_assert_eq "$_dst" "$(thins "$DST")" "a stream from another source writes nothing"
# no command at all: an interactive login
rc=0
# (-T: no terminal to ask for; the server runs its forced command all the same)
dbclient -y -T -i "$DMT_TMP/keys/backup" -p "$DMT_SSH_PORT" root@127.0.0.1 < /dev/null \
	> "$DMT_TMP/rout" 2> "$DMT_TMP/rerr" || rc=$?
cat "$DMT_TMP/rout" "$DMT_TMP/rerr" >&2
[ "$rc" != 0 ] || dmt_fail "a login without a command succeeded"
dmt_assert_match "*no command: this key runs only dmrepl receive*" \
	"$(cat "$DMT_TMP/rout" "$DMT_TMP/rerr")" "a login without a command is refused, saying so"

echo "## 3. the key still replicates"
dd if=/dev/urandom of="$(dmt_dev origin)" bs=1M count=1 seek=2 conv=fsync,notrunc 2>/dev/null
S3=$(snapshot)
R3=$(through --snap "$S3")
dmt_assert_eq "$(dmt_thin_sha src "$S3" "$VOL_SECTORS")" "$(dmt_thin_sha dst "$R3" "$VOL_SECTORS")" \
	"replica $R3 equals snapshot $S3"
dmt_assert_eq "$(dmt_thin_sha src "$S1" "$VOL_SECTORS")" "$(dmt_thin_sha dst "$R1" "$VOL_SECTORS")" \
	"the first replica is untouched"
