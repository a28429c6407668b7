# shellcheck shell=sh
# Helpers for dmrepl integration tests.  POSIX sh: runs under busybox ash in
# the test VM and under dash or bash on a host.  Source it from a test:
#
#   #!/bin/sh
#   set -eu
#   . "$(dirname "$0")/lib.sh"
#
# Every device-mapper device a test creates is named $DMREPL_TEST_PREFIX + the
# short name the test uses; backing files live in a scratch directory on tmpfs
# and are attached with losetup.  An EXIT/INT/TERM trap removes every device
# with the prefix, detaches the loop devices and deletes the scratch files, so
# a failed run leaves nothing behind.  Helpers that print a result (a path)
# keep their state in files, so they also work inside $(...).
#
# Environment (set by tests/vm/run; defaults allow running a test by hand):
#   DMREPL_TEST_PREFIX  device-name prefix (default dmrt<pid>-)
#   DMREPL_TMP          scratch directory on tmpfs (default: a new directory
#                       under /dev/shm, else $TMPDIR or /tmp)
#   DMREPL_TEST_NAME    name used in messages (default: script name)
#   DMREPL_TEST_SEED    seed of dmt_random (default: a fresh one); printed
#                       at the start, so that a run can be repeated exactly

DMT_NAME=${DMREPL_TEST_NAME:-$(basename "$0" .sh)}
DMT_PREFIX=${DMREPL_TEST_PREFIX:-dmrt$$-}
DMT_TMP=""
DMT_DMSETUP_OPTS=""

# ---------------------------------------------------------------- messages

dmt_log() { echo "# $*" >&2; }

# dmt_fail MESSAGE: fail the test.
dmt_fail() {
	echo "dmt: FAIL: $DMT_NAME: $*" >&2
	exit 1
}

# dmt_skip REASON: skip the test (exit 77).
dmt_skip() {
	echo "dmt: SKIP: $*" >&2
	exit 77
}

# dmt_run CMD ARGS...: log and run a command; fail the test if it fails.
dmt_run() {
	echo "+ $*" >&2
	"$@" || dmt_fail "command failed (exit $?): $*"
}

# ---------------------------------------------------------------- requirements

# dmt_require CMD...: skip unless every command is on PATH.
dmt_require() {
	for _c in "$@"; do
		command -v "$_c" >/dev/null 2>&1 || dmt_skip "$_c not found on PATH"
	done
}

dmt_require_root() {
	[ "$(id -u)" = 0 ] || dmt_skip "needs root"
}

# dmt_require_target TARGET...: skip unless device-mapper has the targets.
dmt_require_target() {
	dmt_require_root
	dmt_require dmsetup
	_targets=$(dmsetup targets 2>/dev/null) || dmt_skip "device-mapper is not available"
	for _t in "$@"; do
		echo "$_targets" | grep -q "^$_t " || dmt_skip "device-mapper target $_t is not available"
	done
}

# ---------------------------------------------------------------- assertions

# dmt_assert_eq EXPECTED ACTUAL WHAT
dmt_assert_eq() {
	if [ "$1" != "$2" ]; then
		echo "dmt: assertion failed: $3" >&2
		echo "  expected: $1" >&2
		echo "  actual:   $2" >&2
		dmt_fail "$3"
	fi
}

# dmt_assert_text_eq EXPECTED_TEXT ACTUAL_TEXT WHAT: compare multi-line text,
# showing a unified diff (expected -> actual) on mismatch.
dmt_assert_text_eq() {
	printf '%s\n' "$1" > "$DMT_TMP/expected.txt"
	printf '%s\n' "$2" > "$DMT_TMP/actual.txt"
	if ! cmp -s "$DMT_TMP/expected.txt" "$DMT_TMP/actual.txt"; then
		echo "dmt: assertion failed: $3" >&2
		echo "--- expected" >&2
		cat "$DMT_TMP/expected.txt" >&2
		echo "--- actual" >&2
		cat "$DMT_TMP/actual.txt" >&2
		echo "--- diff -u expected actual" >&2
		diff -u "$DMT_TMP/expected.txt" "$DMT_TMP/actual.txt" >&2 || :
		dmt_fail "$3"
	fi
}

