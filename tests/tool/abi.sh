#!/bin/sh
# The shared library exports exactly what lib/libdmrepl.sym lists, each
# symbol is declared in lib/libdmrepl.h and documented in libdmrepl(3).
set -u
: "${top_srcdir:?}"
so=${LIBDMREPL_SO:-lib/.libs/libdmrepl.so}
[ -f "$so" ] || { echo "SKIP: $so not built (static-only build?)"; exit 77; }
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT

sed -n 's/^[[:space:]]*\(dmrepl_[a-z0-9_]*\);$/\1/p' "$top_srcdir/lib/libdmrepl.sym" | sort >"$tmp/map"
nm -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort >"$tmp/exported"

failures=0
if ! cmp -s "$tmp/map" "$tmp/exported"; then
	echo "FAIL: exports differ from lib/libdmrepl.sym (< map, > exported):"
	diff "$tmp/map" "$tmp/exported"
	failures=$((failures + 1))
fi
while read -r sym; do
	grep -q "[ *]$sym(" "$top_srcdir/lib/libdmrepl.h" ||
		{ echo "FAIL: $sym is not declared in libdmrepl.h"; failures=$((failures + 1)); }
	grep -q "$sym" "$top_srcdir/doc/libdmrepl.3.in" ||
		{ echo "FAIL: $sym is not documented in libdmrepl(3)"; failures=$((failures + 1)); }
done <"$tmp/map"
echo "$(wc -l <"$tmp/map") symbols checked, $failures problem(s)"
[ "$failures" -eq 0 ]
