#!/bin/sh
# dmrepl serve, the receive-only key, as far as a host without dm shows
# it: what the client asked (SSH_ORIGINAL_COMMAND) runs only if it is a
# receive into a pool the key's serve.d file names; a shell, another
# pool, another subcommand, an option it may not give, shell syntax, or
# no command at all are refused with exit 2 and a reason. And receive's
# --only-source, which serve sets, refuses a stream from another source
# before writing a byte (shown on a plain file).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

mkdir -p "$tmp/conf/serve.d"
printf '[serve]\npools = vg1/pool tank-tpool\nsources = db1:*\n' >"$tmp/conf/serve.d/db1.conf"

# asked NAME RC PATTERN COMMAND: the key db1 given COMMAND
asked() {
	name=$1 rc=$2 pattern=$3
	SSH_ORIGINAL_COMMAND=$4 expect "$name" "$rc" "$pattern" -- serve db1 -c "$tmp/conf"
}
asked "no command (a login)"   2 "^dmrepl serve: key db1: refused: no command: this key runs only dmrepl receive (no shell)$" ""
asked "a shell"                2 "^dmrepl serve: key db1: refused: 'sh -c id': this key runs only dmrepl receive$" "sh -c id"
asked "another subcommand"     2 "refused: 'dmrepl replicas --to-pool vg1/pool': this key runs only dmrepl receive$" "dmrepl replicas --to-pool vg1/pool"
asked "shell syntax"           2 "refused: 'dmrepl receive --pool vg1/pool; id' is not a dmrepl command line$" "dmrepl receive --pool vg1/pool; id"
asked "a substitution"         2 "is not a dmrepl command line$" "'dmrepl' 'receive' \$(id)"
asked "another pool"           2 "refused: pool vg2/pool: this key may write only vg1/pool, tank-tpool$" "dmrepl receive --pool vg2/pool"
asked "receive --abort"        2 "refused: receive --abort: not an option this key may give$" "dmrepl receive --abort --pool vg1/pool"
asked "receive --device"       2 "refused: receive --device: not an option this key may give$" "dmrepl receive --device /dev/sda"
asked "another state dir"      2 "refused: --state-dir /tmp: this key's is /var/lib/dmrepl$" "dmrepl receive --pool vg1/pool --state-dir /tmp"
asked "no pool"                2 "refused: receive without --pool$" "dmrepl receive --negotiate"
asked "a tag not a sync job's" 2 "refused: --tag mine: this key may give only a sync job's tag (dmrepl.sync:JOB)$" "dmrepl receive --pool vg1/pool --tag mine --keep 1"
asked "an empty job tag"       2 "refused: --tag dmrepl.sync:: this key may give only a sync job's tag" "dmrepl receive --pool vg1/pool --tag dmrepl.sync:"
asked "retention, no tag"      2 "^dmrepl receive: --keep goes with --tag: it keeps the replicas so tagged$" "dmrepl receive --pool vg1/pool --keep 3"
asked "retention of 0"         2 "^dmrepl receive: --keep: " "dmrepl receive --pool vg1/pool --tag dmrepl.sync:j --keep 0"
SSH_ORIGINAL_COMMAND="dmrepl receive --pool vg1/pool" expect "an unknown key" 2 \
	"refused: no $tmp/conf/serve.d/db2.conf$" -- serve db2 -c "$tmp/conf"
# allowed: it gets as far as the pool (which this host has not)
asked "allowed, as remote.c quotes it" 1 "vg1/pool" "'dmrepl' 'receive' '--pool' 'vg1/pool' '--negotiate'"
check "allowed: not refused" sh -c "! grep -q refused '$tmp/out'"
asked "a sync job's retention, allowed" 1 "vg1/pool" "'dmrepl' 'receive' '--pool' 'vg1/pool' '--negotiate' '--tag' 'dmrepl.sync:j' '--keep' '2'"
check "a sync job's retention: not refused" sh -c "! grep -q refused '$tmp/out'"

# --only-source on a device: the stream's source is host:file-of-mine
head -c 1048576 /dev/urandom >"$tmp/src"
"$DMREPL" send --device "$tmp/src" --source-name other:pool -q >"$tmp/st" 2>/dev/null ||
	{ echo "FAIL: send"; exit 1; }
truncate -s 1048576 "$tmp/dst"
"$DMREPL" receive --device "$tmp/dst" --only-source 'db1:*' -q <"$tmp/st" >/dev/null 2>"$tmp/err"
check "--only-source: another source exits 1" test $? -eq 1
check "--only-source: and says why" grep -qF \
	"refused a stream from other:pool: this key may send only the sources its configuration names (db1:*)" "$tmp/err"
check "--only-source: nothing written" cmp -s "$tmp/dst" /dev/zero -n 1048576
"$DMREPL" receive --device "$tmp/dst" --only-source 'db1:*' --only-source 'oth*:pool' -q \
	<"$tmp/st" >/dev/null 2>"$tmp/err"
check "--only-source: a matching pattern is taken" test $? -eq 0
check "--only-source: the stream arrived" cmp -s "$tmp/dst" "$tmp/src"

expect_done