# dmt_assert_match PATTERN ACTUAL WHAT: ACTUAL must match the shell pattern.
dmt_assert_match() {
	# shellcheck disable=SC2254 # PATTERN is a pattern on purpose
	case $2 in
	$1) ;;
	*)
		echo "dmt: assertion failed: $3" >&2
		echo "  expected to match: $1" >&2
		echo "  actual:            $2" >&2
		dmt_fail "$3"
		;;
	esac
}

# ---------------------------------------------------------------- JSON output

# dmt_json_capture CMDNAME FILE [RC]: copy FILE ("-": standard input), the
# --json output of a run of `dmrepl CMDNAME` that exited RC, into the test's
# log: a line "dmt-json CMDNAME LINE" for each of its lines, then
# "dmt-json-end CMDNAME [RC]". The guest has no python: on the host,
# tests/vm/check-json.sh validates them against the schemas of doc/schema.
dmt_json_capture() {
	awk -v c="$1" '{ print "dmt-json " c " " $0 }' "$2" >&2
	echo "dmt-json-end $1${3:+ $3}" >&2
}

# ---------------------------------------------------------------- scratch space

dmt__pick_tmp() {
	if [ -n "${DMREPL_TMP:-}" ]; then
		echo "$DMREPL_TMP"
	elif [ -d /dev/shm ] && [ -w /dev/shm ]; then
		echo /dev/shm
	else
		echo "${TMPDIR:-/tmp}"
	fi
}

# dmt_loop NAME SIZE_MIB: make a sparse backing file, attach it with losetup,
# print the loop device.
dmt_loop() {
	_file="$DMT_TMP/$1.img"
	truncate -s "$2M" "$_file" || dmt_fail "cannot create $_file"
	_loop=$(dmt__attach "$_file") || dmt_fail "cannot attach $_file to a loop device"
	echo "$_loop" >> "$DMT_TMP/.loops"
	echo "+ losetup $_loop $_file ($2 MiB)" >&2
	echo "$_loop"
}

# dmt__attach FILE: attach FILE to a free loop device and print it.  Uses
# util-linux's atomic "losetup -f --show" when available; busybox losetup
# lacks --show, so there: find a free device, attach, retry on a race.
dmt__attach() {
	if losetup --help 2>&1 | grep -q -e '--show'; then
		losetup -f --show "$1"
		return
	fi
	for _try in 1 2 3 4 5; do
		_dev=$(losetup -f) && losetup "$_dev" "$1" && { echo "$_dev"; return 0; }
		sleep 1
	done
	return 1
}

# ---------------------------------------------------------------- device-mapper

dmt_name() { echo "$DMT_PREFIX$1"; }
dmt_dev() { echo "/dev/mapper/$DMT_PREFIX$1"; }

# dmt_dmsetup ARGS...: dmsetup that does not wait for udev when none runs.
dmt_dmsetup() {
	# shellcheck disable=SC2086 # options are separate words
	dmsetup $DMT_DMSETUP_OPTS "$@"
}

# dmt_create NAME TABLE: create a device named with the prefix; wait for its node.
dmt_create() {
	dmt_run dmt_dmsetup create "$(dmt_name "$1")" --table "$2"
	dmt_dmsetup mknodes "$(dmt_name "$1")" >/dev/null 2>&1 || :
	[ -b "$(dmt_dev "$1")" ] || dmt_fail "$(dmt_dev "$1") did not appear"
}

# dmt_remove NAME
dmt_remove() {
	dmt_run dmt_dmsetup remove "$(dmt_name "$1")"
}

# dmt_message POOL MESSAGE
dmt_message() {
	dmt_run dmt_dmsetup message "$(dmt_name "$1")" 0 "$2"
}

