#!/bin/sh
# check-json.sh LOGDIR: validate the --json outputs the VM tests logged
# against the JSON Schemas of doc/schema. The guest has no python: a test
# copies each output into its log with dmt_json_capture
# (tests/integration/lib.sh), as lines "dmt-json CMDNAME LINE" closed by
# "dmt-json-end CMDNAME [RC]"; tests/vm/run writes each test's log to
# LOGDIR/NAME.log. Each output is checked by tests/tool/json-validate.py
# (with its exit status when logged). Fails when an output is not valid,
# and when there is none at all. Needs python3-jsonschema.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:?usage: check-json.sh LOGDIR}
schemas=$top/doc/schema
validate=$top/tests/tool/json-validate.py

python=
for p in ${PYTHON:-} python3 /usr/bin/python3; do
	if "$p" -c 'import jsonschema' 2>/dev/null; then python=$p; break; fi
done
[ -n "$python" ] || {
	echo "check-json.sh: no python3 with jsonschema (Debian: apt-get install python3-jsonschema)" >&2
	exit 1
}

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Split each log into one file per output, $tmp/TEST.N.CMDNAME, listed in
# $tmp/index with its exit status ("-" when not logged); a capture cut
# short (no dmt-json-end) is checked as it is.
for log in "$dir"/*.log; do
	[ -f "$log" ] || continue
	awk -v out="$tmp" -v test="$(basename "$log" .log)" '
		function close_run(rc) {
			if (file != "") {
				close(file)
				print file "\t" test "\t" cmd "\t" rc >> (out "/index")
				close(out "/index")
			}
			file = ""
		}
		$1 == "dmt-json" && NF >= 2 {
			if (file != "" && $2 != cmd)
				close_run("-")
			if (file == "") {
				cmd = $2
				file = out "/" test "." (++n) "." cmd
				printf "" > file
			}
			line = $0
			sub(/^dmt-json [^ ]+ ?/, "", line)
			print line > file
			next
		}
		$1 == "dmt-json-end" && NF >= 2 {
			if (file == "") {
				# an output with no line at all
				cmd = $2
				file = out "/" test "." (++n) "." cmd
				printf "" > file
			}
			close_run(NF >= 3 ? $3 : "-")
		}
		END { close_run("-") }
	' "$log"
done

if [ ! -s "$tmp/index" ]; then
	echo "check-json.sh: FAIL: no dmt-json lines in $dir/*.log (did the VM tests run?)"
	exit 1
fi

total=0 bad=0
while IFS='	' read -r file test cmd rc; do
	total=$((total + 1))
	set -- "$schemas" "$cmd" "$file"
	[ "$rc" = - ] || set -- --exit-status "$rc" "$@"
	if "$python" "$validate" "$@" >"$tmp/why" 2>&1; then
		echo "ok   $test: dmrepl $cmd --json ($(wc -l <"$file") line(s), exit $rc)"
	else
		bad=$((bad + 1))
		echo "FAIL $test: dmrepl $cmd --json"
		sed "s|^$file:|  line |" "$tmp/why"
		sed 's/^/  > /' "$file" | cut -c1-400
	fi
done <"$tmp/index"

echo "$((total - bad)) of $total --json outputs of the VM tests valid"
[ "$bad" -eq 0 ]
