#!/bin/sh
# dmrepl-timeout: 240
# dmrepl delta --pool on a live pool: under concurrent writes, interrupted,
# racing another dmrepl or another tool, and killed.
#
#  1. While a writer rewrites and maps random blocks of the origin, 20 runs
#     of dmrepl delta --pool on two snapshots (which nothing writes) all
#     print what thin_delta -m printed before the writer started, and each
#     run leaves no metadata snapshot held.
#  2. With every metadata read slowed down (a dm-delay target between the
#     pool and its metadata loop device), a run interrupted by SIGTERM or
#     SIGINT once it holds the snapshot exits 143 or 130, says it was
#     interrupted, and leaves no metadata snapshot held: reading one block
#     at a time (DMREPL_READAHEAD=off), and once more with read-ahead,
#     its reads in flight when the signal comes.
#  3. While one run holds the pool, a second fails (exit 1) naming the
#     pool and the first run's pid; the first still prints the right delta.
#  4. With a metadata snapshot reserved by hand (dmsetup), a run fails
#     (exit 1) with the release_metadata_snap hint and leaves it held.
#  5. A run killed with SIGKILL leaves its snapshot held; the next run
#     releases it with a warning, succeeds, and leaves none held.
#
# Layout (64 KiB blocks, 1 GiB origin, a zero target as data): the origin
# (0) maps blocks 0-5999; snapshot 1 is taken; every other block of 0-5999
# is rewritten (one dd through a linear map of those blocks); snapshot 2
# is taken. The delta 1 -> 2 has 6000 runs and reads every leaf of both.
set -eu
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin linear zero delay
dmt_require losetup blockdev thin_delta dmrepl awk

BLOCK_SECTORS=128
BLOCK_BYTES=$((BLOCK_SECTORS * 512))
THIN_BLOCKS=16384
THIN_SECTORS=$((THIN_BLOCKS * BLOCK_SECTORS))
DELAY_MS=100                    # per metadata read, in step 2 and after

# The lock files go to scratch space, not the host's /var/lib/dmrepl.
DMREPL_RUN_DIR="$DMT_TMP/run"
DMREPL_LOCK_DIR="$DMT_TMP/locks"
export DMREPL_RUN_DIR DMREPL_LOCK_DIR

pool=$(dmt_name pool)
lockfile="$DMREPL_LOCK_DIR/$pool.lock"
writer_pid="" bg_pid="" bg_rc=""

# ---------------------------------------------------------------- helpers

phase() { echo "## $1 (uptime $(cut -d' ' -f1 /proc/uptime) s)"; }

# map DEV FIRST COUNT: write COUNT blocks from block FIRST in one dd.
map() {
	echo "+ write blocks $2-$(($2 + $3 - 1)) of $1" >&2
	dd if=/dev/zero of="$1" bs="$BLOCK_BYTES" seek="$2" count="$3" \
		oflag=direct conv=notrunc 2>/dev/null || dmt_fail "cannot write blocks $2+$3 of $1"
}

# meta_table TABLE: swap the table under the pool's metadata device.
meta_table() {
	dmt_run dmt_dmsetup suspend "$(dmt_name meta)"
	dmt_run dmt_dmsetup reload "$(dmt_name meta)" --table "$1"
	dmt_run dmt_dmsetup resume "$(dmt_name meta)"
}

held() { dmt_pool_held_root pool; }

# delta_bg: start dmrepl delta --pool 1 -> 2 in the background ($bg_pid),
# output in $DMT_TMP/bg.out and bg.err.
delta_bg() {
	dmrepl delta --pool "$pool" --snap1 1 --snap2 2 > "$DMT_TMP/bg.out" 2> "$DMT_TMP/bg.err" &
	bg_pid=$!
	echo "+ dmrepl delta --pool $pool --snap1 1 --snap2 2 & (pid $bg_pid)" >&2
}

# wait_bg: wait for the background run; its exit status goes to $bg_rc.
wait_bg() {
	bg_rc=0
	wait "$bg_pid" || bg_rc=$?
	bg_pid=""
}

# wait_reserved PID: until the lock record shows PID holding a reserved
# metadata snapshot, so the run is past its reservation and walking.
wait_reserved() {
	_i=0
	until grep -q "state=reserved owner=$1 " "$lockfile" 2>/dev/null; do
		kill -0 "$1" 2>/dev/null || dmt_fail "dmrepl (pid $1) ended before it reserved"
		_i=$((_i + 1))
		[ $_i -le 200 ] || dmt_fail "dmrepl (pid $1) did not reserve within 20 s"
		sleep 0.1
	done
	[ "$(held)" != - ] || dmt_fail "the lock record says reserved, the pool holds nothing"
}

