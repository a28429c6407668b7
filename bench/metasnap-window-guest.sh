#!/bin/sh
# The guest side of bench/metasnap-window.sh: how long the windows of the
# metadata snapshot protocol are, next to the kernel messages they
# surround. For each metadata delay (DELAYS, ms per metadata I/O through
# dm-delay), RUNS runs of `dmrepl ls --pool` with DMREPL_LOG=debug, whose
# lines "reserve window" and "release window" give, per run:
#   reserve record->message  from the RESERVING record's write (and
#                            fsync) to reserve_metadata_snap being sent:
#                            a kill here leaves the record and no root
#   reserve message          the kernel's reserve_metadata_snap
#   release message          the kernel's release_metadata_snap
#   release message->record  from its return to the NONE record: a kill
#                            here leaves RELEASING and no root
# Prints "RESULT delay=MS what=... min=... median=... max=... n=..." lines.
# dmrepl-timeout: 600
set -eu
. "$(dirname "$0")/lib.sh"

dmt_require_target thin-pool thin delay
dmt_require dmrepl awk
RUNS=${RUNS:-40}
DMREPL_LOCK_DIR=$DMT_TMP/locks
export DMREPL_LOCK_DIR

for delay in 0 3; do
	l=$(dmt_loop "meta$delay" 8)
	dmt_create "meta$delay" "0 $(dmt_sectors "$l") delay $l 0 $delay"
	dmt_pool "pool$delay" "$(dmt_dev "meta$delay")" "$(dmt_loop "data$delay" 64)" 128
	dmt_thin "pool$delay" "thin$delay" 1 65536
	dd if=/dev/zero of="$(dmt_dev "thin$delay")" bs=1M count=8 oflag=direct 2>/dev/null
	: > "$DMT_TMP/win"
	n=0
	while [ "$n" -lt "$RUNS" ]; do
		DMREPL_LOG=debug dmrepl ls --pool "$(dmt_name "pool$delay")" 2>&1 >/dev/null |
			grep window >> "$DMT_TMP/win" || :
		n=$((n + 1))
	done
	awk -v d="$delay" '
		function num(w,   i) { for (i = 1; i <= NF; i++) if ($i == w) return $(i - 1) }
		/reserve window/ { a[na++] = num("us"); b[nb++] = num("ms") }
		/release window/ { c[nc++] = num("ms,"); e[ne++] = num("us") }
		function put(x, n, what,   i, j, t) {
			for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (x[j] + 0 < x[i] + 0) { t = x[i]; x[i] = x[j]; x[j] = t }
			printf "RESULT delay=%s what=%s min=%s median=%s max=%s n=%d\n", d, what, x[0], x[int(n / 2)], x[n - 1], n
		}
		END {
			put(a, na, "reserve_record_to_message_us")
			put(b, nb, "reserve_message_ms")
			put(c, nc, "release_message_ms")
			put(e, ne, "release_message_to_record_us")
		}' "$DMT_TMP/win"
	dmt_remove "thin$delay"
done
