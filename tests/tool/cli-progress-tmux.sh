#!/bin/sh
# The progress bar as an operator sees it, on a real terminal emulator:
# tmux runs dmrepl in a pane of a known width, and what the screen shows
# is read back with capture-pane (not the raw bytes written). The bar
# stays on one line within the width, redraws in place, reaches 100%,
# and a one-line summary follows; a pipeline on one terminal shows one
# bar; -q, and stderr that is not the terminal, show none.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"
command -v tmux >/dev/null 2>&1 || { echo "SKIP: tmux not installed"; exit 77; }

runs=0
trap 'for s in "$tmp"/tmux.*; do tmux -S "$s" kill-server 2>/dev/null; done; rm -rf "$tmp"' EXIT
case $DMREPL in /*) ;; *) DMREPL=$(pwd)/$DMREPL ;; esac

# 8 MiB at 2 MiB/s: about four seconds of bar.
head -c 8388608 /dev/urandom >"$tmp/src" || exit 99

# run WIDTH COMMAND: COMMAND in a fresh pane WIDTH columns wide; wait for
# it to end (at most 60 s); the screen is left in $tmp/screen.
run() {
	[ -n "${sock:-}" ] && tmux -S "$sock" kill-server 2>/dev/null
	runs=$((runs + 1))
	sock=$tmp/tmux.$runs	# a server of its own for each run
	tmux -S "$sock" -f /dev/null new-session -d -x "$1" -y 20 \
		"cd '$tmp' && $2; echo \"EXIT=\$?\"; sleep 600" || return 1
	i=0
	: >"$tmp/during"
	while [ $i -lt 600 ]; do
		tmux -S "$sock" capture-pane -p >"$tmp/screen" 2>/dev/null
		# keep every screen seen while it ran: the bar is drawn over
		grep -q '^EXIT=' "$tmp/screen" && return 0
		{ echo '--screen--'; cat "$tmp/screen"; } >>"$tmp/during"
		sleep 0.1
		i=$((i + 1))
	done
	echo "  (timed out)"
	return 1
}

# The bar: "copy ... NN% ..." (see tools/progress.c).
bar_re='^copy .*[0-9]\{1,3\}%'

run 100 "'$DMREPL' copy --bwlimit 2M src dst"
check "copy ran on the terminal" grep -qx 'EXIT=0' "$tmp/screen"
check "copy is exact" cmp -s "$tmp/src" "$tmp/dst"
check "a bar was seen while it ran" grep -q "$bar_re" "$tmp/during"
check "the bar was seen part-way" grep -q '^copy .* \([1-9]\|[1-9][0-9]\)%' "$tmp/during"
# at most 100 columns: the screen would have wrapped it onto two rows
check "the bar fits in 100 columns" sh -c "! grep '$bar_re' '$tmp/during' | awk 'length > 100' | grep -q ."
# redrawn in place: never two bar rows on one screen
check "one bar row on each screen" awk '/^--screen--$/ { if (n > 1) bad = 1; n = 0 }
	/^copy .*%/ { n++ } END { if (n > 1) bad = 1; exit bad }' "$tmp/during"
check "the last bar says 100%" grep -q '^copy .*100%' "$tmp/screen"
check "the bar names the operation once" grep -q '^copy  [0-9.]* [KMG]iB / 8.00 MiB ' "$tmp/screen"
check "the summary line follows" grep -q '^copied 8.00 MiB, discarded 0 B, zeroed 0 B in [0-9.]* s ([0-9.]* [KMG]*i*B/s)$' "$tmp/screen"
sed 's/^/  | /' "$tmp/screen" | grep -v '^  | $'

# A narrow terminal: the bar shrinks to fit, never wraps.
rm -f "$tmp/dst"
run 44 "'$DMREPL' copy --bwlimit 4M src dst"
check "narrow: ran" grep -qx 'EXIT=0' "$tmp/screen"
check "narrow: a bar was seen" grep -q "$bar_re" "$tmp/during"
check "narrow: within 44 columns" sh -c "! grep '$bar_re' '$tmp/during' | awk 'length > 44' | grep -q ."

# send | receive on one terminal: one bar between them.
rm -f "$tmp/dst"
truncate -s 8388608 "$tmp/dst" || exit 99
run 100 "'$DMREPL' send --device src | '$DMREPL' receive --device dst"
check "pipeline: ran" grep -qx 'EXIT=0' "$tmp/screen"
check "pipeline: the stream arrived whole" cmp -s "$tmp/src" "$tmp/dst"
# the last bar stays on the screen when the command ends
cat "$tmp/screen" >>"$tmp/during"
check "pipeline: a bar was seen" grep -q '^\(send\|receive\) .*%' "$tmp/during"
check "pipeline: drawn by one end only" test "$(sed -n 's/^\(send\|receive\) .*%.*/\1/p' "$tmp/during" | sort -u | wc -l)" -eq 1
sed 's/^/  | /' "$tmp/screen" | grep -v '^  | $'

# -q on the terminal, and stderr to a file: no bar, no summary.
rm -f "$tmp/dst"
run 100 "'$DMREPL' copy -q --bwlimit 8M src dst"
check "-q: ran" grep -qx 'EXIT=0' "$tmp/screen"
check "-q: no bar" sh -c "! grep -q '%' '$tmp/during' '$tmp/screen'"
check "-q: no summary" sh -c "! grep -q '^copied' '$tmp/screen'"
rm -f "$tmp/dst"
run 100 "'$DMREPL' copy --bwlimit 8M src dst 2>err"
check "stderr off the terminal: ran" grep -qx 'EXIT=0' "$tmp/screen"
check "stderr off the terminal: no bar on the screen" sh -c "! grep -q '%' '$tmp/during' '$tmp/screen'"
check "stderr off the terminal: nothing in the file" test ! -s "$tmp/err"

expect_done