# interrupt SIGNAL STATUS: a run interrupted mid-walk by SIGNAL exits
# STATUS, says so, and releases the metadata snapshot.
interrupt() {
	delta_bg
	wait_reserved "$bg_pid"
	sleep 1
	dmt_run kill -"$1" "$bg_pid"
	wait_bg
	cat "$DMT_TMP/bg.err"
	dmt_assert_eq "$2" "$bg_rc" "exit status after SIG$1"
	dmt_assert_match "*interrupted*" "$(cat "$DMT_TMP/bg.err")" "SIG$1: says it was interrupted"
	if grep -q '</superblock>' "$DMT_TMP/bg.out"; then
		dmt_fail "SIG$1 came after the delta was complete: make the walk slower"
	fi
	dmt_assert_eq - "$(held)" "no metadata snapshot held after SIG$1"
}

stop_writer() {
	[ -n "$writer_pid" ] || return 0
	: > "$DMT_TMP/stop"
	wait "$writer_pid" || dmt_fail "the writer failed"
	writer_pid=""
}

# On the way out (lib.sh's INT and TERM traps exit too), stop what runs
# in the background, then hand over to lib.sh's teardown with the status.
on_exit() {
	_rc=$?
	set +e
	if [ -n "$bg_pid" ]; then
		kill -TERM "$bg_pid" 2>/dev/null
		wait "$bg_pid" 2>/dev/null
	fi
	if [ -n "$writer_pid" ]; then
		: > "$DMT_TMP/stop"
		wait "$writer_pid" 2>/dev/null
	fi
	(exit "$_rc")
	dmt__on_exit
}
trap on_exit EXIT

# ---------------------------------------------------------------- build

phase "start"
meta_loop=$(dmt_loop meta 16)
meta_sectors=$(dmt_sectors "$meta_loop")
dmt_create meta "0 $meta_sectors linear $meta_loop 0"
meta=$(dmt_dev meta)
dmt_create data "0 $((65536 * BLOCK_SECTORS)) zero"
dmt_pool pool "$meta" "$(dmt_dev data)" "$BLOCK_SECTORS"
dmt_thin pool origin 0 "$THIN_SECTORS"
origin=$(dmt_dev origin)

map "$origin" 0 6000
dmt_snap pool origin 1 0
awk -v dev="$origin" -v bs="$BLOCK_SECTORS" 'BEGIN { for (i = 0; i < 3000; i++)
	printf "%d %d linear %s %d\n", i * bs, bs, dev, 2 * i * bs }' > "$DMT_TMP/even.table"
dmt_run dmt_dmsetup create "$(dmt_name even)" "$DMT_TMP/even.table"
dmt_dmsetup mknodes "$(dmt_name even)" >/dev/null 2>&1 || :
map "$(dmt_dev even)" 0 3000
dmt_remove even
dmt_snap pool origin 2 0

dmt_reserve_metadata_snap pool
blockdev --flushbufs "$meta"       # thin_delta reads through the page cache
expected=$(thin_delta -m --snap1 1 --snap2 2 "$meta") || dmt_fail "thin_delta -m failed"
got=$(dmrepl delta -m --snap1 1 --snap2 2 "$meta") || dmt_fail "dmrepl delta -m failed"
dmt_release_metadata_snap pool
dmt_assert_text_eq "$expected" "$got" "dmrepl delta -m 1 -> 2 equals thin_delta -m"
runs=$(echo "$expected" | grep -c '^    <')
dmt_assert_eq 6000 "$runs" "runs in the delta 1 -> 2"
phase "built: $runs runs from snapshot 1 to 2"

# ---------------------------------------------------------------- 1. writes

(
	trap - EXIT INT TERM
	x=1 n=0
	while [ ! -e "$DMT_TMP/stop" ]; do
		x=$(((x * 1103515245 + 12345) % 2147483648))
		dd if=/dev/zero of="$origin" bs="$BLOCK_BYTES" seek=$((x % THIN_BLOCKS)) \
			count=1 oflag=direct conv=notrunc 2>/dev/null || exit 1
		n=$((n + 1))
	done
	echo "$n" > "$DMT_TMP/writes"
) &
writer_pid=$!