# dmt_sectors DEV: size in 512-byte sectors.
dmt_sectors() { blockdev --getsz "$1"; }

# dmt_pool NAME METADATA_DEV DATA_DEV BLOCK_SECTORS [LOW_WATER_BLOCKS]:
# create a thin pool over fresh (zeroed) metadata.
dmt_pool() {
	dd if=/dev/zero of="$2" bs=4096 count=1 conv=notrunc,fsync 2>/dev/null ||
		dmt_fail "cannot zero metadata device $2"
	_len=$(dmt_sectors "$3")
	_len=$((_len / $4 * $4))
	dmt_create "$1" "0 $_len thin-pool $2 $3 $4 ${5:-0}"
}

# dmt_thin POOL NAME DEV_ID SECTORS: create thin device DEV_ID in the pool and
# activate it as NAME.
dmt_thin() {
	dmt_message "$1" "create_thin $3"
	dmt_thin_activate "$@"
}

# dmt_thin_activate POOL NAME DEV_ID SECTORS: activate an existing thin device.
dmt_thin_activate() {
	dmt_create "$2" "0 $4 thin $(dmt_dev "$1") $3"
}

# dmt_snap POOL ORIGIN_NAME SNAP_ID ORIGIN_ID: snapshot thin device ORIGIN_ID
# (active as ORIGIN_NAME, or "-" if not active) as SNAP_ID.  The active origin
# is suspended around create_snap and always resumed.
dmt_snap() {
	if [ "$2" = - ]; then
		dmt_message "$1" "create_snap $3 $4"
		return
	fi
	dmt_run dmt_dmsetup suspend "$(dmt_name "$2")"
	_rc=0
	echo "+ dmsetup message $(dmt_name "$1") 0 create_snap $3 $4" >&2
	dmt_dmsetup message "$(dmt_name "$1")" 0 "create_snap $3 $4" || _rc=$?
	dmt_run dmt_dmsetup resume "$(dmt_name "$2")"
	[ "$_rc" = 0 ] || dmt_fail "create_snap $3 $4 failed (exit $_rc)"
}

# dmt_thin_mapped POOL ID: the mapped blocks of thin ID of POOL (dmrepl ls).
dmt_thin_mapped() {
	dmrepl ls --pool "$(dmt_name "$1")" --no-headers -o id,blocks |
		awk -v id="$2" '$1 == id { print $2 }'
}

# dmt_check_replica DST SNAP REPLICA RATIO SECTORS [cache]: thin REPLICA
# of pool DST holds exactly what snapshot SNAP of pool src holds (sha256
# over SECTORS), and stays thin: as many mapped blocks (RATIO 1, the same
# block size), or, with blocks RATIO times the source's, a little more,
# never much more, never less.
dmt_check_replica() {
	_dmt_want=$(dmt_thin_sha src "$2" "$5" "${6:-}")
	_dmt_got=$(dmt_thin_sha "$1" "$3" "$5")
	dmt_assert_eq "$_dmt_want" "$_dmt_got" "sha256 of replica $3 in $1 equals source snapshot $2"
	_dmt_sm=$(dmt_thin_mapped src "$2")
	_dmt_dm=$(dmt_thin_mapped "$1" "$3")
	echo "# snapshot $2: $_dmt_sm mapped blocks; replica $3: $_dmt_dm blocks (x$4)" >&2
	if [ "$4" = 1 ]; then
		dmt_assert_eq "$_dmt_sm" "$_dmt_dm" "replica $3 maps as many blocks as snapshot $2"
		return
	fi
	[ $((_dmt_dm * $4)) -ge "$_dmt_sm" ] ||
		dmt_fail "replica $3 maps too little: $_dmt_dm x $4 < $_dmt_sm"
	[ $((_dmt_dm * $4)) -le $((_dmt_sm * 2 + 8 * $4)) ] ||
		dmt_fail "replica $3 is not thin: $_dmt_dm x $4 blocks for $_dmt_sm"
}

