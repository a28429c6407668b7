#!/bin/sh
# dmrepl migrate's command line, as far as a host without dm shows it:
# what it needs and its ranges, each refused with exit 2 before anything
# is touched; and the far side's receive --migrate: its usage, and its
# JSON lines when it cannot go on. The migrations themselves are
# tests/integration/migrate*.sh's (VM).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

expect "no volume"            2 "give the volume (--from VG/LV)$" -- migrate --to-pool vg2/pool
expect "no destination"       2 "give one destination (--to-pool VG/POOL or --to URL)$" -- migrate --from vg/lv
expect "two destinations"     2 "give one destination" -- migrate --from vg/lv --to-pool vg2/pool --to ssh://h/vg/pool
expect "rounds 0"             2 "--max-rounds: 0 is out of range: give 1 to 63$" -- migrate --from vg/lv --to-pool vg2/pool --max-rounds 0
expect "rounds too many"      2 "--max-rounds: 64 is out of range: give 1 to 63$" -- migrate --from vg/lv --to-pool vg2/pool --max-rounds 64
expect "converge not a size"  2 "--converge: 'lots' is not a size" -- migrate --from vg/lv --to-pool vg2/pool --converge lots
expect "--to not ssh"         2 "--to 'h:/vg/pool': give ssh://\[USER@\]HOST/VG/POOL$" -- migrate --from vg/lv --to h:/vg/pool
expect "transport, no --to"   2 "--transport, --remote-dmrepl and --remote-state-dir go with --to$" -- migrate --from vg/lv --to-pool vg2/pool --transport "sh -c"
expect "far: no step"         2 "--migrate goes with --pool VG/POOL and one of --check and --from-lv, alone$" -- receive --pool vg/pool --migrate h:vg/lv
expect "far: two steps"       2 "one of --check and --from-lv" -- receive --pool vg/pool --migrate h:vg/lv --check --from-lv r
expect "far: with --device"   2 "one of --check and --from-lv" -- receive --device /dev/null --migrate h:vg/lv --check
expect "far: --from-lv alone" 2 "--migrate goes with" -- receive --pool vg/pool --from-lv r
# the far side's refusals come as its protocol's last line too
expect "far: not HOST:VG/LV"  2 '^{"type":"result","ok":false,"error":"--migrate .h:lv.: give HOST:VG/LV' -- receive --pool vg/pool --migrate h:lv --check --state-dir "$tmp"
expect "far: bad --from-lv"   2 '"error":"--from-lv .a b.: not an LV name' -- receive --pool vg/pool --migrate h:vg/lv --from-lv "a b" --state-dir "$tmp"
expect "a stray argument"     2 "unexpected argument 'x'$" -- migrate --from vg/lv --to-pool vg2/pool x
expect "help"                 0 "^Exit status: 0 migrated" -- migrate --help
# --recover with nothing recorded: nothing to do, and it says so
expect "recover, nothing"     0 "^0 killed migration(s) resolved$" -- migrate --recover --state-dir "$tmp"
expect "recover --json"       0 '^{"type":"result","ok":true,"resumed":0}$' -- migrate --recover --state-dir "$tmp" --json

expect_done
