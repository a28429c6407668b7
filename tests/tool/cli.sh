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

# recover: its usage, and a pool that is not there (no device-mapper here,
# or no such device): exit 1 with the pool named, nothing done.
expect "recover --help"             0 '^  dmrepl recover --pool'     -- recover --help
expect "recover needs --pool"       2 "recover: --pool is required" -- recover
expect "recover stray argument"     2 "unexpected argument 'x'"    -- recover --pool p x
expect "recover of no pool"         1 "dmrepl-test-no-such-pool"   -- recover --pool dmrepl-test-no-such-pool

expect_done
