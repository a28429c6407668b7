#!/bin/sh
# One vocabulary: across every subcommand's --help, a short option always
# stands for the same long option, and a long option never has two short
# ones. Every subcommand takes -h/--help and `dmrepl help SUBCOMMAND`,
# and the options every command shares (-j, -q, -v) before or after it.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

subcmds=$("$DMREPL" --help | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p')
check "the subcommands are listed" test "$(echo "$subcmds" | wc -l)" -ge 10

for s in $subcmds; do
	"$DMREPL" "$s" --help >"$tmp/help" 2>&1 ||
		{ echo "FAIL $s --help: exit $?"; failures=$((failures + 1)); continue; }
	"$DMREPL" help "$s" >"$tmp/help2" 2>&1 ||
		{ echo "FAIL help $s: exit $?"; failures=$((failures + 1)); continue; }
	cmp -s "$tmp/help" "$tmp/help2" ||
		{ echo "FAIL help $s differs from $s --help"; failures=$((failures + 1)); }
	sed -n "s/^ *\(-[a-zA-Z]\), \(--[a-z0-9-]*\).*/$s \1 \2/p" "$tmp/help" >>"$tmp/pairs"
done
echo "ok   every subcommand's --help and help SUBCOMMAND"

# a short option with two meanings
awk '{ print $2, $3 }' "$tmp/pairs" | sort -u | awk '{ print $1 }' | uniq -d >"$tmp/dup_short"
check "each short option means one long option" test ! -s "$tmp/dup_short"
for o in $(cat "$tmp/dup_short"); do grep " $o " "$tmp/pairs" | sed 's/^/  | /'; done
# a long option with two short ones
awk '{ print $3, $2 }' "$tmp/pairs" | sort -u | awk '{ print $1 }' | uniq -d >"$tmp/dup_long"
check "each long option has one short option" test ! -s "$tmp/dup_long"
for o in $(cat "$tmp/dup_long"); do grep " $o\$" "$tmp/pairs" | sed 's/^/  | /'; done
check "the table is not empty" test "$(wc -l <"$tmp/pairs")" -ge 30

# A sample of the shared meanings, where the issue named a clash.
check "-t is --to-pool everywhere" sh -c "! grep ' -t ' '$tmp/pairs' | grep -qv ' --to-pool\$'"
check "-f is --full everywhere" sh -c "! grep ' -f ' '$tmp/pairs' | grep -qv ' --full\$'"
check "-j is --json everywhere" sh -c "! grep ' -j ' '$tmp/pairs' | grep -qv ' --json\$'"
check "-o is --output everywhere" sh -c "! grep ' -o ' '$tmp/pairs' | grep -qv ' --output\$'"

# -j, -v and -q before and after the subcommand, on every subcommand:
# each is accepted (a usage error would exit 2 and say "unrecognized").
for s in $subcmds; do
	for o in -v -q; do
		for where in before after; do
			if [ $where = before ]; then "$DMREPL" $o "$s" --help >/dev/null 2>"$tmp/err"
			else "$DMREPL" "$s" $o --help >/dev/null 2>"$tmp/err"; fi
			rc=$?
			if [ $rc -ne 0 ]; then
				echo "FAIL $o $where $s: exit $rc"; sed 's/^/  | /' "$tmp/err"
				failures=$((failures + 1))
			fi
		done
	done
done
echo "ok   -v and -q before and after every subcommand"
expect "-j before the subcommand"   0 '^{"type":"result","ok":true,"version":"' -- -j version
expect "-j before: failure result"  1 '^{"type":"result","ok":false,"error":"cannot open [^"]*: No such file or directory","errno":"ENOENT","exit_status":1}$' -- --json ls /nonexistent-dmrepl
for s in $(echo "$subcmds" | grep -vx 'help\|version'); do
	grep -q "^$s -j --json\$" "$tmp/pairs" ||
		{ echo "FAIL $s has no -j/--json"; failures=$((failures + 1)); }
done
echo "ok   -j/--json on every subcommand"

expect_done
