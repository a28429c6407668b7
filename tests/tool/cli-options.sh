#!/bin/sh
# Numbers, sizes and ids on the command line: one parser each, the same
# in every subcommand. Ids and counts are decimal ("010" is ten, never
# octal; "0x10" is refused); sizes and rates take K, M, G or T (powers of
# 1024); a value out of range says the range. Each is refused before
# anything is opened, with exit 2.
set -u

DMREPL=${DMREPL:-tools/dmrepl}
. "${top_srcdir:-.}/tests/tool/expect.sh"

# ids: decimal only, up to the kernel's 24 bits
expect "id with a leading zero is decimal" 2 "thin ids go up to 16777215" -- delta --snap1 010 --snap2 016777216 m
expect "hex id refused"       2 "--snap2: '0x10' is not a thin device id" -- delta --snap1 1 --snap2 0x10 m
expect "negative id refused"  2 "--snap: '-1' is not a thin device id" -- send --pool p --snap -1
expect "id too large"         2 "--snap 16777216: thin ids go up to 16777215" -- replicate --pool p --snap 16777216 --to-pool q

# counts: decimal, their range named
expect "queue depth 0"        2 "--queue-depth: 0 is out of range: give 1 to 1024$" -- copy --queue-depth 0 a b
expect "queue depth octal-looking" 2 "--queue-depth: 01025 is out of range: give 1 to 1024$" -- replicate --pool p --snap 1 --to-pool q --queue-depth 01025
expect "queue depth of send"  2 "--queue-depth: 257 is out of range: give 1 to 256$" -- send --pool p --snap 1 --queue-depth 257
expect "queue depth not a number" 2 "--queue-depth: '8x' is not a number (decimal digits)$" -- copy --queue-depth 8x a b
expect "compress level 20"    2 "--compress: 20 is out of range: give 1 to 19$" -- replicate --pool p --snap 1 --to-pool q --compress=20
expect "compress level of send" 2 "--compress: 0 is out of range: give 1 to 19$" -- send --pool p --snap 1 --compress=0
expect "huge number"          2 "--queue-depth: 99999999999999999999999 is out of range" -- copy --queue-depth 99999999999999999999999 a b

# sizes: one grammar, the range and alignment said
expect "io size out of range, not invalid" 2 "--io-size: 128M is out of range: give 4K to 64M, a multiple of 4K$" -- copy --io-size 128M a b
expect "io size in replicate the same" 2 "--io-size: 128M is out of range: give 4K to 64M, a multiple of 4K$" -- replicate --pool p --snap 1 --to-pool q --io-size 128M
expect "io size alignment"    2 "--io-size: 5000 is not a multiple of 4K$" -- copy --io-size 5000 a b
expect "size units: KiB"      2 "--io-size: 3KiB is out of range" -- copy --io-size 3KiB a b
expect "size not a size"      2 "--bwlimit: '1Q' is not a size: give bytes, or a number with K, M, G or T (powers of 1024)$" -- replicate --pool p --snap 1 --to-pool q --bwlimit 1Q
expect "size overflow"        2 "--size: 17000000T is out of range: give at least 512, a multiple of 512$" -- send --pool p --snap 1 --size 17000000T
expect "volume size alignment" 2 "--size: 1000 is not a multiple of 512$" -- replicate --pool p --snap 1 --to-pool q --size 1000
expect "chunk size takes units" 2 "--chunk-size: 65M is out of range: give 512 to 64M, a multiple of 512$" -- verify --chunk-size 65M a b
expect "negative size"        2 "--checkpoint: '-1' is not a size" -- send --pool p --snap 1 --checkpoint -1

expect_done