# dmt_thin_sha POOL ID SECTORS [cache]: the sha256 of thin ID of POOL,
# SECTORS long, mapped under a temporary name for the read. With
# "cache", a thin of pool "src" is hashed once per test (for snapshots
# that are never written after their first hash).
dmt_thin_sha() {
	if [ "${4:-}" = cache ] && [ "$1" = src ] && [ -f "$DMT_TMP/sha.$2" ]; then
		cat "$DMT_TMP/sha.$2"
		return
	fi
	dmt_create "sha-$1-$2" "0 $3 thin $(dmt_dev "$1") $2"
	_dmt_sum=$(sha256sum < "$(dmt_dev "sha-$1-$2")" | cut -d' ' -f1)
	dmt_remove "sha-$1-$2"
	[ "${4:-}" = cache ] && [ "$1" = src ] && echo "$_dmt_sum" > "$DMT_TMP/sha.$2"
	echo "$_dmt_sum"
}

dmt_reserve_metadata_snap() { dmt_message "$1" reserve_metadata_snap; }
dmt_release_metadata_snap() { dmt_message "$1" release_metadata_snap; }

# dmt_pool_status POOL: the target-specific part of the pool's status line:
# TRANSACTION USED/TOTAL_META USED/TOTAL_DATA HELD_ROOT MODE ...
dmt_pool_status() {
	_st=$(dmt_dmsetup status "$(dmt_name "$1")") || dmt_fail "dmsetup status $(dmt_name "$1") failed"
	echo "$_st" | awk '{ $1 = $2 = $3 = ""; sub(/^ +/, ""); print }'
}

# dmt_pool_held_root POOL: the held metadata root ("-" when none is reserved).
dmt_pool_held_root() { dmt_pool_status "$1" | awk '{ print $4 }'; }

# ---------------------------------------------------------------- lvm2

# dmt_lvm ARGS...: an lvm command: never a prompt (stdin is /dev/null).
dmt_lvm() {
	echo "+ lvm $*" >&2
	lvm "$@" < /dev/null || dmt_fail "lvm $* failed"
}

# dmt_vg NAME MIB: volume group $DMREPL_TEST_PREFIX+NAME on a new loop
# device of MIB MiB; removed (with its LVs) at the end of the test. Its
# LVs' dm names are "PREFIX--NAME-LV" (LVM doubles a VG name's dashes).
dmt_vg() {
	_dmt_pv=$(dmt_loop "pv-$1" "$2")
	dmt_lvm pvcreate -qq -y "$_dmt_pv"
	dmt_lvm vgcreate -qq "$(dmt_name "$1")" "$_dmt_pv"
	dmt_name "$1" >> "$DMT_TMP/.vgs"
}

# dmt_lv_dm VG LV: the dm name of LV in VG (VG as dmt_vg named it).
dmt_lv_dm() {
	echo "$(dmt_name "$1" | sed 's/-/--/g')-$(echo "$2" | sed 's/-/--/g')"
}

# dmt_lvm_thin_ids VG POOL: the thin_ids LVM records for the thin LVs of
# POOL, sorted.
dmt_lvm_thin_ids() {
	lvm lvs -a --noheadings --separator , -o pool_lv,thin_id "$(dmt_name "$1")" < /dev/null |
		awk -F, -v p="$2" '{ gsub(/ /, "") } $1 == p && $2 != "" { print $2 }' | sort -n
}

# dmt_lvm_pool_dm VG POOL: the dm name of a thin pool LV's thin-pool
# device: the "-tpool" layer once the pool has thin LVs, else the LV's.
dmt_lvm_pool_dm() {
	if dmsetup info "$(dmt_lv_dm "$1" "$2")-tpool" > /dev/null 2>&1; then
		echo "$(dmt_lv_dm "$1" "$2")-tpool"
	else
		dmt_lv_dm "$1" "$2"
	fi
}

