#!/bin/bash
# How long a killed dmrepl can leave a metadata snapshot record that the
# kernel has not caught up with (issue 10), against the kernel messages
# themselves, in the test VM: doc/architecture.md explains why these two
# windows are the only ones in which a later run could mistake another
# tool's snapshot for one dmrepl left.
#
# Usage: bench/metasnap-window.sh [--runs N] [--dmrepl PATH]
#
# Runs bench/metasnap-window-guest.sh in the VM: a pool whose metadata is
# plain, and one behind dm-delay (3 ms per I/O); N runs of `dmrepl ls
# --pool` each (default 40), timed by dmrepl's own debug lines. Prints
# min/median/max of each window and of each message, and the ratio of the
# median window to the median message.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
runs=40 dmrepl=$top/build/tools/dmrepl
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=${2:?}; shift 2 ;;
	--dmrepl) dmrepl=${2:?}; shift 2 ;;
	-h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The run count reaches the guest through the script itself.
sed "s/^RUNS=.*/RUNS=$runs/" "$here/metasnap-window-guest.sh" > "$work/metasnap-window-guest.sh"
"$top/tests/vm/run" --mode vm --out "$work/vm" --bin "$dmrepl" \
	"$work/metasnap-window-guest.sh" >&2 || { cat "$work/vm/"*.log >&2; exit 1; }
grep '^RESULT' "$work/vm/metasnap-window-guest.log" | sed 's/^RESULT //' | tee "$work/res"
awk '
	{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
	  m[f["delay"], f["what"]] = f["median"] }
	END {
		for (d = 0; d <= 3; d += 3) {
			printf "delay %d ms: reserve window %.2f%% of its message, release window %.2f%% of its message\n", d,
				m[d, "reserve_record_to_message_us"] / 10 / m[d, "reserve_message_ms"],
				m[d, "release_message_to_record_us"] / 10 / m[d, "release_message_ms"]
		}
	}' "$work/res"
