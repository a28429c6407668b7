#!/bin/sh
# The listings as an operator reads them and a script parses them (ls on a
# metadata image; replicas' options): headings named for what the columns
# hold, sizes in human units by default and exact with -P or --units b,
# -o to pick fields (+FIELD to add, "-o help" to list them), --noheadings
# and --separator for scripts, and the errors bad values get (exit 2).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
img=${FIXTURES:-tests/fixtures}/small.bin
[ -f "$img" ] || { echo "SKIP: $img not built (thin_restore missing)"; exit 77; }
. "${top_srcdir:-.}/tests/tool/expect.sh"

# same NAME WANT ARGS...: dmrepl ARGS exits 0 and prints exactly WANT.
same() {
	name=$1 want=$2
	shift 2
	"$DMREPL" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" -ne 0 ] || [ "$(cat "$tmp/out")" != "$want" ]; then
		echo "FAIL $name: exit $rc, output:"; sed 's/^/  | /' "$tmp/out" "$tmp/err"
		echo "  expected:"; echo "$want" | sed 's/^/  | /'
		failures=$((failures + 1)); return
	fi
	echo "ok   $name"
}

# small.xml: three thins of 9, 10 and 8 blocks of 64 KiB.
same "default: headings and human units" \
"ID  MAPPED  BLOCKS  TRANSACTION  CREATE_GEN  SNAP_GEN
 1    576K       9            0           0         1
 2    640K      10            1           1         1
 3    512K       8            2           1         1" ls "$img"
same "-P: exact bytes, no headings" \
"1  589824   9  0  0  1
2  655360  10  1  1  1
3  524288   8  2  1  1" ls -P --noheadings "$img"
same "-o FIELDS in their order" \
"MAPPED  ID
  576K   1
  640K   2
  512K   3" ls -o mapped,id "$img"
same "-o +FIELD adds to the default" \
"ID  MAPPED  BLOCKS  TRANSACTION  CREATE_GEN  SNAP_GEN  LV
 1    576K       9            0           0         1  -
 2    640K      10            1           1         1  -
 3    512K       8            2           1         1  -" ls -o +lv "$img"
same "--units k, --separator, --no-headers (the old spelling)" \
"1;576.00K
2;640.00K
3;512.00K" ls --units k --separator ';' --no-headers -o id,mapped "$img"
same "options after the operand, a tab as separator" \
"1	9
2	10
3	8" ls "$img" --noheadings --separator '	' -o id,blocks

expect "-o help lists the fields"   0 '^  create_gen *pool time when it was created (a counter, not a clock)$' -- ls -o help
expect "-o help needs no operand"   0 '^Fields of dmrepl ls (default: id,mapped,blocks,transaction,create_gen,snap_gen):$' -- ls -o help
expect "unknown field"              2 "^dmrepl ls: -o: unknown field 'size' (fields: id, lv, mapped, blocks, transaction, create_gen, snap_gen)$" -- ls -o id,size "$img"
expect "empty field"                2 "^dmrepl ls: -o: unknown field '' " -- ls -o id, "$img"
expect "bad --units"                2 "^dmrepl ls: --units: 'q' is not one of h, b, k, m, g, t$" -- ls --units q "$img"
expect "replicas -o help"           0 '^  received *when it was received (ISO 8601, local time)$' -- replicas -o help
expect "replicas: unknown field"    2 "^dmrepl replicas: -o: unknown field 'mapped' (fields: id, lv, src_pool, src_name, src_id, base, size, received, state)$" -- replicas --to-pool x -o mapped
expect "ls --json: mapped_bytes"    0 '"devices":\[{"id":1,"mapped_blocks":9,"transaction_id":0,"creation_time":0,"snapshot_time":1,"mapped_bytes":589824}' -- ls --json "$img"
expect "snapshot's -o is gone"      2 "invalid option -- 'o'" -- snapshot --pool p -o 1

expect_done
