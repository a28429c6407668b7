#!/bin/sh
# dmrepl replicate --to: replication through a transport, the far side
# running dmrepl receive --negotiate. First through a pipe (--transport
# 'sh -c'), then through ssh to localhost: a dropbear server on loopback
# only, reached both with --transport 'dbclient ...' and through the
# default ssh:// path (an "ssh" on PATH that hands over to dbclient).
#
# Each step checks the sha256 of the replica against its source, and
# that the base was chosen without being named: the newest snapshot the
# far side holds. An interrupted receive is resumed by the next
# replicate --to on its own.
#
# dmrepl-timeout: 400
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin
dmt_require losetup blockdev sha256sum dmrepl dropbear dbclient dropbearkey

BLOCK=128
VOL_MIB=32
VOL_SECTORS=$((VOL_MIB * 2048))
VOL_BYTES=$((VOL_MIB * 1048576))
STATE=$DMT_TMP/remote-state
DMREPL=$(command -v dmrepl)

dmt_pool src "$(dmt_loop src-meta 8)" "$(dmt_loop src-data 96)" "$BLOCK"
dmt_pool dst "$(dmt_loop dst-meta 8)" "$(dmt_loop dst-data 256)" "$BLOCK"
dmt_thin src origin 1 "$VOL_SECTORS"
origin=$(dmt_dev origin)
SRC=$(dmt_name src)
DST=$(dmt_name dst)

thin_sha() { dmt_thin_sha "$1" "$2" "$VOL_SECTORS"; }

snapshot() { dmrepl snapshot --pool "$SRC" --origin 1; }

# to URL SNAP [OPTIONS...]: replicate, keep the JSON result in $DMT_TMP/out.
to() {
	_url=$1 _snap=$2
	shift 2
	echo "+ dmrepl replicate --snap $_snap --to $_url $*" >&2
	dmrepl replicate --pool "$SRC" --snap "$_snap" --size "$VOL_BYTES" \
		--to "$_url" --remote-dmrepl "$DMREPL" --remote-state-dir "$STATE" \
		--json "$@" > "$DMT_TMP/out" 2> "$DMT_TMP/err" ||
		{ cat "$DMT_TMP/out" "$DMT_TMP/err" >&2; dmt_fail "replicate $_snap --to $_url $* failed"; }
	cat "$DMT_TMP/err" >&2
	dmt_json_capture replicate "$DMT_TMP/out" 0
}

field() { sed -n "s/.*\"$1\":\\([0-9a-z]*\\).*/\\1/p" "$DMT_TMP/out" | tail -n 1; }

# check SNAP: the last result's replica holds exactly SNAP.
check() {
	_r=$(field replica)
	[ -n "$_r" ] || dmt_fail "no replica in the result: $(cat "$DMT_TMP/out")"
	dmt_assert_eq "$(thin_sha src "$1")" "$(thin_sha dst "$_r")" \
		"replica $_r equals source snapshot $1"
}

PIPE="ssh://this-host/$DST"

echo "+ data, snapshot 1" >&2
dd if=/dev/urandom of="$origin" bs=1M count=12 oflag=direct 2>/dev/null
S1=$(snapshot)
to "$PIPE" "$S1" --transport 'sh -c'
check "$S1"
dmt_assert_eq "" "$(field base_replica)" "the first replication is full"
r1=$(field replica)

dmt_write_blocks "$origin" 65536 B 3 4 100 300
dmt_discard_blocks "$origin" 65536 10 11
S2=$(snapshot)
to "$PIPE" "$S2" --transport 'sh -c' --compress
check "$S2"
dmt_assert_eq "$r1" "$(field base_replica)" "the base was found: the replica of $S1"
dmt_assert_eq "$S1" "$(field base)" "the base chosen is $S1"

# ---- ssh to localhost, loopback only ----
dmt_sshd
DBCLIENT=$DMT_DBCLIENT

dmt_write_blocks "$origin" 65536 C 0 5 200
S3=$(snapshot)
to "ssh://root@127.0.0.1/$DST" "$S3" --transport "$DBCLIENT root@127.0.0.1"
check "$S3"

# The default path: "ssh -o BatchMode=yes -- HOST CMD", here dbclient.
mkdir -p "$DMT_TMP/bin"
cat > "$DMT_TMP/bin/ssh" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do
	case \$1 in -o) shift 2 ;; --) shift; break ;; *) break ;; esac
done
echo "ssh \$*" >> "$DMT_TMP/ssh.log"
exec $DBCLIENT "\$@"
EOF
chmod +x "$DMT_TMP/bin/ssh"
dmt_write_blocks "$origin" 65536 D 7 8 9
S4=$(snapshot)
PATH=$DMT_TMP/bin:$PATH to "ssh://root@127.0.0.1/$DST" "$S4"
check "$S4"
dmt_assert_match "*root@127.0.0.1*receive*--negotiate*" "$(cat "$DMT_TMP/ssh.log")" \
	"the default transport is ssh to the URL's host"
r4=$(field replica)

# Asking again sends nothing.
to "ssh://root@127.0.0.1/$DST" "$S4" --transport "$DBCLIENT root@127.0.0.1"
dmt_assert_eq true "$(field already_replicated)" "a second replication sends nothing"
dmt_assert_eq "" "$(grep -i error "$DMT_TMP/err" || :)" "and logs no error on either side"

# --full sends everything, though a base is there.
dmt_write_blocks "$origin" 65536 H 6
S4=$(snapshot)
to "ssh://root@127.0.0.1/$DST" "$S4" --transport "$DBCLIENT root@127.0.0.1" --full
check "$S4"
dmt_assert_eq "" "$(field base_replica)" "--full sends a full stream"