used_before=$(dmt_pool_status pool | awk '{ print $3 }')
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
	got=$(dmrepl delta --pool "$pool" --snap1 1 --snap2 2) ||
		dmt_fail "dmrepl delta --pool failed (run $i)"
	dmt_assert_text_eq "$expected" "$got" "run $i under writes equals thin_delta -m"
	dmt_assert_eq - "$(held)" "no metadata snapshot held after run $i"
done
used_after=$(dmt_pool_status pool | awk '{ print $3 }')
stop_writer
echo "20 runs under writes matched; the writer wrote $(cat "$DMT_TMP/writes") blocks;" \
	"data blocks used went from $used_before to $used_after"
[ "$used_before" != "$used_after" ] || dmt_fail "the writer mapped no new block during the runs"
phase "runs under writes done"

# ---------------------------------------------------------------- 2. signals

meta_table "0 $meta_sectors delay $meta_loop 0 $DELAY_MS $meta_loop 0 0"
# Read-ahead (lib/readahead.c) would end this walk in a few round trips,
# before a signal or a second run could meet it: from here on, one
# metadata read at a time, except in the interruption below.
DMREPL_READAHEAD=off
export DMREPL_READAHEAD
interrupt TERM 143
interrupt INT 130
# With read-ahead, reads are in flight when the signal comes: slow each
# to a second so that the walk is still going; the run must still wait
# for them, release the snapshot and exit.
meta_table "0 $meta_sectors delay $meta_loop 0 1000 $meta_loop 0 0"
DMREPL_READAHEAD=uring
interrupt TERM 143
DMREPL_READAHEAD=off
meta_table "0 $meta_sectors delay $meta_loop 0 $DELAY_MS $meta_loop 0 0"
phase "interrupted runs done"

# ---------------------------------------------------------------- 3. a second run

delta_bg
first=$bg_pid
wait_reserved "$first"
rc=0
dmrepl delta --pool "$pool" --snap1 1 --snap2 2 > "$DMT_TMP/out" 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err"
dmt_assert_eq 1 "$rc" "a second dmrepl delta --pool while one runs"
dmt_assert_match "*$pool*pid $first*" "$(cat "$DMT_TMP/err")" \
	"the message names the pool and the pid of the run that holds it"
wait_bg
dmt_assert_eq 0 "$bg_rc" "the first run, once the second gave up"
dmt_assert_text_eq "$expected" "$(cat "$DMT_TMP/bg.out")" "the first run's delta"
dmt_assert_eq - "$(held)" "no metadata snapshot held after both"
phase "concurrent run done"

# ---------------------------------------------------------------- 4. another tool

dmt_reserve_metadata_snap pool
root=$(held)
rc=0
dmrepl delta --pool "$pool" --snap1 1 --snap2 2 > "$DMT_TMP/out" 2> "$DMT_TMP/err" || rc=$?
cat "$DMT_TMP/err"
dmt_assert_eq 1 "$rc" "dmrepl delta --pool with a snapshot reserved by dmsetup"
dmt_assert_match "*dmsetup message $pool 0 release_metadata_snap*" "$(cat "$DMT_TMP/err")" \
	"the message says how to release it"
dmt_assert_eq "$root" "$(held)" "the other tool's snapshot is still held"
dmt_release_metadata_snap pool
dmt_assert_eq - "$(held)" "released by hand"

# ---------------------------------------------------------------- 5. SIGKILL

delta_bg
killed=$bg_pid
wait_reserved "$killed"
sleep 1
dmt_run kill -KILL "$killed"
wait_bg
dmt_assert_eq 137 "$bg_rc" "exit status after SIGKILL"
[ "$(held)" != - ] || dmt_fail "the killed run's metadata snapshot is not held"
meta_table "0 $meta_sectors linear $meta_loop 0"
rc=0
got=$(dmrepl delta --pool "$pool" --snap1 1 --snap2 2 2> "$DMT_TMP/err") || rc=$?
cat "$DMT_TMP/err"
dmt_assert_eq 0 "$rc" "the run after a killed one"
dmt_assert_match "*warning*$killed*" "$(cat "$DMT_TMP/err")" \
	"it warns that it releases the killed run's snapshot"
dmt_assert_text_eq "$expected" "$got" "the run after a killed one prints the delta"
dmt_assert_eq - "$(held)" "no metadata snapshot held at the end"
phase "done"
