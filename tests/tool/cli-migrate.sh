#!/bin/sh
# dmrepl migrate's command line, as far as a host without dm shows it:
# what it needs, its ranges, and what is not built (another host); each
# refused with exit 2 before anything is touched. The migration itself is
# tests/integration/migrate.sh's (VM).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

expect "no volume"            2 "give the volume (--from VG/LV)$" -- migrate --to-pool vg2/pool
expect "no destination"       2 "give one destination (--to-pool VG/POOL or --to URL)$" -- migrate --from vg/lv
expect "two destinations"     2 "give one destination" -- migrate --from vg/lv --to-pool vg2/pool --to ssh://h/vg/pool
expect "rounds 0"             2 "--max-rounds: 0 is out of range: give 1 to 63$" -- migrate --from vg/lv --to-pool vg2/pool --max-rounds 0
expect "rounds too many"      2 "--max-rounds: 64 is out of range: give 1 to 63$" -- migrate --from vg/lv --to-pool vg2/pool --max-rounds 64
expect "converge not a size"  2 "--converge: 'lots' is not a size" -- migrate --from vg/lv --to-pool vg2/pool --converge lots
expect "another host"         2 "migrate to another host (ssh://h/vg/pool) is not built yet" -- migrate --from vg/lv --to ssh://h/vg/pool
expect "a stray argument"     2 "unexpected argument 'x'$" -- migrate --from vg/lv --to-pool vg2/pool x
expect "help"                 0 "^Exit status: 0 migrated" -- migrate --help
# --recover with nothing recorded: nothing to do, and it says so
expect "recover, nothing"     0 "^0 killed migration(s) resolved$" -- migrate --recover --state-dir "$tmp"
expect "recover --json"       0 '^{"type":"result","ok":true,"resumed":0}$' -- migrate --recover --state-dir "$tmp" --json

expect_done
