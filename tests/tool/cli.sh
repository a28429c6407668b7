#!/bin/sh
# The dmrepl command line: help, version, subcommand dispatch and the
# documented exit codes (0 ok, 1 failure, 2 usage).
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

expect "top-level --help"           0 '^Usage: dmrepl'            -- --help
expect "-h lists subcommands"       0 '^  version '               -- -h
expect "-V prints version"          0 "^dmrepl $PACKAGE_VERSION\$" -- -V
expect "--version prints version"   0 "^dmrepl $PACKAGE_VERSION\$" -- --version
expect "version subcommand"         0 "libdmrepl $PACKAGE_VERSION" -- version
expect "version --help"             0 '^Usage: dmrepl version'     -- version --help
expect "help SUBCOMMAND"            0 '^Usage: dmrepl version'     -- help version
expect "no subcommand is usage"     2 '^Usage: dmrepl'             --
expect "unknown subcommand"         2 "unknown subcommand 'frobnicate'" -- frobnicate
expect "unknown subcommand hint"    2 "Try 'dmrepl --help'"        -- frobnicate
expect "unknown option"             2 "Try 'dmrepl --help'"        -- --bogus
expect "bad subcommand option"      2 "Try 'dmrepl version --help'" -- version --bogus
expect "stray argument"             2 "unexpected argument 'x'"    -- version x
expect "help of unknown"            2 "unknown subcommand 'nope'"  -- help nope
expect "help --help"                0 '^Usage: dmrepl help \[SUBCOMMAND\]' -- help --help
expect "help -h"                    0 '^Usage: dmrepl help'        -- help -h

# -v works before the subcommand and among its options, and adds up
md=${FIXTURES:-tests/fixtures}/small.bin
expect "-vv before the subcommand"  0 '^dmrepl: debug: '           -- -vv ls "$md"
expect "-vv after the subcommand"   0 '^dmrepl: debug: '           -- ls "$md" -vv
expect "-v twice, split"            0 '^dmrepl: debug: '           -- -v ls --verbose "$md"
check "one -v is not debug" sh -c "! \"$DMREPL\" ls -v \"$md\" 2>&1 | grep -q 'debug:'"

# -q on every subcommand, also where there is no progress to silence
expect "ls -q"                      0 '^ 1 '                         -- ls -q "$md"
expect "delta --quiet"              0 '<diff left="1" right="2">'  -- delta --quiet --base 1 --snap 2 "$md"
expect "-q before the subcommand"   0 '^ 1 '                         -- -q ls "$md"
expect "-q before version"          0 "^dmrepl $PACKAGE_VERSION"   -- -q version
expect "-q before help"             0 '^Usage: dmrepl'             -- -q help

# one meaning per short option: -t is the destination pool, -f is --full
expect "receive -t is the destination" 1 'dmrepl-test-no-such-pool' -- receive -t dmrepl-test-no-such-pool --abort
expect "delta has no -f"            2 "invalid option -- 'f'"      -- delta -f json --snap1 1 --snap2 2 m

# recover: its usage, and a pool that is not there (no device-mapper here,
# or no such device): exit 1 with the pool named, nothing done.
expect "recover --help"             0 '^  dmrepl recover --pool'     -- recover --help
expect "recover needs --pool"       2 "recover: --pool is required" -- recover
expect "recover stray argument"     2 "unexpected argument 'x'"    -- recover --pool p x
expect "recover of no pool"         1 "dmrepl-test-no-such-pool"   -- recover --pool dmrepl-test-no-such-pool

# Without device-mapper (this host cannot open its control device), a
# live-pool command says why and what to check, in one line.
if ! (exec 3<>/dev/mapper/control) 2>/dev/null; then
	expect "no device-mapper: the cause" 1 'dmrepl: error: x: cannot reach device-mapper for a table task: .*control' -- ls --pool x
	expect "no device-mapper: the hint"  1 'modprobe dm_mod\|needs root' -- ls --pool x
fi

expect_done
