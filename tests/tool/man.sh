#!/bin/sh
# The manual pages render without a single troff warning (a line it
# cannot break or adjust, an unknown macro, a bad escape), at the width
# man(1) uses on an 80-column terminal.
set -u

build=$(cd "$(dirname "${DMREPL:-tools/dmrepl}")/.." && pwd)
command -v groff >/dev/null 2>&1 || { echo "SKIP: groff not found (install groff-base)"; exit 77; }

failures=0
for page in "$build/doc/dmrepl.8" "$build/doc/dmrepl.conf.5" "$build/doc/libdmrepl.3"; do
	if [ ! -s "$page" ]; then
		echo "FAIL $page: not built"
		failures=$((failures + 1))
		continue
	fi
	warnings=$(groff -man -Tutf8 -ww -rLL=78n -z "$page" 2>&1)
	if [ -n "$warnings" ]; then
		echo "FAIL ${page##*/}: troff warns:"
		echo "$warnings" | sed 's/^/  | /'
		failures=$((failures + 1))
	else
		echo "ok   ${page##*/} renders without warnings"
	fi
done
[ "$failures" -eq 0 ]