# dmt_lv_sha VG LV: the sha256 of thin LV VG/LV (VG as given to dmt_vg),
# read through a dm device of its own on the LV's pool, as lvs names it:
# one lvs call, where activating the LV takes two lvchange calls.
dmt_lv_sha() {
	_dmt_f=$(lvm lvs --noheadings --separator , --units s --nosuffix \
		-o thin_id,lv_size,pool_lv "$(dmt_name "$1")/$2" < /dev/null | tr -d ' ') ||
		dmt_fail "lvs $(dmt_name "$1")/$2"
	_dmt_id=${_dmt_f%%,*}
	_dmt_f=${_dmt_f#*,}
	dmt_create "sha-$1-$2" "0 ${_dmt_f%%,*} thin /dev/mapper/$(dmt_lvm_pool_dm "$1" "${_dmt_f#*,}") $_dmt_id"
	_dmt_sum=$(sha256sum < "$(dmt_dev "sha-$1-$2")" | cut -d' ' -f1)
	dmt_remove "sha-$1-$2"
	echo "$_dmt_sum"
}

# dmt_kernel_thin_ids VG POOL: the thin ids in the kernel's metadata of
# POOL, read with thin_dump through a metadata snapshot held for it. When
# one is held already (a dmrepl that was killed left it), it may be older
# than the pool's thin devices: a copy of the live metadata is read
# instead (thin_dump opens a live device exclusively), taken with
# O_DIRECT just after `dmsetup status` made the pool commit (nothing else
# writes to the pool in the tests that call this).
dmt_kernel_thin_ids() {
	_dmt_tp=$(dmt_lvm_pool_dm "$1" "$2")
	_dmt_meta=/dev/mapper/$(dmt_lv_dm "$1" "$2")_tmeta
	_dmt_held=$(dmsetup status "$_dmt_tp" | awk '{ print $7 }')
	_dmt_rc=0
	if [ "$_dmt_held" = - ]; then
		dmsetup message "$_dmt_tp" 0 reserve_metadata_snap || dmt_fail "reserve on $_dmt_tp"
		thin_dump -m "$_dmt_meta" > "$DMT_TMP/.dump" 2> "$DMT_TMP/.dump.err" || _dmt_rc=$?
	else
		# (on a loop device: thin_dump reads with O_DIRECT, tmpfs has none)
		dd if="$_dmt_meta" of="$DMT_TMP/.meta" bs=1M iflag=direct 2>/dev/null ||
			dmt_fail "cannot copy $_dmt_meta"
		_dmt_l=$(losetup -f --show "$DMT_TMP/.meta") || dmt_fail "losetup of the copy"
		thin_dump "$_dmt_l" > "$DMT_TMP/.dump" 2> "$DMT_TMP/.dump.err" || _dmt_rc=$?
		losetup -d "$_dmt_l"
		rm -f "$DMT_TMP/.meta"
	fi
	if [ "$_dmt_held" = - ]; then
		dmsetup message "$_dmt_tp" 0 release_metadata_snap || dmt_fail "release on $_dmt_tp"
	fi
	[ "$_dmt_rc" = 0 ] || { cat "$DMT_TMP/.dump.err" >&2; dmt_fail "thin_dump of $_dmt_meta"; }
	sed -n 's/.*<device dev_id="\([0-9]*\)".*/\1/p' "$DMT_TMP/.dump" | sort -n
}

# dmt_lvm_invariant VG POOL WHAT: the thin devices in the kernel's
# metadata are exactly the thin LVs that lvs -a shows.
dmt_lvm_invariant() {
	dmt_assert_eq "$(dmt_lvm_thin_ids "$1" "$2" | tr '\n' ' ')" \
		"$(dmt_kernel_thin_ids "$1" "$2" | tr '\n' ' ')" \
		"$3: the kernel's thin ids are the thin_ids lvs shows"
}

# ---------------------------------------------------------------- ssh

# dmt_sshd: an ssh server (dropbear) on 127.0.0.1:$DMT_SSH_PORT only,
# letting root in with a key made here (added to root's authorized_keys,
# where a test running alongside adds its own); stopped at the end of the
# test (or by dmt_sshd_stop). Sets DMT_DBCLIENT, the client command
# without the host. The port is 2221 + the harness's lane: one server each.
DMT_SSH_PORT=$((2221 + ${DMREPL_TEST_LANE:-1}))
dmt_sshd() {
	_dmt_k=$DMT_TMP/keys
	mkdir -p "$_dmt_k" /root/.ssh
	chmod 700 /root/.ssh
	dropbearkey -t ed25519 -f "$_dmt_k/host" >/dev/null 2>&1
	dropbearkey -t ed25519 -f "$_dmt_k/id" 2>/dev/null | grep '^ssh-ed25519' >> /root/.ssh/authorized_keys
	chmod 600 /root/.ssh/authorized_keys
	grep -q '^root:' /etc/passwd 2>/dev/null || echo 'root:x:0:0:root:/root:/bin/sh' >> /etc/passwd
	ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
	dropbear -r "$_dmt_k/host" -p "127.0.0.1:$DMT_SSH_PORT" -s -P "$DMT_TMP/.sshd.pid" ||
		dmt_fail "dropbear did not start"
	DMT_DBCLIENT="dbclient -y -i $_dmt_k/id -p $DMT_SSH_PORT"
	_dmt_i=0
	until $DMT_DBCLIENT root@127.0.0.1 true 2>/dev/null; do
		_dmt_i=$((_dmt_i + 1))
		[ "$_dmt_i" -le 50 ] || dmt_fail "ssh to 127.0.0.1:$DMT_SSH_PORT does not work"
		sleep 0.1
	done
}

dmt_sshd_stop() {
	if [ -f "$DMT_TMP/.sshd.pid" ]; then kill "$(cat "$DMT_TMP/.sshd.pid")" 2>/dev/null || :; fi
	rm -f "$DMT_TMP/.sshd.pid"
}

# ---------------------------------------------------------------- data

# dmt__pattern BYTES CHAR: path of a file of BYTES copies of CHAR.
dmt__pattern() {
	_p="$DMT_TMP/pattern.$1.$2"
	if [ ! -f "$_p" ]; then
		dd if=/dev/zero bs="$1" count=1 2>/dev/null | tr '\000' "$2" > "$_p"
	fi
	echo "$_p"
}

# dmt_write_blocks DEV BLOCK_BYTES CHAR BLOCK...: fill each listed block of DEV
# with CHAR, with O_DIRECT and fsync so the pool sees it at once.
dmt_write_blocks() {
	_dev=$1 _bs=$2 _ch=$3
	shift 3
	_pat=$(dmt__pattern "$_bs" "$_ch")
	echo "+ write '$_ch' to blocks $* of $_dev (block size $_bs)" >&2
	for _b in "$@"; do
		dd if="$_pat" of="$_dev" bs="$_bs" seek="$_b" count=1 \
			oflag=direct conv=notrunc,fsync 2>/dev/null ||
			dmt_fail "write of block $_b of $_dev failed"
	done
}

# dmt_discard_blocks DEV BLOCK_BYTES BLOCK...: discard whole blocks of DEV.
dmt_discard_blocks() {
	_dev=$1 _bs=$2
	shift 2
	echo "+ discard blocks $* of $_dev (block size $_bs)" >&2
	for _b in "$@"; do
		blkdiscard -o $((_b * _bs)) -l "$_bs" "$_dev" ||
			dmt_fail "discard of block $_b of $_dev failed"
	done
}

# dmt_assert_blocks DEV BLOCK_BYTES CHAR BLOCK...: each block holds only CHAR.
dmt_assert_blocks() {
	_dev=$1 _bs=$2 _ch=$3
	shift 3
	_pat=$(dmt__pattern "$_bs" "$_ch")
	for _b in "$@"; do
		dd if="$_dev" of="$DMT_TMP/block" bs="$_bs" skip="$_b" count=1 \
			iflag=direct 2>/dev/null || dmt_fail "read of block $_b of $_dev failed"
		if ! cmp -s "$_pat" "$DMT_TMP/block"; then
			echo "dmt: assertion failed: block $_b of $_dev should be all '$_ch'" >&2
			echo "  first bytes: $(head -c 16 "$DMT_TMP/block" | od -An -c | tr -s ' ')" >&2
			dmt_fail "block $_b of $_dev has the wrong content"
		fi
	done
}

# ---------------------------------------------------------------- cleanup

# dmt__devices: names of existing devices with our prefix.
dmt__devices() {
	dmsetup info -c --noheadings -o name 2>/dev/null | while read -r _n; do
		case $_n in "$DMT_PREFIX"*) echo "$_n" ;; esac
	done
}

# dmt__suspended: names of our devices that are suspended.
dmt__suspended() {
	dmsetup info -c --noheadings -o name,suspended --separator ' ' 2>/dev/null |
		while read -r _n _s; do
			case $_n in "$DMT_PREFIX"*) [ "$_s" = Suspended ] && echo "$_n" ;; esac
		done
}