# --chain: every snapshot in between becomes a replica.
dmt_write_blocks "$origin" 65536 E 1
S5=$(snapshot)
dmt_write_blocks "$origin" 65536 F 2
S6=$(snapshot)
dmt_write_blocks "$origin" 65536 G 3
S7=$(snapshot)
to "$PIPE" "$S7" --transport 'sh -c' --chain --base "$S4"
check "$S7"
dmt_assert_eq 3 "$(field streams)" "the chain carried three streams"
list=$(dmrepl replicas --to-pool "$DST" --state-dir "$STATE" --json)
for s in "$S5" "$S6"; do
	dmt_assert_match "*\"src_id\":$s,*" "$list" "snapshot $s has a replica"
done

# An interrupted receive: the next replicate --to resumes it.
dd if=/dev/urandom of="$origin" bs=1M count=8 seek=16 oflag=direct 2>/dev/null
S8=$(snapshot)
dmrepl send --pool "$SRC" --snap "$S8" --base "$S7" --size "$VOL_BYTES" \
	--source-name "$(hostname):$SRC" --checkpoint 1M -q |
	head -c 3000000 | dmrepl receive --pool "$DST" --state-dir "$STATE" -q &&
	dmt_fail "a truncated stream was received"
token=$(dmrepl receive --pool "$DST" --state-dir "$STATE" --resume-token)
[ -n "$token" ] || dmt_fail "no resume token after a truncated stream"
echo "# token: $token" >&2
# The token is bound to the stream's identity: the same snapshot under
# another source name (or size) is another stream, and is refused.
if dmrepl send --pool "$SRC" --resume "$token" --size "$VOL_BYTES" \
	--source-name other:pool -q > /dev/null 2> "$DMT_TMP/err"; then
	dmt_fail "a resume token was accepted for another stream"
fi
dmt_assert_match "*resume token is for another stream*" "$(cat "$DMT_TMP/err")" \
	"a token for another stream's identity is refused"
to "$PIPE" "$S8" --transport 'sh -c'
check "$S8"
dmt_assert_eq true "$(field resumed)" "the result says resumed"
dmt_assert_eq "" "$(dmrepl receive --pool "$DST" --state-dir "$STATE" --resume-token)" \
	"nothing left to resume"

# SIGTERM to replicate --to during the transfer: the job is cancelled
# (its transport stopped) and exits 143; the far side ends too, and the
# next replicate --to completes with an exact replica.
dd if=/dev/urandom of="$origin" bs=1M count=24 seek=8 oflag=direct 2>/dev/null
S8b=$(snapshot)
echo "+ dmrepl replicate --snap $S8b --to (SIGTERM)" >&2
dmrepl replicate --pool "$SRC" --snap "$S8b" --size "$VOL_BYTES" --to "$PIPE" \
	--transport 'sh -c' --remote-dmrepl "$DMREPL" --remote-state-dir "$STATE" \
	--json > "$DMT_TMP/out" 2> "$DMT_TMP/err" &
pid=$!
# Stop it once the far side has staged the stream (its state is local).
for _i in $(seq 100); do
	ls "$STATE"/*/staging-* >/dev/null 2>&1 && break
	sleep 0.1
done
ls "$STATE"/*/staging-* >/dev/null 2>&1 || dmt_fail "the far side never staged the stream"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$DMT_TMP/err" >&2
dmt_assert_eq 143 "$rc" "replicate --to exits 143 on SIGTERM"
sleep 1
dmt_assert_eq 0 "$(ps | grep -c '[r]eceive --pool')" "the far side's receive has ended"
to "$PIPE" "$S8b" --transport 'sh -c'
check "$S8b"
# Whether the far side was still receiving when the cancel reached it
# depends on timing here (it applies 24 MiB in well under a second):
# it kept a resumable staging, or it had committed. Either way the rerun
# ends with an exact replica; resuming itself is tested above and in
# stream-faults.sh.
echo "# the rerun resumed: $(field resumed); already there: $(field already_replicated)" >&2
dmt_assert_eq "" "$(dmrepl receive --pool "$DST" --state-dir "$STATE" --resume-token)" \
	"nothing left to resume after the rerun"
S8=$S8b

# A base replica that is open (mounted, in use) is refused, before any write.
r8=$(field replica)
dmt_create held "0 $VOL_SECTORS thin $(dmt_dev dst) $r8"
exec 7<"$(dmt_dev held)"
dmt_write_blocks "$origin" 65536 J 9
S9=$(snapshot)
before=$(dmrepl ls --pool "$DST" --no-headers | awk '{ print $1 }' | tr '\n' ' ')
if dmrepl send --pool "$SRC" --snap "$S9" --base "$S8" --size "$VOL_BYTES" \
	--source-name "$(hostname):$SRC" -q |
	dmrepl receive --pool "$DST" --state-dir "$STATE" -q 2> "$DMT_TMP/err"; then
	dmt_fail "a stream onto an open base replica was received"
fi
cat "$DMT_TMP/err" >&2
dmt_assert_match "*thin $r8*is open*" "$(cat "$DMT_TMP/err")" "the open base replica is named"
dmt_assert_eq "$before" "$(dmrepl ls --pool "$DST" --no-headers | awk '{ print $1 }' | tr '\n' ' ')" \
	"nothing was created in the destination"
exec 7<&-
dmt_remove held

dmt_assert_eq - "$(dmt_pool_held_root src)" "source metadata snapshot released"
dmt_assert_eq - "$(dmt_pool_held_root dst)" "destination metadata snapshot released"
dmt_assert_eq "" "$(dmt_dmrepl_devices)" "no dmrepl devices left"
dmt_sshd_stop