# dmt__resume_all: resume our suspended devices, each only once none of
# the devices it stands on is suspended: a thin device resumed before its
# suspended pool would block for ever.
dmt__resume_all() {
	_pass=0
	_susp=$(dmt__suspended)
	while [ -n "$_susp" ] && [ $_pass -lt 8 ]; do
		for _n in $_susp; do
			_blocked=0
			for _d in $(dmsetup deps -o devname "$_n" 2>/dev/null |
					sed -n 's/.*: *//p' | tr -d '()'); do
				case " $(echo $_susp) " in *" $_d "*) _blocked=1 ;; esac
			done
			[ $_blocked = 0 ] && dmt_dmsetup resume "$_n" >/dev/null 2>&1
		done
		_susp=$(dmt__suspended)
		_pass=$((_pass + 1))
	done
}

# dmt_background PID: a process of the test's (a writer) that the
# teardown kills first, so that nothing holds a device the test made.
dmt_background() { echo "$1" >> "$DMT_TMP/.pids"; }

# dmt__teardown: remove everything this run made; non-zero if anything stayed.
dmt__teardown() {
	_bad=0
	dmt_sshd_stop
	if [ -f "$DMT_TMP/.pids" ]; then
		while read -r _p; do kill -9 "$_p" 2>/dev/null || :; done < "$DMT_TMP/.pids"
		sleep 0.2
	fi
	if [ -f "$DMT_TMP/.vgs" ]; then
		while read -r _vg; do
			lvm vgremove -ff -y -qq "$_vg" < /dev/null > /dev/null 2>&1 || :
		done < "$DMT_TMP/.vgs"
	fi
	_devs=$(dmt__devices)
	dmt__resume_all
	# Thin devices must go before their pool: retry until nothing is left.
	_pass=0
	while [ -n "$_devs" ] && [ $_pass -lt 5 ]; do
		for _n in $_devs; do
			dmt_dmsetup remove "$_n" >/dev/null 2>&1 || :
		done
		_devs=$(dmt__devices)
		_pass=$((_pass + 1))
	done
	for _n in $_devs; do
		dmt_dmsetup remove --force "$_n" >/dev/null 2>&1 || :
	done
	_devs=$(dmt__devices)
	if [ -n "$_devs" ]; then
		echo "dmt: cleanup: could not remove: $(echo "$_devs" | tr '\n' ' ')" >&2
		_bad=1
	fi
	if [ -f "$DMT_TMP/.loops" ]; then
		while read -r _l; do
			losetup -d "$_l" 2>/dev/null || {
				echo "dmt: cleanup: could not detach $_l" >&2
				_bad=1
			}
		done < "$DMT_TMP/.loops"
		# A loop device open elsewhere (an lvm command of another lane
		# scanning every disk) is only marked to go when it is closed:
		# wait for that, a moment.
		while read -r _l; do
			_i=0
			while losetup "$_l" 2> /dev/null | grep -qF "$DMT_TMP/" && [ $_i -lt 50 ]; do
				sleep 0.1
				_i=$((_i + 1))
			done
		done < "$DMT_TMP/.loops"
	fi
	rm -rf "$DMT_TMP"
	return $_bad
}

dmt__on_exit() {
	_status=$?
	trap - EXIT INT TERM
	set +e
	if ! dmt__teardown; then
		echo "dmt: cleanup left things behind" >&2
		[ "$_status" = 0 ] && _status=1
	fi
	exit "$_status"
}

# ---------------------------------------------------------------- time

# dmt_now: seconds since boot; dmt_elapsed: seconds since the test began.
dmt_now() { cut -d' ' -f1 /proc/uptime; }
dmt_elapsed() { awk -v a="$DMT_T0" -v b="$(dmt_now)" 'BEGIN { printf "%.1f", b - a }'; }

# dmt_dmrepl_devices: dmrepl's own dm devices (dmrepl-*) on this test's
# pools (those named $DMREPL_TEST_PREFIX..., or an LVM VG's so named),
# space-separated. Another test's, running alongside (tests/vm/run
# --jobs), are not this test's business.
dmt_dmrepl_devices() {
	dmsetup info -c --noheadings --separator ' ' -o major,minor,name 2>/dev/null > "$DMT_TMP/.dminfo"
	dmsetup table 2>/dev/null | awk -v p="$DMT_PREFIX" -v q="$(echo "$DMT_PREFIX" | sed 's/-/--/g')" '
		FILENAME != "-" { own[$1 ":" $2] = index($3, p) == 1 || index($3, q) == 1; next }
		{ name = $1; sub(/:$/, "", name) }
		index(name, "dmrepl-") != 1 { next }
		{ for (i = 2; i <= NF; i++) if (($i in own) && own[$i]) { printf "%s ", name; next } }
	' "$DMT_TMP/.dminfo" -
}

# dmt_no_dmrepl_devices WHAT: none of dmt_dmrepl_devices is left.
dmt_no_dmrepl_devices() {
	dmt_assert_eq "" "$(dmt_dmrepl_devices)" "$1: no dmrepl devices left"
}

# ---------------------------------------------------------------- random

# dmt_random MAX: a number in [0, MAX), MAX <= 2^30, from the test's own
# generator, seeded by DMREPL_TEST_SEED and the test's name. The state is
# kept in a file, so that it also advances inside $(...).
dmt_random() {
	_s=$(cat "$DMT_TMP/.rng")
	_s=$(( (_s * 1103515245 + 12345) % 2147483648 ))
	_t=$(( (_s * 1103515245 + 12345) % 2147483648 ))
	echo "$_t" > "$DMT_TMP/.rng"
	echo $(( ((_s / 65536) * 32768 + _t / 65536) % $1 ))
}

# ---------------------------------------------------------------- setup

dmt__setup() {
	if [ -S /run/udev/control ]; then
		DMT_DMSETUP_OPTS=""
	else
		# No udev: libdevmapper creates /dev/mapper nodes itself.
		DM_DISABLE_UDEV=1
		export DM_DISABLE_UDEV
		DMT_DMSETUP_OPTS="--noudevsync"
	fi
	_base=$(dmt__pick_tmp)
	mkdir -p "$_base"
	DMT_TMP=$(mktemp -d "$_base/dmt.XXXXXX") || dmt_fail "cannot create a scratch directory in $_base"
	DMT_T0=$(dmt_now)
	DMT_SEED=${DMREPL_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
	_h=$(printf '%s' "$DMT_NAME" | od -An -tu1 |
		awk '{ for (i = 1; i <= NF; i++) h = (h * 31 + $i) % 2147483648 } END { print h + 0 }')
	echo $(( (DMT_SEED + _h) % 2147483648 )) > "$DMT_TMP/.rng"
	echo "# seed $DMT_SEED (rerun with DMREPL_TEST_SEED=$DMT_SEED)" >&2
	trap dmt__on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

dmt__setup
